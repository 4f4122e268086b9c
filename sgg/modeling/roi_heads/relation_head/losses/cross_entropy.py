"""SGB's two default terms (PROTOCOL.md 4.6): relation CE over sampled fg + bg pairs, object CE over boxes."""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from sgg.modeling.registry import RELATION_LOSSES

from .base import RelationLossInputs


def label_smoothing_ce(logits: torch.Tensor, labels: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Cross-entropy against (1 - e) one-hot + e / C uniform (SGB's Label_Smoothing_Regression)."""
    log_probs = F.log_softmax(logits, dim=-1)
    target = torch.full_like(log_probs, epsilon / logits.shape[-1])
    target.scatter_(1, labels[:, None], 1.0 - epsilon + epsilon / logits.shape[-1])
    return -(target * log_probs).sum(-1).mean()


@RELATION_LOSSES.register()
class RelationCE(nn.Module):
    """``loss_rel``: mean CE over every sampled pair, background included."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    @classmethod
    def from_config(cls, cfg, statistics=None):
        return cls(0.01 if cfg.MODEL.ROI_RELATION_HEAD.LABEL_SMOOTHING_LOSS else 0.0)

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        if inputs.rel_logits.numel() == 0:
            return {"loss_rel": inputs.rel_logits.sum() * 0.0}
        if self.label_smoothing > 0:
            return {"loss_rel": label_smoothing_ce(inputs.rel_logits, inputs.rel_labels, self.label_smoothing)}
        return {"loss_rel": F.cross_entropy(inputs.rel_logits, inputs.rel_labels)}


@RELATION_LOSSES.register()
class ObjectCE(nn.Module):
    """``loss_refine_obj``: CE of the refined object logits against the boxes' labels (about 0 in PredCls)."""

    @classmethod
    def from_config(cls, cfg, statistics=None):
        return cls()

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        if inputs.obj_logits is None or inputs.obj_labels is None or inputs.obj_logits.numel() == 0:
            return {"loss_refine_obj": inputs.rel_logits.sum() * 0.0}
        return {"loss_refine_obj": F.cross_entropy(inputs.obj_logits, inputs.obj_labels.long())}
