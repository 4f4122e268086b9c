"""tools/convert_sgb_checkpoint.py on a state dict written by SGB's (maskrcnn-benchmark's) naming rules."""
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import convert_sgb_checkpoint as tool  # noqa: E402

from sgg.structures import to_image_list  # noqa: E402

NUM_CLASSES, MLP, RATIOS = 5, 32, 4
# a small R-50-FPN detector in SGB's layout (VG yaml anchors: 4 ratios, 5 levels)
OPTS = ["MODEL.BACKBONE.CONV_BODY", "R-50-FPN", "MODEL.RESNETS.NUM_GROUPS", "1", "MODEL.RESNETS.WIDTH_PER_GROUP",
        "64", "MODEL.ROI_BOX_HEAD.NUM_CLASSES", str(NUM_CLASSES), "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", str(MLP),
        "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96"]


def _bn(prefix, channels):
    return {f"{prefix}.{name}": torch.rand(channels) + 0.5 for name in ("weight", "bias", "running_mean", "running_var")}


def sgb_resnet50_fpn_state_dict():
    """SGB's key names and shapes for ResNet-50-FPN, written from maskrcnn-benchmark's module names: stem.conv1 /
    stem.bn1, layerN.i.conv{1,2,3} / bn{1,2,3} / downsample.{0,1}, fpn_inner{i} / fpn_layer{i}, rpn.head.*, the
    anchor BufferList, roi_heads.box.feature_extractor.fc6/fc7 and roi_heads.box.predictor.*."""
    sd = {"backbone.body.stem.conv1.weight": torch.randn(64, 3, 7, 7), **_bn("backbone.body.stem.bn1", 64)}
    in_ch = 64
    for stage, (blocks, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)], start=1):
        out_ch = width * 4
        for i in range(blocks):
            p = f"backbone.body.layer{stage}.{i}"
            sd[f"{p}.conv1.weight"] = torch.randn(width, in_ch, 1, 1)
            sd[f"{p}.conv2.weight"] = torch.randn(width, width, 3, 3)
            sd[f"{p}.conv3.weight"] = torch.randn(out_ch, width, 1, 1)
            for j, c in ((1, width), (2, width), (3, out_ch)):
                sd.update(_bn(f"{p}.bn{j}", c))
            if i == 0:
                sd[f"{p}.downsample.0.weight"] = torch.randn(out_ch, in_ch, 1, 1)
                sd.update(_bn(f"{p}.downsample.1", out_ch))
            in_ch = out_ch
        sd[f"backbone.fpn.fpn_inner{stage}.weight"] = torch.randn(256, out_ch, 1, 1)
        sd[f"backbone.fpn.fpn_inner{stage}.bias"] = torch.randn(256)
        sd[f"backbone.fpn.fpn_layer{stage}.weight"] = torch.randn(256, 256, 3, 3)
        sd[f"backbone.fpn.fpn_layer{stage}.bias"] = torch.randn(256)
    sd.update({"rpn.head.conv.weight": torch.randn(256, 256, 3, 3), "rpn.head.conv.bias": torch.randn(256),
               "rpn.head.cls_logits.weight": torch.randn(RATIOS, 256, 1, 1), "rpn.head.cls_logits.bias": torch.randn(RATIOS),
               "rpn.head.bbox_pred.weight": torch.randn(4 * RATIOS, 256, 1, 1),
               "rpn.head.bbox_pred.bias": torch.randn(4 * RATIOS)})
    for level in range(5):
        sd[f"rpn.anchor_generator.cell_anchors.{level}"] = torch.randn(RATIOS, 4)
    sd.update({"roi_heads.box.feature_extractor.fc6.weight": torch.randn(MLP, 256 * 7 * 7),
               "roi_heads.box.feature_extractor.fc6.bias": torch.randn(MLP),
               "roi_heads.box.feature_extractor.fc7.weight": torch.randn(MLP, MLP),
               "roi_heads.box.feature_extractor.fc7.bias": torch.randn(MLP),
               "roi_heads.box.predictor.cls_score.weight": torch.randn(NUM_CLASSES, MLP),
               "roi_heads.box.predictor.cls_score.bias": torch.randn(NUM_CLASSES),
               "roi_heads.box.predictor.bbox_pred.weight": torch.randn(4 * NUM_CLASSES, MLP),
               "roi_heads.box.predictor.bbox_pred.bias": torch.randn(4 * NUM_CLASSES)})
    return sd


@pytest.fixture(scope="module")
def sgb_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sgb") / "model_final.pth"
    state = sgb_resnet50_fpn_state_dict()
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
