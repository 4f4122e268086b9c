"""The frequency bias of neural-motifs (METHODS.md section 1): log p(predicate | subject class, object class)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


class FrequencyBias(nn.Module):
    """A trainable ``Embedding(C*C, P)`` initialised with ``pred_dist`` (C x C x P, from the train statistics)."""

    def __init__(self, pred_dist):
        super().__init__()
        pred_dist = torch.as_tensor(np.asarray(pred_dist), dtype=torch.float32)
        if pred_dist.ndim != 3 or pred_dist.shape[0] != pred_dist.shape[1]:
            raise ValueError(f"FrequencyBias: pred_dist must have shape (C, C, P), got {tuple(pred_dist.shape)}")
        self.num_objs = pred_dist.shape[0]
        self.num_rels = pred_dist.shape[2]
        self.obj_baseline = nn.Embedding(self.num_objs * self.num_objs, self.num_rels)
        with torch.no_grad():
            self.obj_baseline.weight.copy_(pred_dist.reshape(-1, self.num_rels))

    def index_with_labels(self, pair_labels: torch.Tensor) -> torch.Tensor:
        """(P, 2) subject and object class ids -> (P, num_rels) bias."""
        return self.obj_baseline(pair_labels[:, 0].long() * self.num_objs + pair_labels[:, 1].long())

    def index_with_probability(self, sub_probs: torch.Tensor, obj_probs: torch.Tensor) -> torch.Tensor:
        """Soft lookup with class distributions: (p_s outer p_o) @ W."""
        # float32 under autocast too: the product of two distributions over C classes has entries near 1/C^2, which
        # bfloat16's 8 mantissa bits would round before the sum over C^2 classes.
        with torch.autocast(sub_probs.device.type, enabled=False):
            joint = sub_probs.float()[:, :, None] * obj_probs.float()[:, None, :]
            return joint.reshape(joint.shape[0], -1) @ self.obj_baseline.weight

    def forward(self, pair_labels: torch.Tensor) -> torch.Tensor:
        return self.index_with_labels(pair_labels)
