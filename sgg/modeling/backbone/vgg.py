"""VGG-16 conv5 backbone, as neural-motifs and LinkNet use it: one stride-16 map of 512 channels, no FPN.

All ``MODEL.RPN.ANCHOR_SIZES`` then sit on that one map (neural-motifs: sizes 32..512 at stride 16). When ImageNet
weights are loaded, the classifier's fc6/fc7 are kept in ``pretrained_box_head_state`` so the detector can start its
box head from them, as neural-motifs does (only if the head is 7x7 -> 4096 -> 4096).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torchvision
from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import BACKBONES

from .weights import freeze_stages, load_trunk_weights, read_state_dict, resolve_weights_file

_CONV5_END = 30  # torchvision vgg16().features[:30] ends with conv5_3 + ReLU, before the last max pool


class VGG16Conv5(nn.Module):
    def __init__(self, features: nn.Sequential, freeze_at: int):
        super().__init__()
        self.body = features
        self.out_channels = 512
        self.feature_strides = OrderedDict([("0", 16)])
        self.box_featmap_names = ["0"]
        self.pretrained_box_head_state = None
        freeze_stages(_conv_blocks(features), freeze_at)

    def forward(self, images: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return OrderedDict([("0", self.body(images))])


def _conv_blocks(features: nn.Sequential):
    """The five conv blocks (conv1 .. conv5), split at the max pools."""
    blocks, current = [], []
    for layer in features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            blocks.append(nn.Sequential(*current))
            current = []
    if current:
        blocks.append(nn.Sequential(*current))
    return blocks


@BACKBONES.register("VGG-16")
def build_vgg16(cfg) -> VGG16Conv5:
    freeze_at = cfg.MODEL.BACKBONE.FREEZE_CONV_BODY_AT
    if not 0 <= freeze_at <= 5:
        raise ConfigError(f"MODEL.BACKBONE.FREEZE_CONV_BODY_AT must be in 0..5 for VGG-16 (freezes conv1..convN), "
                          f"got {freeze_at}")
    model = torchvision.models.vgg16(weights=None)
    weights_file = resolve_weights_file(cfg, "VGG-16", "VGG16_Weights.IMAGENET1K_V1")
    box_head_state = None
    if weights_file is not None:
        load_trunk_weights(model, weights_file, "VGG-16", ignore_prefixes=("classifier.",))
        state = read_state_dict(weights_file)
        if "classifier.0.weight" in state and "classifier.3.weight" in state:
            box_head_state = {"fc6.weight": state["classifier.0.weight"], "fc6.bias": state["classifier.0.bias"],
                              "fc7.weight": state["classifier.3.weight"], "fc7.bias": state["classifier.3.bias"]}
    backbone = VGG16Conv5(model.features[:_CONV5_END], freeze_at)
    backbone.pretrained_box_head_state = box_head_state
    return backbone
