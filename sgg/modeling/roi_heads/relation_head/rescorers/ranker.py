"""The Ranker ("Scorer") of Huang et al., ACCV 2020 (METHODS.md 2.3): one score per candidate pair of an image.

    h = MLP_F(rel_features) + MLP_P(softmax(rel_logits))          (MLP_P only with USE_PREDICATE_DIST)
    x = Linear([h ; g])                                            g: global image feature, one per image
    x = LayerNorm(x + SelfAttention(x))                            attention over the image's candidate pairs
    S = sigmoid(MLP(x))

Training: ``aux.ranker`` (logits and scores) feeds the ``ranker`` loss term. Test: with
``SCORE_COMBINATION`` "multiply" the predicate distribution becomes softmax(rel_logits) * S, so the triplet score is
S x max_p p_p x s_subj x s_obj (the predicate label is unchanged); "none" leaves the scores alone.
"""
from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import RELATION_RESCORERS, ROI_RELATION_PREDICTORS

from ..layers.image_context import (DETECTOR_SIZE_DIVISIBILITY, backbone_channels, batch_size_divisibility,
                                    global_image_features)
from ..losses import parse_loss_spec
from ..types import PredictorOutput, RankerOutputs, RelationBatch

SCORE_COMBINATIONS = ("multiply", "none")


def two_layer_mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


class PairSelfAttention(nn.Module):
    """Multi-head self-attention among the pairs of each image (never across images), residual + LayerNorm.
    Queries go in blocks of ``chunk`` so that SGDet's thousands of pairs per image never need a full P x P map per
    head at once."""

    def __init__(self, dim: int, num_heads: int, chunk: int):
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.RANKER.NUM_HEAD ({num_heads}) must divide "
                              f"RANKER.ATTENTION_DIM ({dim})")
        if chunk < 1:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.RANKER.ATTENTION_CHUNK must be >= 1, got {chunk}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.chunk = chunk
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        q, k, v = self.qkv(x).view(n, 3, self.num_heads, self.head_dim).permute(1, 2, 0, 3)  # each (H, n, d)
        blocks = []
        for start in range(0, n, self.chunk):
            weights = F.softmax(q[:, start:start + self.chunk] @ k.transpose(1, 2) / math.sqrt(self.head_dim), -1)
            blocks.append(weights @ v)
        return self.out(torch.cat(blocks, dim=1).transpose(0, 1).reshape(n, -1))

    def forward(self, x: torch.Tensor, num_pairs: Sequence[int]) -> torch.Tensor:
        attended = [self._attend(chunk) if chunk.shape[0] else chunk for chunk in x.split(list(num_pairs))]
        return self.norm(x + torch.cat(attended, dim=0)) if attended else x


@RELATION_RESCORERS.register("Ranker")
class Ranker(nn.Module):
    """Pair re-scoring usable after any predictor that exposes ``rel_features``."""

    def __init__(self, rel_feature_dim: int, num_predicates: int, image_feature_dim: int, hidden_dim: int = 256,
                 attention_dim: int = 256, num_heads: int = 4, num_layers: int = 1, attention_chunk: int = 1024,
                 use_predicate_dist: bool = True, global_feature_maps: Sequence[str] = (),
                 detach_inputs: bool = False, score_combination: str = "multiply", predictor: str = "",
                 size_divisibility: Sequence[int] = (DETECTOR_SIZE_DIVISIBILITY,)):
        super().__init__()
        if score_combination not in SCORE_COMBINATIONS:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.RANKER.SCORE_COMBINATION must be one of "
                              f"{SCORE_COMBINATIONS}, got {score_combination!r}")
        if rel_feature_dim < 1:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.RANKER.REL_FEATURE_DIM must be >= 1 (or 0 for the "
                              f"predictor's own width), got {rel_feature_dim}")
        self.rel_feature_dim = rel_feature_dim
        self.image_feature_dim = image_feature_dim
        self.global_feature_maps = tuple(global_feature_maps)
        self.size_divisibility = tuple(size_divisibility)
        self.detach_inputs = detach_inputs
        self.score_combination = score_combination
        self.predictor = predictor
        self.feature_mlp = two_layer_mlp(rel_feature_dim, hidden_dim, hidden_dim)  # MLP_F
        self.predicate_mlp = two_layer_mlp(num_predicates, hidden_dim, hidden_dim) if use_predicate_dist else None
        self.input_proj = nn.Linear(hidden_dim + image_feature_dim, attention_dim)
        self.attention = nn.ModuleList([PairSelfAttention(attention_dim, num_heads, attention_chunk)
                                        for _ in range(num_layers)])
        self.score_head = two_layer_mlp(attention_dim, attention_dim, 1)

    @classmethod
    def from_config(cls, cfg, statistics):
        head = cfg.MODEL.ROI_RELATION_HEAD
        ranker = head.RANKER
        if "ranker" not in [name for name, _ in parse_loss_spec(head.LOSS)]:
            raise ConfigError("MODEL.ROI_RELATION_HEAD.RESCORER \"Ranker\" is trained by the LOSS term 'ranker': add "
                              f"it to MODEL.ROI_RELATION_HEAD.LOSS (now {tuple(head.LOSS)})")
        rel_feature_dim = ranker.REL_FEATURE_DIM or cls.predictor_feature_dim(cfg)
        return cls(rel_feature_dim, len(statistics["rel_classes"]), backbone_channels(cfg), ranker.HIDDEN_DIM,
                   ranker.ATTENTION_DIM, ranker.NUM_HEAD, ranker.NUM_LAYER, ranker.ATTENTION_CHUNK,
                   ranker.USE_PREDICATE_DIST, tuple(ranker.GLOBAL_FEATURE_MAPS), ranker.DETACH_INPUTS,
                   ranker.SCORE_COMBINATION, head.PREDICTOR, batch_size_divisibility(cfg))

    @staticmethod
    def predictor_feature_dim(cfg) -> int:
        """The predictor's ``rel_feature_dim(cfg)`` when it defines one (LinkNet: pooling + layout), else
        CONTEXT_POOLING_DIM (the shared edge head of Motif / Transformer)."""
        predictor = ROI_RELATION_PREDICTORS.get(cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR)
        if hasattr(predictor, "rel_feature_dim"):
            return int(predictor.rel_feature_dim(cfg))
        return int(cfg.MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM)

    def _relation_features(self, output: PredictorOutput, num_pairs: int) -> torch.Tensor:
        features = output.rel_features
        if features is None:
            raise ConfigError(f"RESCORER Ranker reads the predictor's relation features (output.rel_features), "
                              f"but PREDICTOR {self.predictor or type(output).__name__} exposes "
                              "none (e.g. FrequencyPredictor has no relation representation); use a predictor with "
                              "relation features or set MODEL.ROI_RELATION_HEAD.RESCORER \"\"")
        if features.shape != (num_pairs, self.rel_feature_dim):
            raise ConfigError(f"RESCORER Ranker: rel_features has shape {tuple(features.shape)}, expected "
                              f"({num_pairs}, {self.rel_feature_dim}); set MODEL.ROI_RELATION_HEAD.RANKER."
                              f"REL_FEATURE_DIM to the predictor's relation feature width")
        return features

    def score_logits(self, batch: RelationBatch, output: PredictorOutput) -> torch.Tensor:
        """(sum P,) pre-sigmoid pair scores."""
        num_pairs = batch.num_pairs
        features = self._relation_features(output, sum(num_pairs))
        probs = F.softmax(output.rel_logits.float(), dim=-1).to(features.dtype)
        if self.detach_inputs:
            features, probs = features.detach(), probs.detach()
        hidden = self.feature_mlp(features)
        if self.predicate_mlp is not None:
            hidden = hidden + self.predicate_mlp(probs)
        image_features = global_image_features(batch.features, batch.image_sizes, self.global_feature_maps,
                                               "MODEL.ROI_RELATION_HEAD.RANKER.GLOBAL_FEATURE_MAPS", "image",
                                               self.size_divisibility)  # g: the image's own extent (code unreleased)
        if image_features.shape[1] != self.image_feature_dim:
            raise ConfigError(f"RESCORER Ranker: the backbone maps have {image_features.shape[1]} channels, but it was "
                              f"built for {self.image_feature_dim} (MODEL.BACKBONE.OUT_CHANNELS)")
        image_features = image_features.detach().to(hidden.device, hidden.dtype)  # the detector is not trained here
        image = torch.repeat_interleave(torch.arange(len(num_pairs), device=hidden.device),
                                        torch.as_tensor(num_pairs, device=hidden.device, dtype=torch.long))
        x = self.input_proj(torch.cat([hidden, image_features[image]], dim=1))
        for block in self.attention:
            x = block(x, num_pairs)
        return self.score_head(x).squeeze(-1)

    def forward(self, batch: RelationBatch, output: PredictorOutput) -> Tuple[PredictorOutput, Optional[torch.Tensor]]:
        logits = self.score_logits(batch, output)
        scores = torch.sigmoid(logits)
        output = dataclasses.replace(output, aux=dataclasses.replace(output.aux, ranker=RankerOutputs(logits, scores)))
        if self.training or self.score_combination == "none":
            return output, None
        # the post-processor ranks pairs by max_{p>=1} rel_scores[p] x object scores: scaling the whole row by S
        # multiplies the triplet score by S and keeps the predicate label
        return output, F.softmax(output.rel_logits.float(), dim=-1) * scores.float()[:, None]


__all__: List[str] = ["Ranker", "PairSelfAttention"]
