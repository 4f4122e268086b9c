"""What a head that sits on a two-stage detector may read from it: ``GeneralizedRCNN.feature_interface()``.

The relation head is built from this small record instead of the detector's attributes, so any detector that can
fill it (a pooler, a box MLP, the feature width and the pooled map names) carries a relation head.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from torch import nn


@dataclass(frozen=True)
class DetectorFeatureInterface:
    # (features, per-image (N_i, 4) xyxy boxes, (h, w) image sizes) -> (sum N_i, C, R, R); no parameters
    box_pooler: nn.Module
    # the detector's box MLP (fc6, fc7): pooled -> (sum N_i, MLP_HEAD_DIM); a head copies it, never shares it
    box_head: nn.Module
    # channels of every backbone feature map
    feature_channels: int
    # names of the feature maps the box pooler reads, finest first
    box_feature_maps: Tuple[str, ...]
