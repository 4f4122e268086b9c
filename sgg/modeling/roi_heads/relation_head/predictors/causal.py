"""Causal TDE (Tang et al., "Unbiased Scene Graph Generation from Biased Training", CVPR 2020) as SGB's
CausalAnalysisPredictor (roi_relation_predictors.py; docs/causal_tde.md).

A pair's logits fuse three branches: the visual one (``vis_compress`` of the union feature), the context one
(``ctx_compress`` of the pair representation built from a context layer: Motifs, VCTree, VTransE) and the frequency
bias of the pair's labels; ``sum`` adds them, ``gate`` is ``ctx * sigmoid(vis + frq + ctx_gate_fc(ctx))``. Training adds
one CE per branch (``CausalAuxiliaryCE``), with the VCTree context also SGB's ``binary_loss`` on its pair scores
(``VCTreeBinary``), and keeps moving averages of the untreated inputs in buffers. At test,
EFFECT_TYPE TDE / NIE / TE subtracts the logits of a counterfactual pass where the context (and, for NIE / TE, the
object label distributions) are replaced by those averages (the paper's counterfactual inference).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.config import EFFECT_TYPES, get_protocol
from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import ROI_RELATION_PREDICTORS
from sgg.structures import BoxList

from ..layers.batch_access import class_counts, global_pair_indices
from ..layers.edge_head import require_union_features
from ..layers.frequency_bias import FrequencyBias
from ..layers.init import normal_init, xavier_init
from ..layers.moving_average import update_moving_average
from ..types import AuxiliaryOutputs, CausalBranchLogits, PredictorOutput, RelationBatch
from .motifs import LSTMContext
from .vctree import VCTreeContext, pair_score_targets
from .vtranse import VTransEContext

KEY = "MODEL.ROI_RELATION_HEAD.CAUSAL"
FUSION_TYPES = ("sum", "gate")
PAIR_BOX_DIM = 32  # SGB's get_box_pair_info: subject, object, union and intersection boxes, 8 numbers each


def _vctree_context(cfg, obj_classes: Sequence[str], in_channels: int, statistics, effect_analysis: bool):
    head = cfg.MODEL.ROI_RELATION_HEAD
    if head.CONTEXT_HIDDEN_DIM % 2:
        raise ConfigError(f"MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM must be even for {KEY}.CONTEXT_LAYER vctree "
                          f"(the Bi-TreeLSTMs split it into two directions), got {head.CONTEXT_HIDDEN_DIM}")
    return VCTreeContext(get_protocol(cfg), obj_classes, in_channels, cfg.GLOVE_DIR, head.EMBED_DIM,
                         head.CONTEXT_HIDDEN_DIM, head.CONTEXT_OBJ_LAYER, head.CONTEXT_REL_LAYER,
                         head.CONTEXT_DROPOUT_RATE, statistics["pred_dist"], effect_analysis)


# CONTEXT_LAYER -> builder(cfg, obj_classes, in_channels, statistics, effect_analysis). A context's forward takes
# (batch, ctx_average=False) and returns (obj_logits, obj_preds, edge_ctx (sum N, CONTEXT_HIDDEN_DIM)).
CONTEXT_LAYERS: Dict[str, Callable[..., nn.Module]] = {
    "motifs": LSTMContext.from_config,
    "vctree": _vctree_context,
    "vtranse": VTransEContext.from_config,
}
PAIR_DIFFERENCE_CONTEXTS = ("vtranse",)  # pair representation head_s - tail_o (SGB's use_vtranse), no post_cat
# contexts whose forward(..., return_pair_scores=True) also returns the per-image pair score logits, trained with
# SGB's binary_loss (the VCTreeBinary loss term)
PAIR_SCORE_CONTEXTS = ("vctree",)


def build_context(cfg, obj_classes: Sequence[str], in_channels: int, statistics, effect_analysis: bool) -> nn.Module:
    name = cfg.MODEL.ROI_RELATION_HEAD.CAUSAL.CONTEXT_LAYER
    if name not in CONTEXT_LAYERS:
        raise ConfigError(f"{KEY}.CONTEXT_LAYER is {name!r}; expected one of {', '.join(CONTEXT_LAYERS)}")
    return CONTEXT_LAYERS[name](cfg, obj_classes, in_channels, statistics, effect_analysis)


# ------------------------------------------------------------------------------------------------------ geometry
def box_info(boxes: BoxList) -> torch.Tensor:
    """(N, 8) SGB's ``get_box_info``: [x1, y1, x2, y2, cx, cy, w, h] (+1 widths) / max(W, H, 100)."""
    xyxy = boxes.convert("xyxy").bbox.float()
    wh = xyxy[:, 2:] - xyxy[:, :2] + 1.0
    info = torch.cat([xyxy, xyxy[:, :2] + 0.5 * wh, wh], dim=1)
    return info / float(max(boxes.size[0], boxes.size[1], 100))


def _corner_info(corners: torch.Tensor) -> torch.Tensor:
    wh = corners[:, 2:] - corners[:, :2] + 1.0
    return torch.cat([corners, corners[:, :2] + 0.5 * wh, wh], dim=1)


def pair_box_info(subject: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
    """(P, 32) SGB's ``get_box_pair_info`` of two (P, 8) ``box_info`` rows: [subject, object, union box,
    intersection box] (union and intersection re-derived with +1 widths on the normalised corners; an empty
    intersection is all zeros)."""
    union = torch.cat([torch.min(subject[:, :2], obj[:, :2]), torch.max(subject[:, 2:4], obj[:, 2:4])], dim=1)
    inter = torch.cat([torch.max(subject[:, :2], obj[:, :2]), torch.min(subject[:, 2:4], obj[:, 2:4])], dim=1)
    inter_info = _corner_info(inter)
    empty = (inter[:, 2] < inter[:, 0]) | (inter[:, 3] < inter[:, 1])
    inter_info = inter_info.masked_fill(empty[:, None], 0.0)
    return torch.cat([subject, obj, _corner_info(union), inter_info], dim=1)


def batch_pair_box_info(batch: RelationBatch) -> torch.Tensor:
    """(sum P, 32) pair geometry of every pair of the batch, in ``pair_idxs`` order."""
    device = batch.roi_features.device
    rows = []
    for boxes, pairs in zip(batch.boxes, batch.pair_idxs):
        info = box_info(boxes).to(device)
        pairs = pairs.to(device).long().reshape(-1, 2)
        rows.append(pair_box_info(info[pairs[:, 0]], info[pairs[:, 1]]))
    return torch.cat(rows) if rows else batch.roi_features.new_zeros(0, PAIR_BOX_DIM)


# ------------------------------------------------------------------------------------------------------ effects
def causal_effect(effect_type: str, factual: Callable[[], torch.Tensor], untreated_context: Callable[[], torch.Tensor],
                  untreated_all: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The test-time logits of EFFECT_TYPE from three fused logits (each computed only when needed): ``factual``
    = f(X, Z), ``untreated_context`` = f(X with the average context, Z), ``untreated_all`` = f(average context,
    average label distributions). TDE = factual - untreated_context (the context's direct effect), NIE =
    untreated_context - untreated_all (the labels' indirect effect), TE = factual - untreated_all."""
    if effect_type == "TDE":
        return factual() - untreated_context()
    if effect_type == "NIE":
        return untreated_context() - untreated_all()
    if effect_type == "TE":
        return factual() - untreated_all()
    raise ConfigError(f"{KEY}.EFFECT_TYPE is {effect_type!r}; expected one of {', '.join(EFFECT_TYPES)}")


class PairContext(NamedTuple):
    obj_logits: torch.Tensor  # (sum N, C)
    obj_preds: torch.Tensor  # (sum N,)
    ctx_rep: torch.Tensor  # (sum P, pooling_dim) after post_cat (or head - tail for VTransE)
    sub_probs: torch.Tensor  # (sum P, C) softmax of the subject's object logits
    obj_probs: torch.Tensor  # (sum P, C) softmax of the object's object logits
    pair_scores: Optional[List[torch.Tensor]] = None  # per image (N_i, N_i) pair score logits (VCTree context)


@ROI_RELATION_PREDICTORS.register("CausalAnalysisPredictor")
class CausalAnalysisPredictor(nn.Module):
    """Module and buffer names are SGB's (``context`` is its ``context_layer``), see sgg/utils/sgb_causal_keys.py."""

    @staticmethod
    def required_loss_terms(cfg) -> Tuple[str, ...]:
        """SGB's add_losses: auxiliary_ctx / _vis / _frq always, binary_loss with a VCTree context."""
        if cfg.MODEL.ROI_RELATION_HEAD.CAUSAL.CONTEXT_LAYER in PAIR_SCORE_CONTEXTS:
            return ("CausalAuxiliaryCE", "VCTreeBinary")
        return ("CausalAuxiliaryCE",)

    def __init__(self, context: nn.Module, pair_difference: bool, hidden_dim: int, pooling_dim: int,
                 num_rel_classes: int, pred_dist, fusion_type: str = "sum", spatial_for_vision: bool = False,
                 effect_analysis: bool = False, effect_type: str = "none", separate_spatial: bool = False,
                 pair_scores: bool = False):
        super().__init__()
        if fusion_type not in FUSION_TYPES:
            raise ConfigError(f"{KEY}.FUSION_TYPE is {fusion_type!r}; expected one of {', '.join(FUSION_TYPES)}")
        if effect_type not in EFFECT_TYPES:
            raise ConfigError(f"{KEY}.EFFECT_TYPE is {effect_type!r}; expected one of {', '.join(EFFECT_TYPES)}")
        self.context = context
        self.pair_difference = pair_difference
        self.pair_scores = pair_scores  # the context also returns pair scores (VCTree's, for VCTreeBinary)
        self.fusion_type = fusion_type
        self.separate_spatial = separate_spatial
        self.effect_analysis = effect_analysis
        self.effect_type = effect_type
        self.edge_dim = pooling_dim if pair_difference else hidden_dim
        self.post_emb = normal_init(nn.Linear(hidden_dim, self.edge_dim * 2), 10.0 * math.sqrt(1.0 / hidden_dim))
        if pair_difference:
            self.post_cat = None
            self.ctx_compress = nn.Linear(pooling_dim, num_rel_classes, bias=False)  # SGB: default init, no bias
        else:
            self.post_cat = nn.Sequential(xavier_init(nn.Linear(hidden_dim * 2, pooling_dim)), nn.ReLU(inplace=True))
            self.ctx_compress = xavier_init(nn.Linear(pooling_dim, num_rel_classes))
        self.vis_compress = xavier_init(nn.Linear(pooling_dim, num_rel_classes))
        self.ctx_gate_fc = xavier_init(nn.Linear(pooling_dim, num_rel_classes)) if fusion_type == "gate" else None
        self.freq_bias = FrequencyBias(pred_dist)
        self.spt_emb = None
        if spatial_for_vision:
            self.spt_emb = nn.Sequential(xavier_init(nn.Linear(PAIR_BOX_DIM, hidden_dim)), nn.ReLU(inplace=True),
                                         xavier_init(nn.Linear(hidden_dim, pooling_dim)), nn.ReLU(inplace=True))
        # untreated averages (SGB registers all four; avg_post_ctx is kept but never read at test, as in SGB)
        self.register_buffer("untreated_spt", torch.zeros(PAIR_BOX_DIM))
        self.register_buffer("untreated_conv_spt", torch.zeros(pooling_dim))
        self.register_buffer("avg_post_ctx", torch.zeros(pooling_dim))
        self.register_buffer("untreated_feat", torch.zeros(pooling_dim))

    @classmethod
    def from_config(cls, cfg, in_channels: int, statistics):
        head = cfg.MODEL.ROI_RELATION_HEAD
        causal = head.CAUSAL
        require_union_features(cfg, "CausalAnalysisPredictor", "reads the union features in its visual branch")
        if head.CONTEXT_POOLING_DIM != in_channels:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM ({head.CONTEXT_POOLING_DIM}) must equal "
                              f"MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM ({in_channels}) for CausalAnalysisPredictor: the "
                              f"union feature and the context share vis_compress's and the averages' width")
        obj_classes, rel_classes = class_counts(statistics)
        context = build_context(cfg, obj_classes, in_channels, statistics, causal.EFFECT_ANALYSIS)
        return cls(context, causal.CONTEXT_LAYER in PAIR_DIFFERENCE_CONTEXTS, head.CONTEXT_HIDDEN_DIM,
                   head.CONTEXT_POOLING_DIM, len(rel_classes), statistics["pred_dist"], causal.FUSION_TYPE,
                   causal.SPATIAL_FOR_VISION, causal.EFFECT_ANALYSIS, causal.EFFECT_TYPE, causal.SEPARATE_SPATIAL,
                   causal.CONTEXT_LAYER in PAIR_SCORE_CONTEXTS)

    # ---------------------------------------------------------------------------------------------------- parts
    def pair_context(self, batch: RelationBatch, pairs: torch.Tensor, ctx_average: bool = False) -> PairContext:
        """SGB's ``pair_feature_generate``: the context layer, then each pair's [head_s; tail_o] through
        ``post_cat`` (or head_s - tail_o for VTransE)."""
        pair_scores = None
        if self.pair_scores:
            obj_logits, obj_preds, edge_ctx, pair_scores = self.context(batch, return_pair_scores=True,
                                                                        ctx_average=ctx_average)
        else:
            obj_logits, obj_preds, edge_ctx = self.context(batch, ctx_average=ctx_average)
        edge_rep = self.post_emb(edge_ctx).view(-1, 2, self.edge_dim)
        head, tail = edge_rep[pairs[:, 0], 0], edge_rep[pairs[:, 1], 1]
        ctx_rep = head - tail if self.pair_difference else self.post_cat(torch.cat([head, tail], dim=-1))
        obj_probs = F.softmax(obj_logits, dim=-1)
        return PairContext(obj_logits, obj_preds, ctx_rep, obj_probs[pairs[:, 0]], obj_probs[pairs[:, 1]],
                           pair_scores)

    def fuse(self, vis_rep: torch.Tensor, ctx_rep: torch.Tensor, frq_logits: torch.Tensor) -> torch.Tensor:
        """SGB's ``calculate_logits`` given the frequency logits."""
        vis_logits = self.vis_compress(vis_rep)
        ctx_logits = self.ctx_compress(ctx_rep)
        if self.fusion_type == "gate":
            return ctx_logits * torch.sigmoid(vis_logits + frq_logits + self.ctx_gate_fc(ctx_rep))
        return vis_logits + ctx_logits + frq_logits

    def _pair_features(self, batch: RelationBatch, name: str, num_pairs: int) -> torch.Tensor:
        """``union_features`` or ``union_spatial_features`` of the batch, checked."""
        values = getattr(batch, name)
        width = self.vis_compress.in_features
        if values is None:
            raise ValueError(f"CausalAnalysisPredictor needs the relation batch's {name} (MODEL.ROI_RELATION_HEAD."
                             f"PREDICT_USE_VISION True; CAUSAL.SEPARATE_SPATIAL True for union_spatial_features)")
        if values.shape != (num_pairs, width):
            raise ValueError(f"{name} have shape {tuple(values.shape)}, expected ({num_pairs}, {width})")
        return values

    # ---------------------------------------------------------------------------------------------------- forward
    def forward(self, batch: RelationBatch) -> PredictorOutput:
        pairs = global_pair_indices(batch)
        union = self._pair_features(batch, "union_features", pairs.shape[0])
        factual = self.pair_context(batch, pairs)
        pair_boxes = batch_pair_box_info(batch) if self.spt_emb is not None else None
        ctx_rep = factual.ctx_rep
        spatial = None
        if self.separate_spatial:
            spatial = self._pair_features(batch, "union_spatial_features", pairs.shape[0])
            ctx_rep = ctx_rep * spatial
        if self.spt_emb is not None:
            ctx_rep = ctx_rep * self.spt_emb(pair_boxes)
        pair_labels = factual.obj_preds[pairs]
        frq_logits = self.freq_bias.index_with_labels(pair_labels)
        rel_logits = self.fuse(union, ctx_rep, frq_logits)
        aux = AuxiliaryOutputs()
        if self.training:
            aux.causal = CausalBranchLogits(ctx=self.ctx_compress(ctx_rep))
            if self.fusion_type != "gate":  # SGB drops the other two branch losses with the gate
                aux.causal.vis = self.vis_compress(union)
                aux.causal.frq = frq_logits
            self._update_averages(pair_boxes, spatial, ctx_rep, union)
            if factual.pair_scores is not None:
                aux.pair_scores = pair_score_targets(factual.pair_scores, batch.rel_binarys, union.device)
        elif self.effect_analysis and self.effect_type != "none":
            rel_logits = self._effect_logits(batch, pairs, union, ctx_rep, factual)
        return PredictorOutput(obj_logits=factual.obj_logits, obj_preds=factual.obj_preds, rel_logits=rel_logits,
                               rel_features=ctx_rep, aux=aux)

    def _update_averages(self, pair_boxes: Optional[torch.Tensor], spatial: Optional[torch.Tensor],
                         ctx_rep: torch.Tensor, union: torch.Tensor) -> None:
        if pair_boxes is not None:
            update_moving_average(self.untreated_spt, pair_boxes)
        if spatial is not None:
            update_moving_average(self.untreated_conv_spt, spatial)
        update_moving_average(self.avg_post_ctx, ctx_rep)
        update_moving_average(self.untreated_feat, union)

    def _effect_logits(self, batch: RelationBatch, pairs: torch.Tensor, union: torch.Tensor, ctx_rep: torch.Tensor,
                       factual: PairContext) -> torch.Tensor:
        """The counterfactual logits of EFFECT_TYPE. The label distributions enter through the soft frequency
        bias ``(p_s outer p_o) @ W`` here, as in SGB (the factual training logits use the hard labels)."""
        with torch.no_grad():
            untreated = self.pair_context(batch, pairs, ctx_average=True)
            avg_ctx = untreated.ctx_rep
            if self.spt_emb is not None:
                avg_ctx = avg_ctx * self.spt_emb(self.untreated_spt.view(1, -1))
            if self.separate_spatial:
                avg_ctx = avg_ctx * self.untreated_conv_spt.view(1, -1)
        labels_frq = self.freq_bias.index_with_probability(factual.sub_probs, factual.obj_probs)
        return causal_effect(
            self.effect_type,
            factual=lambda: self.fuse(union, ctx_rep, labels_frq),
            untreated_context=lambda: self.fuse(union, avg_ctx, labels_frq),
            untreated_all=lambda: self.fuse(union, avg_ctx, self.freq_bias.index_with_probability(
                untreated.sub_probs, untreated.obj_probs)))
