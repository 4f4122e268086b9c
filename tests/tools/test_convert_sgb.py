"""tools/convert_sgb_checkpoint.py on a state dict written by SGB's (maskrcnn-benchmark's) naming rules."""
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import convert_sgb_checkpoint as tool  # noqa: E402

from sgg.modeling.sgb_conventions import MultiLevelRoIAlign  # noqa: E402
from sgg.structures import to_image_list  # noqa: E402

NUM_CLASSES, MLP, RATIOS = 5, 32, 4
# a small R-50-FPN detector in SGB's layout (VG yaml anchors: 4 ratios, 5 levels)
OPTS = ["MODEL.BACKBONE.CONV_BODY", "R-50-FPN", "MODEL.RESNETS.NUM_GROUPS", "1", "MODEL.RESNETS.WIDTH_PER_GROUP",
        "64", "MODEL.ROI_BOX_HEAD.NUM_CLASSES", str(NUM_CLASSES), "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", str(MLP),
        "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96"]


def _bn(prefix, channels):
    names = ("weight", "bias", "running_mean", "running_var")  # FrozenBatchNorm2d's buffers
    return {f"{prefix}.{name}": torch.rand(channels) + 0.5 for name in names}


def sgb_resnet_fpn_state_dict(depths=(3, 4, 6, 3), groups=1, width_per_group=64, fpn=256, num_classes=NUM_CLASSES,
                               resolution=7):
    """SGB's key names and shapes for ResNe(X)t-FPN, written from maskrcnn-benchmark's module names: stem.conv1 /
    stem.bn1, layerN.i.conv{1,2,3} / bn{1,2,3} / downsample.{0,1}, fpn_inner{i} / fpn_layer{i}, rpn.head.*, the
    anchor BufferList, roi_heads.box.feature_extractor.fc6/fc7 and roi_heads.box.predictor.*. Stage N's bottleneck
    is NUM_GROUPS * WIDTH_PER_GROUP * 2^(N-1) wide (conv2 grouped), its output 256 * 2^(N-1) (RES2_OUT_CHANNELS);
    the FPN (and RPN) are ``fpn`` channels wide, the box head pools ``resolution`` x ``resolution``."""
    sd = {"backbone.body.stem.conv1.weight": torch.randn(64, 3, 7, 7), **_bn("backbone.body.stem.bn1", 64)}
    in_ch = 64
    for stage, blocks in enumerate(depths, start=1):
        width, out_ch = groups * width_per_group * 2 ** (stage - 1), 256 * 2 ** (stage - 1)
        for i in range(blocks):
            p = f"backbone.body.layer{stage}.{i}"
            sd[f"{p}.conv1.weight"] = torch.randn(width, in_ch, 1, 1)
            sd[f"{p}.conv2.weight"] = torch.randn(width, width // groups, 3, 3)
            sd[f"{p}.conv3.weight"] = torch.randn(out_ch, width, 1, 1)
            for j, c in ((1, width), (2, width), (3, out_ch)):
                sd.update(_bn(f"{p}.bn{j}", c))
            if i == 0:
                sd[f"{p}.downsample.0.weight"] = torch.randn(out_ch, in_ch, 1, 1)
                sd.update(_bn(f"{p}.downsample.1", out_ch))
            in_ch = out_ch
        sd[f"backbone.fpn.fpn_inner{stage}.weight"] = torch.randn(fpn, out_ch, 1, 1)
        sd[f"backbone.fpn.fpn_inner{stage}.bias"] = torch.randn(fpn)
        sd[f"backbone.fpn.fpn_layer{stage}.weight"] = torch.randn(fpn, fpn, 3, 3)
        sd[f"backbone.fpn.fpn_layer{stage}.bias"] = torch.randn(fpn)
    sd.update({"rpn.head.conv.weight": torch.randn(fpn, fpn, 3, 3), "rpn.head.conv.bias": torch.randn(fpn),
               "rpn.head.cls_logits.weight": torch.randn(RATIOS, fpn, 1, 1),
               "rpn.head.cls_logits.bias": torch.randn(RATIOS),
               "rpn.head.bbox_pred.weight": torch.randn(4 * RATIOS, fpn, 1, 1),
               "rpn.head.bbox_pred.bias": torch.randn(4 * RATIOS)})
    for level in range(5):
        sd[f"rpn.anchor_generator.cell_anchors.{level}"] = torch.randn(RATIOS, 4)
    sd.update({"roi_heads.box.feature_extractor.fc6.weight": torch.randn(MLP, fpn * resolution * resolution),
               "roi_heads.box.feature_extractor.fc6.bias": torch.randn(MLP),
               "roi_heads.box.feature_extractor.fc7.weight": torch.randn(MLP, MLP),
               "roi_heads.box.feature_extractor.fc7.bias": torch.randn(MLP),
               "roi_heads.box.predictor.cls_score.weight": torch.randn(num_classes, MLP),
               "roi_heads.box.predictor.cls_score.bias": torch.randn(num_classes),
               "roi_heads.box.predictor.bbox_pred.weight": torch.randn(4 * num_classes, MLP),
               "roi_heads.box.predictor.bbox_pred.bias": torch.randn(4 * num_classes)})
    return sd


@pytest.fixture(scope="module")
def sgb_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sgb") / "model_final.pth"
    state = sgb_resnet_fpn_state_dict()
    state["roi_heads.relation.union_feature_extractor.fc6.weight"] = torch.randn(2, 2)  # SGB's own relation head
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "iteration": 1}, path)
    return path, state


def test_every_key_is_mapped_and_the_converted_detector_runs(sgb_file, tmp_path):
    path, state = sgb_file
    config = os.path.join(REPO, "configs", "e2e_relation_detector_X_101_32_8_FPN_1x.yaml")
    cfg, detector, converted, skipped = tool.convert(str(path), config, OPTS)
    ours = detector.state_dict()
    assert set(converted) == set(ours)  # nothing of ours left unset
    anchors = [k for k in state if "cell_anchors" in k]
    assert set(skipped) == set(anchors) | {"roi_heads.relation.union_feature_extractor.fc6.weight"}
    assert len(converted) + len(skipped) == len(state)  # nothing of SGB's left over
    assert torch.equal(ours["backbone.fpn.inner_blocks.0.0.weight"], state["backbone.fpn.fpn_inner1.weight"])
    assert torch.equal(ours["backbone.body.conv1.weight"], state["backbone.body.stem.conv1.weight"])
    assert torch.equal(ours["backbone.body.layer3.5.bn2.running_var"], state["backbone.body.layer3.5.bn2.running_var"])
    assert torch.equal(ours["rpn.head.conv.0.0.weight"], state["rpn.head.conv.weight"])
    assert torch.equal(ours["roi_heads.box_head.fc7.bias"], state["roi_heads.box.feature_extractor.fc7.bias"])
    # SGB's conventions are switched on: +1 box coder, Detectron anchors, frozen BN without epsilon, its level rule
    assert cfg.MODEL.BOX_CODER_PLUS_ONE and cfg.MODEL.RPN.LEGACY_ANCHORS and cfg.MODEL.RESNETS.FROZEN_BN_EPS == 0.0
    pooler = detector.roi_heads.box_roi_pool
    assert isinstance(pooler, MultiLevelRoIAlign) and pooler.legacy_levels and not pooler.aligned
    detector.eval()
    with torch.no_grad():
        detections = detector(to_image_list([torch.randn(3, 64, 96)], 32))
    assert len(detections) == 1 and detections[0].bbox.shape[1] == 4

    out = tmp_path / "converted.pth"
    assert tool.main(["--sgb-checkpoint", str(path), "--output", str(out), "--config-file", config, *OPTS]) == 0
    saved = torch.load(out, weights_only=False)
    assert set(saved["model"]) == set(ours) and "ROI_BOX_HEAD" in saved["config"]


def test_mismatches_are_named(sgb_file, tmp_path, caplog):
    path, state = sgb_file
    config = os.path.join(REPO, "configs", "e2e_relation_detector_X_101_32_8_FPN_1x.yaml")
    with pytest.raises(ValueError, match=r"cls_score.weight: shape \(5, 32\), but .* is \(7, 32\)"):
        tool.convert(str(path), config, OPTS + ["MODEL.ROI_BOX_HEAD.NUM_CLASSES", "7"])
    with pytest.raises(ValueError, match=r"anchors .* do not match the config .* ASPECT_RATIOS"):
        tool.convert(str(path), config, OPTS + ["MODEL.RPN.ASPECT_RATIOS", "(0.5, 1.0, 2.0, 3.0, 4.0)"])
    extra = tmp_path / "extra.pth"
    torch.save({"model": {**state, "roi_heads.mask.predictor.weight": torch.zeros(1)}}, extra)
    with pytest.raises(ValueError, match=r"1 SGB keys have no counterpart here, e.g. \['roi_heads.mask.predictor"):
        tool.convert(str(extra), config, OPTS)
    partial = tmp_path / "partial.pth"
    torch.save({"model": {k: v for k, v in state.items() if "fc7" not in k}}, partial)
    with pytest.raises(ValueError, match="does not provide 2 tensors of this detector"):
        tool.convert(str(partial), config, OPTS)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    out = tmp_path / "never.pth"
    assert tool.main(["--sgb-checkpoint", str(broken), "--output", str(out), "--config-file", config, *OPTS]) == 2
    assert "could not be read as a torch checkpoint" in caplog.text and not out.exists()
    assert tool.main(["--sgb-checkpoint", str(tmp_path / "none.pth"), "--output", str(out)]) == 2
    assert "none.pth does not exist" in caplog.text


def test_grouped_resnext_101_converts_and_runs(tmp_path):
    """X-101-FPN with 2 groups of width 4 (SGB's detector is 32 x 8): 23 blocks in layer3, grouped conv2 shapes."""
    torch.manual_seed(1)
    state = sgb_resnet_fpn_state_dict(depths=(3, 4, 23, 3), groups=2, width_per_group=4)
    assert tuple(state["backbone.body.layer3.22.conv2.weight"].shape) == (32, 16, 3, 3)  # 2 * 4 * 2^2 = 32 wide
    opts = OPTS + ["MODEL.BACKBONE.CONV_BODY", "R-101-FPN", "MODEL.RESNETS.NUM_GROUPS", "2",
                   "MODEL.RESNETS.WIDTH_PER_GROUP", "4"]
    config = os.path.join(REPO, "configs", "e2e_relation_detector_X_101_32_8_FPN_1x.yaml")
    path = tmp_path / "sgb_x101.pth"
    torch.save({"model": state}, path)
    _, detector, converted, skipped = tool.convert(str(path), config, opts)
    assert set(converted) == set(detector.state_dict()) and len(converted) + len(skipped) == len(state)
    assert torch.equal(detector.backbone.body.layer3[22].conv2.weight, state["backbone.body.layer3.22.conv2.weight"])
    detector.eval()
    with torch.no_grad():
        assert len(detector(to_image_list([torch.randn(3, 64, 64)], 32))) == 1


def test_level_rule_of_maskrcnn_benchmark_by_hand():
    """Level = floor(4 + log2(sqrt(area) / 224 + 1e-6)), clamped to 2..5 for scales 1/4 .. 1/32, minus 2."""
    scales = [0.25, 0.125, 0.0625, 0.03125]
    boxes = torch.tensor([[0.0, 0.0, 223.0, 223.0],   # legacy: side 224 -> log2(1) = 0 -> 4; torchvision: 223 -> 3
                          [0.0, 0.0, 111.0, 111.0],   # legacy: side 112 -> log2(1/2) = -1 -> 3
                          [0.0, 0.0, 10.0, 10.0],     # side 11 -> 4 + log2(0.049) = -0.35 -> floor -1 -> clamp 2
                          [0.0, 0.0, 2000.0, 2000.0]])  # side 2001 -> 4 + 3.16 -> 7 -> clamp 5
    legacy = MultiLevelRoIAlign(["0", "1", "2", "3"], 7, 2, legacy_levels=True)
    assert legacy.box_levels(boxes, scales).tolist() == [4 - 2, 3 - 2, 2 - 2, 5 - 2]
    plain = MultiLevelRoIAlign(["0", "1", "2", "3"], 7, 2, legacy_levels=False)
    assert plain.box_levels(boxes, scales).tolist() == [3 - 2, 2 - 2, 2 - 2, 5 - 2]  # side 111 -> 4 - 1.01 -> 2


def test_roi_align_variant_by_hand():
    """On a map whose value is its x coordinate, a 1 x 1 bin over box x 0..4 with 2 x 2 samples averages the sample
    x positions: legacy grid 0 + (0.5, 1.5) * 4 / 2 = 1, 3 -> 2.0; aligned grid shifted by -0.5 -> 0.5, 2.5 -> 1.5."""
    feature = torch.arange(8.0).repeat(8, 1)[None, None]  # (1, 1, 8, 8), value = x
    boxes = [torch.tensor([[0.0, 0.0, 4.0, 4.0]])]
    legacy = MultiLevelRoIAlign(["p"], 1, 2, aligned=False)({"p": feature}, boxes, [(8, 8)])
    aligned = MultiLevelRoIAlign(["p"], 1, 2, aligned=True)({"p": feature}, boxes, [(8, 8)])
    assert legacy.item() == pytest.approx(2.0) and aligned.item() == pytest.approx(1.5)
    # two levels (scales 1/4 and 1/8 of a 64 x 64 image), each map constant: the value says which level pooled a box
    maps = {"a": torch.full((1, 1, 16, 16), 10.0), "b": torch.full((1, 1, 8, 8), 20.0)}
    pooler = MultiLevelRoIAlign(["a", "b"], 2, 2, legacy_levels=True)
    out = pooler(maps, [torch.tensor([[0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 63.0, 63.0]])], [(64, 64)])
    # side 21 -> level floor(4 + log2(0.094)) = 0 -> clamp 2 -> "a"; side 64 -> floor(4 - 1.81) = 2 -> "a" as well
    assert out.shape == (2, 1, 2, 2) and out[:, 0, 0, 0].tolist() == [10.0, 10.0]
    big = pooler(maps, [torch.tensor([[0.0, 0.0, 127.0, 127.0]])], [(64, 64)])  # side 128 -> floor(3.19) = 3 -> "b"
    assert big[0, 0, 0, 0].item() == 20.0


def test_the_sgb_detector_relation_config_has_the_converters_conventions():
    from sgg.config import load_config

    cfg = load_config(os.path.join(REPO, "configs", "e2e_relation_X_101_32_8_FPN_1x_sgb_detector.yaml"), [])
    pairs = dict(zip(tool.SGB_CONVENTIONS[0::2], tool.SGB_CONVENTIONS[1::2]))
    assert len(pairs) == 9
    for key, text in pairs.items():
        value = cfg
        for part in key.split("."):
            value = getattr(value, part)
        assert str(value) == text, key
