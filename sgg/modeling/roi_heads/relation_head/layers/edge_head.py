"""The pair classifier of Motif, Transformer and HCA (PROTOCOL.md 4.5): "post_emb -> head/tail -> post_cat
(x union) -> rel_compress (+ ctx_compress) + frequency bias"."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn

from sgg.config.sgg_config import ConfigError

from .frequency_bias import FrequencyBias
from .init import normal_init, xavier_init


def require_union_features(cfg, owner: str, why: str) -> None:
    """A ConfigError naming ``owner`` and ``why`` when a head that always reads the union features is built with
    PREDICT_USE_VISION False (the relation head then pools none)."""
    if not cfg.MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION:
        raise ConfigError(f"MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION is False, but {owner} {why}: PREDICT_USE_VISION "
                          f"must be True (set MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION True)")


def union_for_pairs(union_features: Optional[torch.Tensor], num_pairs: int, union_dim: int,
                    up_dim: Optional[nn.Linear]) -> torch.Tensor:
    """The pairs' union features (PREDICT_USE_VISION), checked to have one ``union_dim``-wide row per pair (the
    predictor's in_channels) and mapped to the pooling width by ``up_dim`` when the widths differ."""
    if union_features is None:
        raise ValueError("PREDICT_USE_VISION is True but the relation batch has no union_features")
    if union_features.shape != (num_pairs, union_dim):
        raise ValueError(f"union_features have shape {tuple(union_features.shape)}, expected "
                         f"({num_pairs}, {union_dim}) (one row per pair, predictor in_channels)")
    return union_features if up_dim is None else up_dim(union_features)


class RelationEdgeHead(nn.Module):
    """Pair classifier shared by Motif and Transformer (PROTOCOL.md 4.5).

    ``post_emb`` splits each object's edge context into a head and a tail half; a pair is ``[head_s; tail_o]``;
    ``post_cat`` maps it to the pooling dim, where it is multiplied with the pair's union feature (PREDICT_USE_VISION;
    ``up_dim`` when the union feature has another size); ``rel_compress`` gives the logits. The Transformer adds
    ``ctx_compress([head_s; tail_o])``. The frequency bias of the pair's labels is added when given.
    """

    def __init__(self, hidden_dim: int, pooling_dim: int, num_rel_classes: int, union_dim: int, use_vision: bool,
                 freq_bias: Optional[FrequencyBias], ctx_compress: bool):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.use_vision = use_vision
        self.union_dim = union_dim
        self.post_emb = normal_init(nn.Linear(hidden_dim, hidden_dim * 2), 10.0 * math.sqrt(1.0 / hidden_dim))
        self.post_cat = xavier_init(nn.Linear(hidden_dim * 2, pooling_dim))
        self.rel_compress = xavier_init(nn.Linear(pooling_dim, num_rel_classes))
        self.ctx_compress = xavier_init(nn.Linear(hidden_dim * 2, num_rel_classes)) if ctx_compress else None
        self.up_dim = xavier_init(nn.Linear(union_dim, pooling_dim)) if use_vision and union_dim != pooling_dim \
            else None
        self.freq_bias = freq_bias

    def forward(self, edge_ctx: torch.Tensor, pairs: torch.Tensor, obj_preds: torch.Tensor,
                union_features: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """``edge_ctx`` (sum N, hidden), ``pairs`` (sum P, 2) global indices -> (sum P, R) relation logits and the
        (sum P, pooling_dim) relation features ``rel_compress`` classifies (what a re-scorer such as the Ranker reads)."""
        head_tail = self.post_emb(edge_ctx).view(-1, 2, self.hidden_dim)
        pair_rep = torch.cat([head_tail[pairs[:, 0], 0], head_tail[pairs[:, 1], 1]], dim=-1)
        gated = self.post_cat(pair_rep)
        if self.use_vision:
            gated = gated * union_for_pairs(union_features, pairs.shape[0], self.union_dim, self.up_dim)
        logits = self.rel_compress(gated)
        if self.ctx_compress is not None:
            logits = logits + self.ctx_compress(pair_rep)
        if self.freq_bias is not None:
            logits = logits + self.freq_bias.index_with_labels(obj_preds[pairs])
        return logits, gated


def build_frequency_bias(use_bias: bool, statistics) -> Optional[FrequencyBias]:
    return FrequencyBias(statistics["pred_dist"]) if use_bias else None
