"""Loss terms of the CCE paper's other two parts (METHODS.md 2.1, 2.3):

* ``gce``: LinkNet's multi-label image classification, BCE between the class-presence prediction M of the global
  context encoding and y_multi (1 for every class labelling a box of the image).
* ``ranker``: the Ranker's pair score S = sigmoid(logit) against t = 1[pair has a GT predicate], with
  ``RANKER.LOSS`` "bce" (LAMBDA2 * BCE(S, t)), "mse" (LAMBDA2 * MSE(S, t)) or "margin":
      LAMBDA2 * ( w_pos * mean(relu(max_neg - S * t + m2)) + w_neg * mean(relu(S * (1 - t) - min_pos + m2)) )
  with max_neg = max(S * (1 - t)), min_pos = min(S * t) over the batch's pairs, w_pos = n_neg / n, w_neg = n_pos / n
  (the reference's expression, means over all pairs).
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import RELATION_LOSSES

from .base import RelationLossInputs

RANKER_LOSSES = ("bce", "mse", "margin")


@RELATION_LOSSES.register("gce")
class GlobalContextLoss(nn.Module):
    """``loss_gce``: mean BCE over images x classes. ``activation`` "sigmoid" (a multi-label head) or "softmax" (the
    LinkNet re-implementation's quirk: M = softmax(logits), then BCE)."""

    def __init__(self, activation: str = "sigmoid", predictor: str = ""):
        super().__init__()
        if activation not in ("sigmoid", "softmax"):
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.LINKNET.GCE_ACTIVATION must be 'sigmoid' or 'softmax', got "
                              f"{activation!r}")
        self.activation = activation
        self.predictor = predictor

    @classmethod
    def from_config(cls, cfg, statistics=None):
        head = cfg.MODEL.ROI_RELATION_HEAD
        return cls(head.LINKNET.GCE_ACTIVATION, head.PREDICTOR)

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        gce = inputs.aux.global_context
        if gce is None or gce.targets is None:
            raise ConfigError(f"LOSS term 'gce' needs the predictor's global context logits and targets "
                              f"(output.aux.global_context, e.g. LinkNetPredictor); PREDICTOR "
                              f"{self.predictor or '?'} gives none: remove 'gce' from MODEL.ROI_RELATION_HEAD.LOSS")
        logits, targets = gce.logits, gce.targets
        if logits.numel() == 0:
            return {"loss_gce": logits.sum() * 0.0}
        logits, targets = logits.float(), targets.float()
        if self.activation == "sigmoid":
            return {"loss_gce": F.binary_cross_entropy_with_logits(logits, targets)}
        return {"loss_gce": F.binary_cross_entropy(F.softmax(logits, dim=1), targets)}


def margin_ranking_loss(scores: torch.Tensor, targets: torch.Tensor, margin: float) -> torch.Tensor:
    """The reference's "margin" ranker loss (module docstring), over all pairs of the batch."""
    positives, negatives = targets, 1.0 - targets
    count = scores.shape[0]
    w_pos = negatives.sum() / count
    w_neg = positives.sum() / count
    max_neg = (scores * negatives).max()
    min_pos = (scores * positives).min()
    return (w_pos * F.relu(max_neg - scores * positives + margin).mean()
            + w_neg * F.relu(scores * negatives - min_pos + margin).mean())


@RELATION_LOSSES.register("ranker")
class RankerLoss(nn.Module):
    """``loss_rank``: reads the Ranker's ``aux.ranker.logits`` (sum P,) and the pairs' labels."""

    def __init__(self, kind: str = "bce", lambda2: float = 1.0, margin: float = 0.0):
        super().__init__()
        if kind not in RANKER_LOSSES:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.RANKER.LOSS must be one of {RANKER_LOSSES}, got {kind!r}")
        if lambda2 < 0:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.RANKER.LAMBDA2 must be >= 0, got {lambda2}")
        self.kind = kind
        self.lambda2 = float(lambda2)
        self.margin = float(margin)

    @classmethod
    def from_config(cls, cfg, statistics=None):
        ranker = cfg.MODEL.ROI_RELATION_HEAD.RANKER
        return cls(ranker.LOSS, ranker.LAMBDA2, ranker.MARGIN_M2)

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        if inputs.aux.ranker is None:
            raise ConfigError("LOSS term 'ranker' needs the Ranker's pair scores (output.aux.ranker): set "
                              "MODEL.ROI_RELATION_HEAD.RESCORER \"Ranker\"")
        logits = inputs.aux.ranker.logits
        if logits.shape != inputs.rel_labels.shape:
            raise ValueError(f"ranker loss: {tuple(logits.shape)} ranker scores for {tuple(inputs.rel_labels.shape)} "
                             f"pair labels; the Ranker must score every sampled pair once")
        if logits.numel() == 0:
            return {"loss_rank": logits.sum() * 0.0}
        logits = logits.float()
        targets = (inputs.rel_labels > 0).float()
        if self.kind == "bce":
            loss = F.binary_cross_entropy_with_logits(logits, targets)
        elif self.kind == "mse":
            loss = F.mse_loss(torch.sigmoid(logits), targets)
        else:
            loss = margin_ranking_loss(torch.sigmoid(logits), targets, self.margin)
        return {"loss_rank": self.lambda2 * loss}
