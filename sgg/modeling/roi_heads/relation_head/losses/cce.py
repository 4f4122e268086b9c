"""Contrasting cross-entropy (Huang et al., ACCV 2020; METHODS.md 2.2), LOSS term ``cce``.

For a pair with logits z, label y (0 = background, included) and its negative label y~, the most confident wrong
class (for a foreground pair a foreground class unless CCE.BACKGROUND_AS_NEGATIVE; docs/linknet_cce.md says why),

    L_CCE = LAMBDA1 * mean_pairs max(0, CE(z, y) - CE(z, y~) + MARGIN_M1)
          = LAMBDA1 * mean_pairs max(0, log p_y~ - log p_y + MARGIN_M1)

With MARGIN_M1 = 0 only misclassified pairs (some wrong class at least as likely as y) contribute: the loss lowers
the wrong class that wins, usually a frequent predicate, and raises the true one.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import RELATION_LOSSES

from .base import RelationLossInputs


def hardest_negative_labels(logits: torch.Tensor, labels: torch.Tensor, background_as_negative: bool) -> torch.Tensor:
    """(P,) the most confident class other than the label. With ``background_as_negative=False`` a foreground pair's
    negative is the most confident other *foreground* class (background pairs always pick a foreground class)."""
    scores = logits.detach().clone()
    rows = torch.arange(labels.shape[0], device=logits.device)
    scores[rows, labels] = float("-inf")
    if not background_as_negative and scores.shape[1] > 2:
        scores[labels > 0, 0] = float("-inf")
    return scores.argmax(dim=1)


@RELATION_LOSSES.register("cce")
class ContrastingCrossEntropy(nn.Module):
    """``loss_rel_cce``: the hinge above over every sampled pair. It replaces RelationCE (the reference trains with
    ``-loss cce`` and no plain CE term)."""

    def __init__(self, lambda1: float = 100.0, margin: float = 0.0, background_as_negative: bool = False):
        super().__init__()
        if margin < 0:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.CCE.MARGIN_M1 must be >= 0 (the CCE hinge margin m1), "
                              f"got {margin}")
        if lambda1 < 0:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.CCE.LAMBDA1 must be >= 0 (the CCE weight), got {lambda1}")
        self.lambda1 = float(lambda1)
        self.margin = float(margin)
        self.background_as_negative = bool(background_as_negative)

    @classmethod
    def from_config(cls, cfg, statistics=None):
        cce = cfg.MODEL.ROI_RELATION_HEAD.CCE
        return cls(cce.LAMBDA1, cce.MARGIN_M1, cce.BACKGROUND_AS_NEGATIVE)

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        logits, labels = inputs.rel_logits, inputs.rel_labels.long()
        if logits.numel() == 0:
            return {"loss_rel_cce": logits.sum() * 0.0}
        negatives = hardest_negative_labels(logits, labels, self.background_as_negative)
        log_probs = F.log_softmax(logits.float(), dim=1)
        # CE(z, y) - CE(z, y~) = log p_y~ - log p_y
        gap = log_probs.gather(1, negatives[:, None]) - log_probs.gather(1, labels[:, None])
        return {"loss_rel_cce": self.lambda1 * F.relu(gap.squeeze(1) + self.margin).mean()}
