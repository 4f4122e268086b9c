"""maskrcnn-benchmark's numeric conventions behind config keys: +1 box coder, Detectron anchors, frozen-BN epsilon."""
import pytest
import torch

from sgg.config import load_config
from sgg.modeling.detector.generalized_rcnn import GeneralizedRCNN
from sgg.modeling.sgb_conventions import DetectronAnchorGenerator, PlusOneBoxCoder, detectron_cell_anchors


def test_plus_one_box_coder_on_hand_computed_boxes():
    coder = PlusOneBoxCoder((1.0, 1.0, 1.0, 1.0))
    proposal = torch.tensor([[0.0, 0.0, 9.0, 9.0]])   # w = h = 10, centre (5, 5)
    gt = torch.tensor([[0.0, 0.0, 19.0, 9.0]])        # w = 20, h = 10, centre (10, 5)
    codes = coder.encode_single(gt, proposal)
    # dx = (10 - 5) / 10, dy = 0, dw = log(20 / 10), dh = 0
    assert torch.allclose(codes, torch.tensor([[0.5, 0.0, 0.69314718, 0.0]]))
    assert torch.allclose(coder.decode_single(codes, proposal), gt, atol=1e-5)
    weighted = PlusOneBoxCoder((10.0, 10.0, 5.0, 5.0))
    assert torch.allclose(weighted.encode_single(gt, proposal), torch.tensor([[5.0, 0.0, 5 * 0.69314718, 0.0]]))
    # zero codes give the proposal back (x2 = ctr + w/2 - 1)
    assert torch.allclose(weighted.decode_single(torch.zeros(1, 8), proposal), proposal.repeat(1, 2))


def test_detectron_cell_anchors_by_hand():
    # stride 16, size 32: ratio 1 -> 16x16 reference centred at 7.5, scaled x2 -> 32x32: [-8, -8, 23, 23]
    # ratio 0.5 -> ws = round(sqrt(512)) = 23, hs = round(11.5) = 12 (half to even) -> x2: 46 x 24 -> [-15, -4, 30, 19]
    # ratio 2 -> ws = round(sqrt(128)) = 11, hs = 22 -> x2: 22 x 44 -> [-3, -14, 18, 29]
    anchors = detectron_cell_anchors(16, (32.0,), (0.5, 1.0, 2.0))
    assert anchors.tolist() == [[-15.0, -4.0, 30.0, 19.0], [-8.0, -8.0, 23.0, 23.0], [-3.0, -14.0, 18.0, 29.0]]
    with pytest.raises(ValueError, match="needs one MODEL.RPN.ANCHOR_STRIDE per level"):
        DetectronAnchorGenerator(((32.0,), (64.0,)), ((1.0,), (1.0,)), (4,))


def test_keys_switch_the_detector_to_the_sgb_conventions():
    opts = ["MODEL.BACKBONE.CONV_BODY", "R-50-FPN", "MODEL.RESNETS.NUM_GROUPS", "1",
            "MODEL.RESNETS.WIDTH_PER_GROUP", "64", "MODEL.RANDOM_INIT_BACKBONE", "True",
            "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", "16", "MODEL.ROI_BOX_HEAD.NUM_CLASSES", "4",
            "MODEL.RPN.ANCHOR_STRIDE", "(4, 8, 16, 32, 64)"]
    plain = GeneralizedRCNN.from_config(load_config(None, opts))
    assert type(plain.rpn.box_coder).__name__ == "BoxCoder"
    assert plain.backbone.body.bn1.eps == 1e-5
    sgb = GeneralizedRCNN.from_config(load_config(None, opts + [
        "MODEL.BOX_CODER_PLUS_ONE", "True", "MODEL.RPN.LEGACY_ANCHORS", "True", "MODEL.RESNETS.FROZEN_BN_EPS", "0.0"]))
    assert isinstance(sgb.rpn.box_coder, PlusOneBoxCoder) and isinstance(sgb.roi_heads.box_coder, PlusOneBoxCoder)
    assert sgb.roi_heads.post_processor.box_coder is sgb.roi_heads.box_coder
    assert sgb.roi_heads.box_coder.weights == (10.0, 10.0, 5.0, 5.0)
    assert isinstance(sgb.rpn.anchor_generator, DetectronAnchorGenerator)
    assert sgb.rpn.anchor_generator.cell_anchors[0][1].tolist() == [-14.0, -14.0, 17.0, 17.0]  # stride 4, size 32
    assert sgb.backbone.body.bn1.eps == 0.0
    sgb.eval()
    from sgg.structures import to_image_list

    with torch.no_grad():
        out = sgb(to_image_list([torch.randn(3, 64, 80)], 32))
    assert len(out) == 1
