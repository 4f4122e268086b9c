"""Causal TDE's branch losses (SGB's CausalAnalysisPredictor ``add_losses``): each branch must classify alone."""
from __future__ import annotations

from typing import Dict

import torch.nn.functional as F
from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import RELATION_LOSSES

from .base import RelationLossInputs

# SGB's loss name -> the predictor's extras key holding that branch's logits
BRANCH_LOGITS = {"auxiliary_ctx": "causal_ctx_logits", "auxiliary_vis": "causal_vis_logits",
                 "auxiliary_frq": "causal_frq_logits"}


@RELATION_LOSSES.register()
class CausalAuxiliaryCE(nn.Module):
    """CE of the context, visual and frequency branches' logits against the pair labels (weight 1 each, SGB's).
    CausalAnalysisPredictor adds this term by itself; with FUSION_TYPE gate it gives the context branch only."""

    @classmethod
    def from_config(cls, cfg, statistics=None):
        return cls()

    def forward(self, inputs: RelationLossInputs) -> Dict:
        present = {name: key for name, key in BRANCH_LOGITS.items() if key in inputs.extras}
        if not present:
            raise ConfigError("LOSS term CausalAuxiliaryCE needs the branch logits extras['causal_ctx_logits'] (and "
                              "'causal_vis_logits', 'causal_frq_logits') that only CausalAnalysisPredictor produces")
        losses = {}
        for name, key in present.items():
            logits = inputs.extras[key]
            losses[name] = F.cross_entropy(logits, inputs.rel_labels) if logits.numel() else logits.sum() * 0.0
        return losses
