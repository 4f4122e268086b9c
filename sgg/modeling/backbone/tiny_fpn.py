"""tiny-FPN: a 4-stage CNN (``MODEL.TINY_BACKBONE.STAGE_CHANNELS``, 16..128 by default) + a torchvision FPN of
``MODEL.BACKBONE.OUT_CHANNELS`` channels. It trains from scratch on a CPU in minutes (tests, synthetic VG).

Same outputs as the ResNet-FPNs (``"0"``..``"3"`` at strides 4..32, ``"pool"`` at 64), so every config that works
here works with the big backbones. Normalisation is GroupNorm, not BatchNorm: it does not depend on the batch, so
training with 2 processes x 4 images gives the same model as 1 process x 8 (the DDP equivalence test), and it needs
no ImageNet statistics.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import BACKBONES

from .weights import freeze_stages, load_trunk_weights, resolve_weights_file


def conv_gn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(math.gcd(8, out_channels), out_channels),
        nn.ReLU(inplace=True),
    )


class TinyBody(nn.Module):
    """Stem (stride 2) + 4 stages of two 3x3 convs, each stage halving the resolution: strides 4, 8, 16, 32."""

    def __init__(self, stage_channels: Sequence[int]):
        super().__init__()
        self.stem = conv_gn_relu(3, stage_channels[0], stride=2)
        stages, previous = [], stage_channels[0]
        for channels in stage_channels:
            stages.append(nn.Sequential(conv_gn_relu(previous, channels, 2), conv_gn_relu(channels, channels, 1)))
            previous = channels
        self.stages = nn.ModuleList(stages)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        x = self.stem(images)
        out = OrderedDict()
        for index, stage in enumerate(self.stages):
            x = stage(x)
            out[str(index)] = x
        return out


class TinyFPN(nn.Module):
    def __init__(self, stage_channels: Sequence[int], out_channels: int, freeze_at: int):
        super().__init__()
        self.body = TinyBody(stage_channels)
        self.fpn = FeaturePyramidNetwork(list(stage_channels), out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels
        self.feature_strides = OrderedDict([("0", 4), ("1", 8), ("2", 16), ("3", 32), ("pool", 64)])
        self.box_featmap_names = ["0", "1", "2", "3"]
        freeze_stages([self.body.stem, *self.body.stages], freeze_at)

    def forward(self, images: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return self.fpn(self.body(images))


@BACKBONES.register("tiny-FPN")
def build_tiny_fpn(cfg) -> TinyFPN:
    channels = tuple(int(c) for c in cfg.MODEL.TINY_BACKBONE.STAGE_CHANNELS)
    if len(channels) != 4 or min(channels) <= 0:
        raise ConfigError(f"MODEL.TINY_BACKBONE.STAGE_CHANNELS must give 4 positive channel counts, got {channels}")
    freeze_at = cfg.MODEL.BACKBONE.FREEZE_CONV_BODY_AT
    if not 0 <= freeze_at <= 5:
        raise ConfigError(f"MODEL.BACKBONE.FREEZE_CONV_BODY_AT must be in 0..5 for tiny-FPN, got {freeze_at}")
    backbone = TinyFPN(channels, cfg.MODEL.BACKBONE.OUT_CHANNELS, freeze_at)
    # There are no ImageNet weights for this body: random unless a trunk state dict (keys of TinyBody) is named.
    weights_file = resolve_weights_file(cfg, "tiny-FPN", None)
    if weights_file is not None:
        load_trunk_weights(backbone.body, weights_file, "tiny-FPN")
    return backbone
