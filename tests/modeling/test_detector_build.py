"""Every registered backbone builds (and the big ones run once on a 64x64 image); bad configs fail with messages
that name the keys: unknown backbone, missing weights, neither weights nor random init, CUDA without a GPU."""
import os

import pytest
import torch

from sgg.config import ConfigError, get_cfg
from sgg.modeling import build_detection_model, resolve_device
from sgg.modeling.backbone import BackboneWeightsError, build_backbone
from sgg.modeling.registry import BACKBONES
from sgg.utils.errors import CheckpointError

BACKBONE_NAMES = ["R-50-FPN", "R-101-FPN", "X-101-32x8d-FPN", "VGG-16", "tiny-FPN"]


def small_head_cfg(body, *overrides):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.BACKBONE.CONV_BODY", body, "MODEL.RANDOM_INIT_BACKBONE", True,
                         "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", 32, "MODEL.ROI_BOX_HEAD.NUM_CLASSES", 5,
                         "MODEL.RPN.PRE_NMS_TOP_N_TEST", 100, "MODEL.RPN.POST_NMS_TOP_N_TEST", 20,
                         "MODEL.RPN.FPN_POST_NMS_TOP_N_TEST", 20] + list(overrides))
    return cfg


def test_all_backbones_are_registered():
    assert set(BACKBONE_NAMES) <= set(BACKBONES)


@pytest.mark.parametrize("body", BACKBONE_NAMES)
def test_every_backbone_builds_a_detector_that_runs(body):
    torch.manual_seed(0)
    model = build_detection_model(small_head_cfg(body)).eval()
    strides = model.feature_strides
    with torch.no_grad():
        features = model.extract_features([torch.randn(3, 64, 64)])
        assert list(features) == list(strides)
        for name, stride in strides.items():
            assert features[name].shape[1] == model.backbone.out_channels
            assert features[name].shape[-1] == max(64 // stride, 1)
        out = model([torch.randn(3, 64, 64)])
    assert len(out) == 1 and out[0].get_field("box_features").shape[1] == 32


def test_resnet_variants_follow_sgb_keys():
    def first_block(cfg):
        return build_backbone(cfg).body.layer2[0]

    cfg = small_head_cfg("R-50-FPN", "MODEL.RESNETS.STRIDE_IN_1X1", True)
    block = first_block(cfg)
    assert block.conv1.stride == (2, 2) and block.conv2.stride == (1, 1)
    cfg = small_head_cfg("R-50-FPN", "MODEL.RESNETS.STRIDE_IN_1X1", False)
    block = first_block(cfg)
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    # SGB's detector yaml: R-101-FPN with 32 groups of width 8 is ResNeXt-101 32x8d
    cfg = small_head_cfg("R-50-FPN", "MODEL.RESNETS.NUM_GROUPS", 32, "MODEL.RESNETS.WIDTH_PER_GROUP", 4)
    assert first_block(cfg).conv2.groups == 32 and first_block(cfg).conv2.out_channels == 256


def test_freeze_conv_body_at_freezes_stem_and_first_stages():
    backbone = build_backbone(small_head_cfg("tiny-FPN", "MODEL.BACKBONE.FREEZE_CONV_BODY_AT", 2))
    frozen = {n.split(".")[1] + ("." + n.split(".")[2] if n.startswith("body.stages") else "")
              for n, p in backbone.named_parameters() if not p.requires_grad}
    assert frozen == {"stem", "stages.0"}
    assert all(p.requires_grad for p in backbone.fpn.parameters())
    backbone = build_backbone(small_head_cfg("R-50-FPN", "MODEL.BACKBONE.FREEZE_CONV_BODY_AT", 2))
    assert not backbone.body.conv1.weight.requires_grad and not backbone.body.layer1[0].conv1.weight.requires_grad
    assert backbone.body.layer2[0].conv1.weight.requires_grad
    assert type(backbone.body.bn1).__name__ == "FrozenBatchNorm2d"


def test_unknown_backbone_lists_registered_names():
    with pytest.raises(KeyError) as err:
        build_detection_model(small_head_cfg("R-52-FPN"))
    text = str(err.value)
    assert "MODEL.BACKBONE.CONV_BODY" in text and "R-50-FPN" in text
    for name in BACKBONE_NAMES:
        assert name in text


def test_neither_weights_nor_random_init_names_both_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torchvision cache
    cfg = small_head_cfg("R-50-FPN", "MODEL.RANDOM_INIT_BACKBONE", False)
    with pytest.raises(BackboneWeightsError) as err:
        build_detection_model(cfg)
    text = str(err.value)
    assert "MODEL.PRETRAINED_BACKBONE_PATH" in text and "MODEL.RANDOM_INIT_BACKBONE" in text
    assert "download.pytorch.org" in text  # where to get the file
    assert isinstance(err.value, CheckpointError)  # the tools print it as one line (and it stays a RuntimeError)
    assert isinstance(err.value, RuntimeError)
    with pytest.raises(BackboneWeightsError, match="MODEL.RANDOM_INIT_BACKBONE"):
        build_detection_model(small_head_cfg("tiny-FPN", "MODEL.RANDOM_INIT_BACKBONE", False))


def test_missing_weights_file_is_an_error_naming_the_file_and_key(tmp_path):
    missing = str(tmp_path / "resnet50.pth")
    cfg = small_head_cfg("R-50-FPN", "MODEL.PRETRAINED_BACKBONE_PATH", missing)
    with pytest.raises(BackboneWeightsError) as err:
        build_detection_model(cfg)
    assert missing in str(err.value) and "MODEL.PRETRAINED_BACKBONE_PATH" in str(err.value)


def test_weights_file_is_loaded_and_a_wrong_one_is_reported(tmp_path):
    from sgg.modeling.backbone.tiny_fpn import TinyBody

    body = TinyBody((8, 8, 8, 8))
    good = tmp_path / "tiny.pth"
    torch.save({"state_dict": body.state_dict()}, good)
    cfg = small_head_cfg("tiny-FPN", "MODEL.TINY_BACKBONE.STAGE_CHANNELS", (8, 8, 8, 8),
                         "MODEL.PRETRAINED_BACKBONE_PATH", str(good), "MODEL.RANDOM_INIT_BACKBONE", False)
    backbone = build_backbone(cfg)
    assert torch.equal(backbone.body.stem[0].weight, body.stem[0].weight)
    bad = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    cfg.MODEL.PRETRAINED_BACKBONE_PATH = str(bad)
    with pytest.raises(BackboneWeightsError, match="missing keys"):
        build_backbone(cfg)


def test_cuda_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = small_head_cfg("tiny-FPN", "MODEL.DEVICE", "cuda")
    with pytest.raises(ConfigError, match="MODEL.DEVICE.*no CUDA GPU"):
        build_detection_model(cfg)
    with pytest.raises(ConfigError, match="MODEL.DEVICE"):
        resolve_device(small_head_cfg("tiny-FPN", "MODEL.DEVICE", "tpu"))
    assert resolve_device(small_head_cfg("tiny-FPN")) == torch.device("cpu")


def test_bad_targets_are_reported_with_the_image_and_key():
    from sgg.structures import BoxList

    model = build_detection_model(small_head_cfg("tiny-FPN"))
    image = [torch.randn(3, 64, 64)]
    target = BoxList(torch.tensor([[4.0, 4.0, 30.0, 30.0]]), (64, 64))
    target.add_field("labels", torch.tensor([5]))
    with pytest.raises(ValueError, match="MODEL.ROI_BOX_HEAD.NUM_CLASSES"):
        model(image, [target])
    target.add_field("labels", torch.tensor([1]))
    with pytest.raises(ValueError, match="resized image"):
        model(image, [target.resize((32, 32))])
    flat = BoxList(torch.tensor([[4.0, 4.0, 4.0, 30.0]]), (64, 64))
    flat.add_field("labels", torch.tensor([1]))
    with pytest.raises(ValueError, match="without area"):
        model(image, [flat])
    with pytest.raises(ValueError, match="labels"):
        model(image, [BoxList(torch.tensor([[4.0, 4.0, 30.0, 30.0]]), (64, 64))])


def test_sgb_detector_yaml_loads_and_builds_resnext(tmp_path):
    root = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(root, "e2e_relation_detector_X_101_32_8_FPN_1x.yaml"))
    assert cfg.MODEL.BACKBONE.CONV_BODY == "R-101-FPN" and cfg.MODEL.RESNETS.NUM_GROUPS == 32
    assert cfg.MODEL.RPN.ANCHOR_STRIDE == (4, 8, 16, 32, 64) and cfg.MODEL.ROI_HEADS.DETECTIONS_PER_IMG == 256
    cfg.merge_from_list(["MODEL.RANDOM_INIT_BACKBONE", True, "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", 32])
    backbone = build_backbone(cfg)
    assert backbone.body.layer2[0].conv2.groups == 32 and backbone.body.layer2[0].conv2.stride == (2, 2)


CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
DETECTOR_CONFIGS = sorted(
    [os.path.join("detector", f) for f in os.listdir(os.path.join(CONFIG_DIR, "detector"))
     if f.endswith(".yaml") and f != "vg150_base.yaml"]
    + ["synthetic/detector_tiny_fpn.yaml", "synthetic_vglike/detector_tiny_fpn.yaml",
       "e2e_relation_detector_X_101_32_8_FPN_1x.yaml"])


@pytest.mark.parametrize("name", DETECTOR_CONFIGS)
def test_detector_configs_load_and_build(name):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(CONFIG_DIR, name))
    assert not cfg.MODEL.RELATION_ON
    # small heads keep the test quick; the rest of each config is built as written
    cfg.merge_from_list(["MODEL.RANDOM_INIT_BACKBONE", True, "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", 16])
    model = build_detection_model(cfg)
    assert model.num_classes == cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES
    assert model.rpn.head.cls_logits.out_channels == len(cfg.MODEL.RPN.ASPECT_RATIOS) * (
        len(cfg.MODEL.RPN.ANCHOR_SIZES) if len(model.feature_strides) == 1 else 1)


def test_torchvision_cache_is_used_when_the_file_is_there(monkeypatch, tmp_path):
    from sgg.modeling.backbone.weights import cached_weights_file, resolve_weights_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, url = cached_weights_file("ResNet50_Weights.IMAGENET1K_V1")
    assert path is None and url.endswith(".pth")
    target = tmp_path / "hub" / "checkpoints" / os.path.basename(url)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"")
    cfg = small_head_cfg("R-50-FPN", "MODEL.RANDOM_INIT_BACKBONE", False)
    assert resolve_weights_file(cfg, "R-50-FPN", "ResNet50_Weights.IMAGENET1K_V1") == str(target)
