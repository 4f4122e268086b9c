"""The box predictor: class logits + per-class box deltas from the box head's MLP features (SGB's FPNPredictor)."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor


class BoxPredictor(FastRCNNPredictor):
    """torchvision's ``FastRCNNPredictor`` (``cls_score``, ``bbox_pred``) initialised as maskrcnn-benchmark's
    (normal std 0.01 for the classifier, 0.001 for the regressor, zero biases), so a model trained from scratch
    starts at a uniform class distribution.

    With ``class_agnostic`` (SGB's ``MODEL.CLS_AGNOSTIC_BBOX_REG``) ``bbox_pred`` predicts one set of deltas for the
    foreground and one for the background, repeated over the classes so that losses and decoding see the usual
    (N, num_classes * 4) layout.
    """

    def __init__(self, in_channels: int, num_classes: int, class_agnostic: bool = False):
        super().__init__(in_channels, num_classes)
        self.num_classes = num_classes
        self.class_agnostic = class_agnostic
        if class_agnostic:
            self.bbox_pred = nn.Linear(in_channels, 2 * 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.constant_(self.cls_score.bias, 0)
        nn.init.constant_(self.bbox_pred.bias, 0)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(start_dim=1)
        scores = self.cls_score(x)
        deltas = self.bbox_pred(x)
        if self.class_agnostic:
            deltas = torch.cat([deltas[:, :4], deltas[:, 4:].repeat(1, self.num_classes - 1)], dim=1)
        return scores, deltas
