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


# ------------------------------------------------------------------------------------------ SGB's detection rules
from torchvision.models.detection.image_list import ImageList as TorchvisionImageList  # noqa: E402
from torchvision.ops import nms as torchvision_nms  # noqa: E402

from sgg.modeling.rpn.rpn import build_rpn  # noqa: E402
from sgg.modeling.roi_heads.box_head.inference import BoxPostProcessor  # noqa: E402
from sgg.modeling.sgb_conventions import (batched_nms_plus_one, clip_boxes_to_last_pixel,  # noqa: E402
                                          min_size_mask_plus_one, nms_plus_one)

FPN_STRIDES = (4, 8, 16, 32, 64)


def test_legacy_anchors_shift_p6_by_the_configured_stride_64():
    # a 600 x 901 image padded to 608 x 928: the P6 grid is 10 x 15, so torchvision's stride would be
    # 608 // 10 = 60 down and 928 // 15 = 61 across; SGB's anchors are 64 apart on P6.
    sizes = ((32.0,), (64.0,), (128.0,), (256.0,), (512.0,))
    generator = DetectronAnchorGenerator(sizes, ((1.0,),) * 5, FPN_STRIDES)
    grids = [(152, 232), (76, 116), (38, 58), (19, 29), (10, 15)]
    maps = [torch.zeros(1, 1, h, w) for h, w in grids]
    (anchors,) = generator(TorchvisionImageList(torch.zeros(1, 3, 608, 928), [(600, 901)]), maps)
    start = sum(h * w for h, w in grids[:4])
    p6 = anchors[start:]
    assert len(p6) == 10 * 15
    # stride 64, size 512, ratio 1: side round(sqrt(64 * 64)) = 64 scaled to 512, centred on 31.5:
    # [-224, -224, 287, 287]
    assert p6[0].tolist() == [-224.0, -224.0, 287.0, 287.0]
    assert p6[1].tolist() == [-160.0, -224.0, 351.0, 287.0]           # next column: x + 64 (torchvision: + 61)
    assert p6[15].tolist() == [-224.0, -160.0, 287.0, 351.0]          # next row: y + 64 (torchvision: + 60)
    assert p6[-1].tolist() == [-224.0 + 14 * 64, -224.0 + 9 * 64, 287.0 + 14 * 64, 287.0 + 9 * 64]
    # P2 (stride 4, size 32): [-14, -14, 17, 17], the next column 4 to the right
    assert anchors[1].tolist() == [-10.0, -14.0, 21.0, 17.0]
    with pytest.raises(ValueError, match="5 feature maps but MODEL.RPN.ANCHOR_STRIDE has 4"):
        DetectronAnchorGenerator(sizes[:4], ((1.0,),) * 4, FPN_STRIDES[:4])(
            TorchvisionImageList(torch.zeros(1, 3, 608, 928), [(600, 901)]), maps)


def test_legacy_anchors_need_anchor_strides_equal_to_the_feature_strides():
    opts = ["MODEL.BACKBONE.CONV_BODY", "tiny-FPN", "MODEL.RANDOM_INIT_BACKBONE", "True",
            "MODEL.RPN.LEGACY_ANCHORS", "True", "MODEL.RPN.ANCHOR_STRIDE", "(4, 8, 16, 32, 60)"]
    with pytest.raises(ValueError, match=r"MODEL.RPN.ANCHOR_STRIDE \(4, 8, 16, 32, 60\) must list the strides .*"
                                         r"\(4, 8, 16, 32, 64\)"):
        GeneralizedRCNN.from_config(load_config(None, opts))


def test_nms_plus_one_on_hand_made_boxes():
    far = [50.0, 50.0, 59.0, 59.0]
    a = [0.0, 0.0, 9.0, 9.0]    # +1 area 10 x 10 = 100
    b = [0.0, 0.0, 9.0, 6.0]    # +1 area 10 x 7 = 70, inside a: IoU 70 / 100 = 0.7 (plain widths: 54 / 81 = 0.667)
    boxes = torch.tensor([far, a, b])
    scores = torch.tensor([0.5, 0.9, 0.8])
    # SGB: b is suppressed (IoU 0.7 >= 0.7), kept indices in index order, not score order
    assert nms_plus_one(boxes, scores, 0.7).tolist() == [0, 1]
    # torchvision: plain widths and a strict >, b survives; kept indices best first
    assert torchvision_nms(boxes, scores, 0.7).tolist() == [1, 2, 0]
    assert nms_plus_one(boxes, scores, 0.71).tolist() == [0, 1, 2]
    # a box suppressed by a suppressed box survives (greedy): c overlaps b only
    c = [0.0, 5.0, 9.0, 11.0]   # with b: inter 10 x 2 = 20, union 70 + 70 - 20 = 120 -> 0.17; with a: 50/120 = 0.42
    boxes = torch.tensor([a, b, c])
    assert nms_plus_one(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.4).tolist() == [0]
    assert nms_plus_one(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]
    assert nms_plus_one(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []


def test_nms_plus_one_equals_torchvision_nms_on_boxes_one_pixel_larger():
    # +1 widths are plain widths of boxes grown by one pixel; away from exact ties (none with random real
    # coordinates, unlike integer ones) the kept sets agree
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=gen) * 200
    boxes = torch.cat([xy, xy + 5 + torch.rand(300, 2, generator=gen) * 60], dim=1)
    scores = torch.rand(300, generator=gen)
    grown = boxes + torch.tensor([0.0, 0.0, 1.0, 1.0])
    for threshold in (0.3, 0.5, 0.7):
        keep = nms_plus_one(boxes, scores, threshold)
        assert torch.equal(keep, torchvision_nms(grown, scores, threshold).sort()[0])
        assert 20 < len(keep) < 300


def test_batched_nms_plus_one_works_within_each_class():
    a, b = [0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 8.0]  # IoU 90 / 100
    boxes = torch.tensor([a, b, a, b])
    scores = torch.tensor([0.2, 0.9, 0.8, 0.1])
    labels = torch.tensor([1, 1, 2, 2])
    assert batched_nms_plus_one(boxes, scores, labels, 0.5).tolist() == [1, 2]
    assert batched_nms_plus_one(boxes, scores, torch.tensor([1, 2, 3, 4]), 0.5).tolist() == [0, 1, 2, 3]


def test_clip_to_last_pixel_and_min_size_on_plus_one_widths():
    boxes = torch.tensor([[-5.0, 3.0, 120.0, 60.0], [120.0, 10.0, 130.0, 20.0]])
    clipped = clip_boxes_to_last_pixel(boxes, (50, 100))  # (H, W)
    assert clipped.tolist() == [[0.0, 3.0, 99.0, 49.0], [99.0, 10.0, 99.0, 20.0]]
    per_class = clip_boxes_to_last_pixel(boxes[None].repeat(2, 1, 1), (50, 100))  # (N, C, 4) as the box head's
    assert torch.equal(per_class[1], clipped)
    # the second box has zero width: SGB's MIN_SIZE 0 keeps it (+1 width 1), MIN_SIZE 2 drops it
    assert min_size_mask_plus_one(clipped, 0.0).tolist() == [True, True]
    assert min_size_mask_plus_one(clipped, 2.0).tolist() == [True, False]
    assert min_size_mask_plus_one(torch.tensor([[0.0, 0.0, 1.0, 5.0]]), 2.0).tolist() == [True]


def sgb_rpn(*opts):
    cfg = load_config(None, ["MODEL.BACKBONE.CONV_BODY", "tiny-FPN", "MODEL.RANDOM_INIT_BACKBONE", "True",
                             "MODEL.RPN.PRE_NMS_TOP_N_TEST", "3", "MODEL.RPN.POST_NMS_TOP_N_TEST", "2",
                             "MODEL.RPN.FPN_POST_NMS_TOP_N_TEST", "3", "MODEL.RPN.NMS_THRESH", "0.7", *opts])
    from sgg.modeling.backbone import build_backbone

    return build_rpn(cfg, build_backbone(cfg)).eval()


def separate_boxes(n, offset=0.0):
    return torch.tensor([[offset + 20.0 * i, 0.0, offset + 20.0 * i + 9.0, 9.0] for i in range(n)])


def logit(p):
    p = torch.tensor(p)
    return torch.log(p / (1 - p))


def test_rpn_per_level_cap_keeps_at_most_post_nms_top_n_per_level():
    # two levels of three separate boxes; level 0 scores 0.9 / 0.8 / 0.7, level 1 0.6 / 0.5 / 0.4
    proposals = torch.cat([separate_boxes(3), separate_boxes(3, offset=5.0)])[None]
    objectness = logit([0.7, 0.9, 0.8, 0.4, 0.6, 0.5])
    args = (proposals, objectness, [(100, 100)], [3, 3])
    (boxes,), (scores,) = sgb_rpn().filter_proposals(*args)  # torchvision: the best 3 over all levels
    assert torch.allclose(scores, torch.tensor([0.9, 0.8, 0.7]))
    (boxes,), (scores,) = sgb_rpn("MODEL.RPN.FPN_POST_NMS_PER_LEVEL_CAP", "True").filter_proposals(*args)
    # SGB: level 0 keeps 0.9 / 0.8, level 1 keeps 0.6 / 0.5, then the best 3
    assert torch.allclose(scores, torch.tensor([0.9, 0.8, 0.6]))
    assert boxes.tolist() == [[20.0, 0.0, 29.0, 9.0], [40.0, 0.0, 49.0, 9.0], [25.0, 0.0, 34.0, 9.0]]


def test_rpn_nms_plus_one_and_clip_to_last_pixel():
    a, b = [0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 6.0]   # +1 IoU 0.7, plain 0.667
    outside = [120.0, 10.0, 130.0, 20.0]                 # clipped to zero width
    proposals = torch.tensor([[a, b, outside]])
    objectness = logit([0.9, 0.8, 0.7])
    args = (proposals, objectness, [(50, 100)], [3])
    (boxes,), _ = sgb_rpn().filter_proposals(*args)
    assert boxes.tolist() == [a, b]  # torchvision: b survives NMS, the zero-width box is dropped
    (boxes,), _ = sgb_rpn("MODEL.NMS_PLUS_ONE", "True").filter_proposals(*args)
    assert boxes.tolist() == [a]
    (boxes,), _ = sgb_rpn("MODEL.CLIP_TO_LAST_PIXEL", "True").filter_proposals(*args)
    assert boxes.tolist() == [a, b, [99.0, 10.0, 99.0, 20.0]]
    (boxes,), _ = sgb_rpn("MODEL.NMS_PLUS_ONE", "True", "MODEL.CLIP_TO_LAST_PIXEL", "True").filter_proposals(*args)
    assert boxes.tolist() == [a, [99.0, 10.0, 99.0, 20.0]]


def hand_made_post_processor(**conventions):
    coder = PlusOneBoxCoder((10.0, 10.0, 5.0, 5.0))
    return BoxPostProcessor(coder, score_thresh=0.05, nms_thresh=0.5, detections_per_img=10,
                            post_nms_per_cls_topn=2, nms_filter_duplicates=False, **conventions)


def run_post(post, probs, proposals, image_size=(100, 100)):
    n, c = probs.shape
    (result,) = post(probs.log(), torch.zeros(n, 4 * c), torch.arange(float(n))[:, None], [proposals], [image_size])
    return (result.get_field("box_features")[:, 0].long().tolist(), result.get_field("pred_labels").tolist(),
            [round(s, 4) for s in result.get_field("pred_scores").tolist()])


def test_proposal_order_per_class_cap_keeps_the_first_proposals():
    # proposals in objectness order, far apart; class 1 scores rise along them, class 2 only on proposal 0
    proposals = separate_boxes(4)
    probs = torch.tensor([[0.2, 0.1, 0.7], [0.5, 0.3, 0.2], [0.4, 0.6, 0.0], [0.2, 0.8, 0.0]])
    # by score (default): class 1 keeps its two best, proposals 3 and 2; output best first
    assert run_post(hand_made_post_processor(), probs, proposals) == (
        [3, 0, 2, 1], [1, 2, 1, 2], [0.8, 0.7, 0.6, 0.2])
    # SGB: class 1 keeps its first two proposals (1 and 2), output class by class in proposal order
    assert run_post(hand_made_post_processor(proposal_order=True), probs, proposals) == (
        [0, 1, 0, 1], [1, 1, 2, 2], [0.1, 0.3, 0.7, 0.2])
    post = hand_made_post_processor(proposal_order=True, nms_plus_one=True)
    assert run_post(post, probs, proposals) == ([0, 1, 0, 1], [1, 1, 2, 2], [0.1, 0.3, 0.7, 0.2])


def test_proposal_order_filter_duplicates_and_kthvalue_cut():
    proposals = separate_boxes(4)
    probs = torch.tensor([[0.2, 0.1, 0.7], [0.5, 0.3, 0.2], [0.4, 0.6, 0.0], [0.2, 0.8, 0.0]])
    post = hand_made_post_processor(proposal_order=True)
    post.nms_filter_duplicates = True  # each proposal keeps its best surviving class, output in proposal order
    assert run_post(post, probs, proposals) == ([0, 1], [2, 1], [0.7, 0.3])
    post.post_nms_per_cls_topn = 300
    assert run_post(post, probs, proposals) == ([0, 1, 2, 3], [2, 1, 1, 1], [0.7, 0.3, 0.6, 0.8])
    post.detections_per_img = 2  # the 2 best (0.8, 0.7), still in proposal order
    assert run_post(post, probs, proposals) == ([0, 3], [2, 1], [0.7, 0.8])
    tied = torch.tensor([[0.3, 0.7, 0.0], [0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.9, 0.1, 0.0]])
    # SGB's kthvalue cut keeps every score >= the 2nd best: the tie at 0.5 gives 3 detections
    assert run_post(post, tied, proposals) == ([0, 1, 2], [1, 1, 1], [0.7, 0.5, 0.5])


def test_post_processor_nms_plus_one_and_clip_to_last_pixel():
    a, b = [0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 6.0]   # +1 IoU 0.7, plain 0.667
    proposals = torch.tensor([a, b, [90.0, 40.0, 120.0, 60.0]])
    probs = torch.tensor([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]])
    post = hand_made_post_processor()
    post.nms_thresh = 0.6
    assert run_post(post, probs, proposals, (50, 100))[0] == [0, 2]      # both suppress b at 0.6
    post.nms_thresh = 0.7
    assert run_post(post, probs, proposals, (50, 100))[0] == [0, 1]      # torchvision keeps b; cap 2
    post.nms_plus_one = True
    assert run_post(post, probs, proposals, (50, 100))[0] == [0, 2]      # SGB suppresses it (IoU 0.7 >= 0.7)
    n, c = probs.shape
    for clip, corner in ((False, [90.0, 40.0, 100.0, 50.0]), (True, [90.0, 40.0, 99.0, 49.0])):
        post.clip_to_last_pixel = clip
        (result,) = post(probs.log(), torch.zeros(n, 4 * c), torch.zeros(n, 1), [proposals], [(50, 100)])
        assert result.bbox[-1].tolist() == corner
        assert result.get_field("boxes_per_cls")[-1, 1].tolist() == corner


def test_sgb_detector_config_turns_every_convention_on():
    import os

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cfg = load_config(os.path.join(repo, "configs", "e2e_relation_X_101_32_8_FPN_1x_sgb_detector.yaml"),
                      ["MODEL.BACKBONE.CONV_BODY", "tiny-FPN", "MODEL.RANDOM_INIT_BACKBONE", "True",
                       "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", "16"])
    model = GeneralizedRCNN.from_config(cfg)
    rpn, post = model.rpn, model.roi_heads.post_processor
    assert rpn.nms_plus_one and rpn.clip_to_last_pixel and rpn.min_size == 0.0
    # SGB's relation yaml: 1000 per level (POST_NMS_TOP_N_TEST), then 1000 over all levels
    assert rpn.eval().per_level_post_nms_top_n() == 1000 and rpn.post_nms_top_n() == 1000
    assert isinstance(rpn.anchor_generator, DetectronAnchorGenerator)
    assert rpn.anchor_generator.strides == FPN_STRIDES
    assert post.nms_plus_one and post.clip_to_last_pixel and post.proposal_order
    assert post.detections_per_img == 80 and post.nms_filter_duplicates
    # training runs through SGB's proposal selection too (training top-n values: 6000 / 1000 / 1000)
    from sgg.structures import BoxList, to_image_list

    target = BoxList(torch.tensor([[4.0, 6.0, 40.0, 50.0]]), (80, 64))
    target.add_field("labels", torch.tensor([3]))
    model.train()
    losses = model(to_image_list([torch.randn(3, 64, 80)], 32), [target])
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert rpn.per_level_post_nms_top_n() == 1000
    plain = GeneralizedRCNN.from_config(load_config(None, ["MODEL.BACKBONE.CONV_BODY", "tiny-FPN",
                                                           "MODEL.RANDOM_INIT_BACKBONE", "True"]))
    assert not plain.rpn.sgb_selection and plain.rpn.min_size == 1e-3
    assert not (plain.roi_heads.post_processor.nms_plus_one or plain.roi_heads.post_processor.proposal_order)
