"""ResNet / ResNeXt + FPN backbones (torchvision trunks with FrozenBatchNorm2d, torchvision.ops FPN).

Outputs P2..P5 (``"0"``..``"3"``, strides 4..32) and P6 (``"pool"``, stride 64, a stride-2 max pool of P5), as
maskrcnn-benchmark's FPN for Faster R-CNN: the RPN uses all five, the box head P2..P5.

SGB's VG detector is ``CONV_BODY "R-101-FPN"`` with ``RESNETS.NUM_GROUPS 32``, ``WIDTH_PER_GROUP 8``: the ResNet
builders honour the group keys, so SGB's yaml builds ResNeXt-101 32x8d; ``X-101-32x8d-FPN`` names it directly.
"""
from __future__ import annotations

import logging
from collections import OrderedDict

import torchvision
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import BACKBONES

from .weights import freeze_stages, load_trunk_weights, resolve_weights_file

logger = logging.getLogger(__name__)

_TRUNKS = {50: torchvision.models.resnet50, 101: torchvision.models.resnet101}
# torchvision weight names of each (depth, groups, width per group), for the offline cache lookup and error hints.
_IMAGENET_WEIGHTS = {
    (50, 1, 64): "ResNet50_Weights.IMAGENET1K_V1",
    (101, 1, 64): "ResNet101_Weights.IMAGENET1K_V1",
    (50, 32, 4): "ResNeXt50_32X4D_Weights.IMAGENET1K_V1",
    (101, 32, 8): "ResNeXt101_32X8D_Weights.IMAGENET1K_V1",
    (101, 64, 4): "ResNeXt101_64X4D_Weights.IMAGENET1K_V1",
}
_STAGE_OUT_CHANNELS = [256, 512, 1024, 2048]  # bottleneck outputs of layer1..layer4, whatever the groups


class ResNetFPN(BackboneWithFPN):
    """``body`` (the torchvision trunk up to layer4) + ``fpn``; see the module docstring for the outputs."""

    def __init__(self, trunk, out_channels: int, freeze_at: int):
        super().__init__(trunk, return_layers={f"layer{i + 1}": str(i) for i in range(4)},
                         in_channels_list=_STAGE_OUT_CHANNELS, out_channels=out_channels,
                         extra_blocks=LastLevelMaxPool())
        self.feature_strides = OrderedDict([("0", 4), ("1", 8), ("2", 16), ("3", 32), ("pool", 64)])
        self.box_featmap_names = ["0", "1", "2", "3"]
        body = self.body
        freeze_stages([body.conv1, body.layer1, body.layer2, body.layer3, body.layer4], freeze_at)


def _move_stride_to_1x1(trunk) -> None:
    """MSRA/Caffe ResNets (SGB's ``STRIDE_IN_1X1 True``) stride the first 1x1 conv of a stage, torchvision the 3x3."""
    for layer in (trunk.layer2, trunk.layer3, trunk.layer4):
        block = layer[0]
        block.conv1.stride = (2, 2)
        block.conv2.stride = (1, 1)


def build_resnet_fpn(cfg, name: str, depth: int, groups: int, width_per_group: int) -> ResNetFPN:
    """A ResNet(-Xt)-FPN from the config; ``name`` is the registered name used in messages."""
    out_channels = cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS
    if cfg.MODEL.BACKBONE.OUT_CHANNELS != out_channels:
        raise ConfigError(
            f"backbone {name}: MODEL.BACKBONE.OUT_CHANNELS ({cfg.MODEL.BACKBONE.OUT_CHANNELS}) and SGB's "
            f"MODEL.RESNETS.BACKBONE_OUT_CHANNELS ({out_channels}) both give the FPN width and disagree; set both")
    freeze_at = cfg.MODEL.BACKBONE.FREEZE_CONV_BODY_AT
    if not 0 <= freeze_at <= 5:
        raise ConfigError(f"MODEL.BACKBONE.FREEZE_CONV_BODY_AT must be in 0..5 for {name} (stem + 4 stages), "
                          f"got {freeze_at}")
    eps = float(cfg.MODEL.RESNETS.FROZEN_BN_EPS)
    trunk = _TRUNKS[depth](weights=None, groups=groups, width_per_group=width_per_group,
                           norm_layer=lambda channels: FrozenBatchNorm2d(channels, eps=eps))
    weights_file = resolve_weights_file(cfg, name, _IMAGENET_WEIGHTS.get((depth, groups, width_per_group)))
    if weights_file is not None:
        load_trunk_weights(trunk, weights_file, name, ignore_prefixes=("fc.",))
        if cfg.MODEL.RESNETS.STRIDE_IN_1X1:
            logger.warning("%s: MODEL.RESNETS.STRIDE_IN_1X1 True moves the stride to the 1x1 convs, but torchvision's "
                           "ImageNet ResNets were trained with it in the 3x3 convs; set it False for their weights",
                           name)
    if cfg.MODEL.RESNETS.STRIDE_IN_1X1:
        _move_stride_to_1x1(trunk)
    return ResNetFPN(trunk, out_channels, freeze_at)


@BACKBONES.register("R-50-FPN")
def build_r50_fpn(cfg):
    return build_resnet_fpn(cfg, "R-50-FPN", 50, cfg.MODEL.RESNETS.NUM_GROUPS, cfg.MODEL.RESNETS.WIDTH_PER_GROUP)


@BACKBONES.register("R-101-FPN")
def build_r101_fpn(cfg):
    return build_resnet_fpn(cfg, "R-101-FPN", 101, cfg.MODEL.RESNETS.NUM_GROUPS, cfg.MODEL.RESNETS.WIDTH_PER_GROUP)


@BACKBONES.register("X-101-32x8d-FPN")
def build_x101_32x8d_fpn(cfg):
    groups, width = cfg.MODEL.RESNETS.NUM_GROUPS, cfg.MODEL.RESNETS.WIDTH_PER_GROUP
    if (groups, width) not in ((1, 64), (32, 8)):  # the defaults, or SGB's values for this body
        raise ConfigError(f"backbone X-101-32x8d-FPN is ResNeXt-101 with 32 groups of width 8, but "
                          f"MODEL.RESNETS.NUM_GROUPS/WIDTH_PER_GROUP are {groups}/{width}; use R-101-FPN for other "
                          "group settings")
    return build_resnet_fpn(cfg, "X-101-32x8d-FPN", 101, 32, 8)
