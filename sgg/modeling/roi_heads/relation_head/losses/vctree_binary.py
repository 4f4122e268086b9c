"""VCTree's ``binary_loss`` (SGB's VCTreePredictor, PROTOCOL.md 4.5) as the LOSS term ``VCTreeBinary``: per image,
the mean binary cross-entropy (with logits) between the pair score logits the tree was built from and the GT pair
matrix (1 where the two boxes carry a GT relation, either direction); the term ``loss_binary`` is the mean over the
images. SGB adds it to the loss sum with weight 1; VCTreePredictor.required_loss_terms makes build_relation_losses
add it when MODEL.ROI_RELATION_HEAD.LOSS does not name it."""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from sgg.modeling.registry import RELATION_LOSSES

from .base import RelationLossInputs, required_aux

@RELATION_LOSSES.register()
class VCTreeBinary(nn.Module):
    """``loss_binary`` = mean over images of mean_ij BCE(pair logit_ij, GT pair_ij)."""

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        scores = required_aux(inputs, "pair_scores", "VCTreeBinary", "VCTreePredictor or CausalAnalysisPredictor "
                              "with CAUSAL.CONTEXT_LAYER vctree, in training with rel_binarys")
        logits, targets, image = scores.logits, scores.targets, scores.image
        if logits.numel() == 0:
            return {"loss_binary": inputs.rel_logits.sum() * 0.0}
        per_entry = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        num_images = len(inputs.num_pairs_per_image) or int(image.max()) + 1
        sums = per_entry.new_zeros(num_images).index_add(0, image, per_entry)
        counts = per_entry.new_zeros(num_images).index_add(0, image, torch.ones_like(per_entry))
        has_boxes = counts > 0  # an image without boxes has no pair matrix (SGB never sees one)
        per_image = sums / counts.clamp(min=1.0)
        return {"loss_binary": (per_image * has_boxes).sum() / has_boxes.sum().clamp(min=1)}
