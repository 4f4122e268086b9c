"""The frequency bias of neural-motifs (METHODS.md section 1): log p(predicate | subject class, object class)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.sgg_config import ConfigError


class FrequencyBias(nn.Module):
    """A trainable ``Embedding(C*C, P)`` initialised with ``pred_dist`` (C x C x P, from the train statistics).

    ``dropout`` (MODEL.ROI_RELATION_HEAD.FREQUENCY_BIAS_DROPOUT) drops bias logits in training, as BA-SGG's and
    ReBalance-HCA's predictors do with ``F.dropout(freq_dists_bias, 0.3, training=self.training)``."""

    def __init__(self, pred_dist, dropout: float = 0.0):
        super().__init__()
        pred_dist = torch.as_tensor(np.asarray(pred_dist), dtype=torch.float32)
        if pred_dist.ndim != 3 or pred_dist.shape[0] != pred_dist.shape[1]:
            raise ValueError(f"FrequencyBias: pred_dist must have shape (C, C, P), got {tuple(pred_dist.shape)}")
        self.num_objs = pred_dist.shape[0]
        self.num_rels = pred_dist.shape[2]
        self.dropout = dropout
        self.obj_baseline = nn.Embedding(self.num_objs * self.num_objs, self.num_rels)
        with torch.no_grad():
            self.obj_baseline.weight.copy_(pred_dist.reshape(-1, self.num_rels))

    def _drop(self, bias: torch.Tensor) -> torch.Tensor:
        return F.dropout(bias, self.dropout, training=self.training) if self.dropout > 0 else bias

    def index_with_labels(self, pair_labels: torch.Tensor) -> torch.Tensor:
        """(P, 2) subject and object class ids -> (P, num_rels) bias."""
        return self._drop(self.obj_baseline(pair_labels[:, 0].long() * self.num_objs + pair_labels[:, 1].long()))

    def index_with_probability(self, sub_probs: torch.Tensor, obj_probs: torch.Tensor) -> torch.Tensor:
        """Soft lookup with class distributions: (p_s outer p_o) @ W."""
        # float32 under autocast too: the product of two distributions over C classes has entries near 1/C^2, which
        # bfloat16's 8 mantissa bits would round before the sum over C^2 classes.
        with torch.autocast(sub_probs.device.type, enabled=False):
            joint = sub_probs.float()[:, :, None] * obj_probs.float()[:, None, :]
            return self._drop(joint.reshape(joint.shape[0], -1) @ self.obj_baseline.weight)

    def forward(self, pair_labels: torch.Tensor) -> torch.Tensor:
        return self.index_with_labels(pair_labels)


def set_frequency_bias_dropout(module: nn.Module, p: float, key: str = "FREQUENCY_BIAS_DROPOUT") -> int:
    """Set the dropout of every ``FrequencyBias`` inside ``module`` (one place for all predictors); returns how
    many there are."""
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"MODEL.ROI_RELATION_HEAD.{key} is {p}; expected a probability in [0, 1)")
    biases = [m for m in module.modules() if isinstance(m, FrequencyBias)]
    for bias in biases:
        bias.dropout = p
    return len(biases)
