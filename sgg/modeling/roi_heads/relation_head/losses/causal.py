"""Causal TDE's branch losses (SGB's CausalAnalysisPredictor ``add_losses``): each branch must classify alone."""
from __future__ import annotations

from typing import Dict

import torch.nn.functional as F
from torch import nn

from sgg.modeling.registry import RELATION_LOSSES

from .base import RelationLossInputs, required_aux

# SGB's loss name -> the CausalBranchLogits field holding that branch's logits
BRANCH_LOGITS = {"auxiliary_ctx": "ctx", "auxiliary_vis": "vis", "auxiliary_frq": "frq"}


@RELATION_LOSSES.register()
class CausalAuxiliaryCE(nn.Module):
    """CE of the context, visual and frequency branches' logits against the pair labels (weight 1 each, SGB's).
    CausalAnalysisPredictor adds this term by itself; with FUSION_TYPE gate it gives the context branch only."""

    @classmethod
    def from_config(cls, cfg, statistics=None):
        return cls()

    def forward(self, inputs: RelationLossInputs) -> Dict:
        branches = required_aux(inputs, "causal", "CausalAuxiliaryCE", "CausalAnalysisPredictor, in training")
        losses = {}
        for name, key in BRANCH_LOGITS.items():
            logits = getattr(branches, key)
            if logits is None:  # FUSION_TYPE gate: the context branch only
                continue
            losses[name] = F.cross_entropy(logits, inputs.rel_labels) if logits.numel() else logits.sum() * 0.0
        return losses
