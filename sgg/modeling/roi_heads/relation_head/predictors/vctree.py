"""VCTree (Tang et al., CVPR 2019) as SGB's VCTreePredictor (``model_vctree.py``, PROTOCOL.md 4.5; docs/vctree.md).

Per image, a score net rates every ordered box pair, a greedy tree on those scores becomes a binary tree
(vctree_tree.py), and Bi-TreeLSTMs on it give the object context, the object labels (SGCls/SGDet, a TreeLSTM
decoder) and the edge context (tree_lstm.py). Pairs are classified as
``ctx_compress(post_cat([head_s; tail_o]) * union) + freq_bias``. In training the pair scores are also fit to the GT
pair matrix by the ``VCTreeBinary`` loss term (SGB's ``binary_loss``; losses/vctree_binary.py).
"""
from __future__ import annotations

import logging
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.config import get_protocol
from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import ROI_RELATION_PREDICTORS

from ..layers.batch_access import check_mode, class_counts, detector_logits, global_pair_indices
from ..layers.batch_norm import SmallBatchNorm1d
from ..layers.box_geometry import BoxPositionEncoder, encode_box_geometry
from ..layers.edge_head import require_union_features
from ..layers.embeddings import ObjectInputEmbedding, label_embedding
from ..layers.frequency_bias import FrequencyBias
from ..layers.init import normal_init, xavier_init
from ..layers.moving_average import update_moving_average
from ..layers.object_labels import ground_truth_objects, require_object_classifier
from ..types import AuxiliaryOutputs, PairScoreTargets, PredictorOutput, RelationBatch
from .tree_lstm import BiTreeLSTM, TreeLSTMDecoder
from .vctree_tree import build_forest, overlap_info

logger = logging.getLogger(__name__)

SCORE_FEATURE_DIM = 128  # SGB's fixed width of each of the four score-net inputs


def _embedding_mlp(in_dim: int) -> nn.Sequential:
    """SGB's box_embed / overlap_embed: Linear -> BatchNorm(momentum 0.001) -> ReLU."""
    return nn.Sequential(nn.Linear(in_dim, SCORE_FEATURE_DIM), SmallBatchNorm1d(SCORE_FEATURE_DIM, momentum=0.001),
                         nn.ReLU(inplace=True))


def co_occurrence_prior(pred_dist) -> torch.Tensor:
    """(C * C,) weights of ``bi_freq_prior``: the log-probabilities of pred_dist summed over predicates, symmetrised
    (SGB: ``co = pred_dist.sum(-1); co + co.T``, flattened row-major)."""
    summed = torch.as_tensor(pred_dist).float().sum(-1)
    return (summed + summed.t()).reshape(-1)


def pair_score_targets(pair_logits: Sequence[torch.Tensor], rel_binarys: Optional[Sequence[torch.Tensor]],
                       device) -> Optional[PairScoreTargets]:
    """What the VCTreeBinary loss term reads (``aux.pair_scores``): every image's pair score logits and GT pair
    matrix (``rel_binarys > 0``), flattened and concatenated, and the image of each entry. None without
    ``rel_binarys`` (test batches)."""
    if rel_binarys is None:
        return None
    if len(rel_binarys) != len(pair_logits):
        raise ValueError(f"{len(rel_binarys)} rel_binarys for {len(pair_logits)} images")
    logits = [s.reshape(-1) for s in pair_logits]
    targets = [(b.to(device) > 0).float().reshape(-1) for b in rel_binarys]
    for image, (score, target) in enumerate(zip(logits, targets)):
        if score.shape != target.shape:
            raise ValueError(f"image {image}: rel_binarys has {target.numel()} entries, expected {score.numel()} "
                             f"(an N x N matrix over the image's boxes)")
    images = [torch.full((s.numel(),), image, dtype=torch.long, device=device) for image, s in enumerate(logits)]
    empty = torch.zeros(0, device=device)
    return PairScoreTargets(logits=torch.cat(logits) if logits else empty,
                            targets=torch.cat(targets) if targets else empty,
                            image=torch.cat(images) if images else empty.long())


class VCTreeScoreNet(nn.Module):
    """The pair scores the tree is built on (SGB's ``vctree_score_net``). For boxes i, j of an image:

    ``co[i, j] = sum_ab p_i(a) p_j(b) W[a, b]`` (``bi_freq_prior``; p = softmax of the detached object logits),
    ``vis[i, j] = vision_prior([s_j * o_i, s_j, o_i, co[i, j]])`` (s = score_sub, o = score_obj features),
    logit ``[i, j] = sigmoid(vis) * co``; the tree reads ``sigmoid(logit)`` with ``[i, j]`` = attach j below i.
    """

    def __init__(self, num_obj_classes: int, in_channels: int, embed_dim: int, hidden_dim: int, pred_dist):
        super().__init__()
        self.num_obj_classes = num_obj_classes
        self.bi_freq_prior = nn.Linear(num_obj_classes * num_obj_classes, 1, bias=False)
        with torch.no_grad():
            self.bi_freq_prior.weight.copy_(co_occurrence_prior(pred_dist)[None, :])
        self.obj_reduce = xavier_init(nn.Linear(in_channels, SCORE_FEATURE_DIM))
        self.emb_reduce = xavier_init(nn.Linear(embed_dim, SCORE_FEATURE_DIM))
        self.box_embed = _embedding_mlp(9)
        self.overlap_embed = _embedding_mlp(6)
        self.score_pre = xavier_init(nn.Linear(SCORE_FEATURE_DIM * 4, hidden_dim))
        self.score_sub = xavier_init(nn.Linear(hidden_dim, hidden_dim))
        self.score_obj = xavier_init(nn.Linear(hidden_dim, hidden_dim))
        self.vision_prior = nn.Linear(hidden_dim * 3 + 1, 1)  # PyTorch's default init, as SGB

    def forward(self, batch: RelationBatch, obj_embed: torch.Tensor, obj_logits: torch.Tensor) -> List[torch.Tensor]:
        """Per image the (N_i, N_i) pair score logits."""
        device = batch.roi_features.device
        inputs = torch.cat([self.obj_reduce(batch.roi_features.detach()), self.emb_reduce(obj_embed.detach()),
                            self.box_embed(encode_box_geometry(batch.boxes).to(device)),
                            self.overlap_embed(overlap_info(batch.boxes, device))], dim=1)
        shared = F.relu(self.score_pre(inputs))
        sub, obj = F.relu(self.score_sub(shared)), F.relu(self.score_obj(shared))
        probs = F.softmax(obj_logits.detach(), dim=-1)
        prior = self.bi_freq_prior.weight.view(self.num_obj_classes, self.num_obj_classes)
        hidden = sub.shape[1]
        w_product, w_sub, w_obj, w_prior = self.vision_prior.weight[0].split([hidden, hidden, hidden, 1])
        logits = []
        for s, o, p in zip(sub.split(batch.num_boxes), obj.split(batch.num_boxes), probs.split(batch.num_boxes)):
            co = p @ prior.to(p.dtype) @ p.t()
            # vision_prior on [s_j * o_i, s_j, o_i, co_ij] without the (N, N, 3 * hidden) input tensor
            vis = (o * w_product) @ s.t() + (s @ w_sub)[None, :] + (o @ w_obj)[:, None] + co * w_prior \
                + self.vision_prior.bias
            logits.append(torch.sigmoid(vis) * co)
        return logits


class VCTreeContext(nn.Module):
    """Object and edge context of VCTree (SGB's ``VCTreeLSTMContext``), LSTMContext's interface (motifs.py).

    ``forward(batch)`` -> ``(obj_logits (sum N, C), obj_preds (sum N,), edge_ctx (sum N, hidden))``;
    ``forward(batch, return_pair_scores=True)`` adds the per-image (N_i, N_i) pair score logits (list), which
    ``pair_score_targets`` turns into what the VCTreeBinary loss term reads.

    ``effect_analysis`` (Causal TDE, causal.py; SGB's VCTreeLSTMContext with EFFECT_ANALYSIS): keep SGB's untreated
    averages of the decoder input, the object input and the edge input [label embedding, roi feature] in buffers,
    updated in training (the decoder input once per image, as SGB's per-tree loop; never in PredCls, which has no
    decoder); ``forward(ctx_average=True)`` at test feeds the averages in place of the decoder input and of the edge
    input's first part. The tree is built from the real inputs in both passes, as in SGB.
    """

    def __init__(self, mode: str, class_names: Sequence[str], in_channels: int, glove_dir: str, embed_dim: int,
                 hidden_dim: int, obj_layers: int, edge_layers: int, dropout: float, pred_dist,
                 effect_analysis: bool = False):
        super().__init__()
        self.mode = check_mode(mode)
        self.num_obj_classes = len(class_names)
        self.hidden_dim = hidden_dim
        self.obj_embed1 = ObjectInputEmbedding(class_names, glove_dir, embed_dim)
        self.obj_embed2 = label_embedding(class_names, glove_dir, embed_dim)
        self.pos_embed = BoxPositionEncoder(batch_norm=True)
        self.score_net = VCTreeScoreNet(len(class_names), in_channels, embed_dim, hidden_dim, pred_dist)
        obj_input_dim = in_channels + embed_dim + self.pos_embed.out_dim
        self.obj_ctx_rnn = BiTreeLSTM(obj_input_dim, hidden_dim, obj_layers, dropout if obj_layers > 1 else 0.0)
        # PredCls never classifies objects, so it builds no decoder (no parameters without gradients)
        self.decoder_rnn = None if mode == "predcls" else TreeLSTMDecoder(
            class_names, glove_dir, embed_dim, obj_input_dim + hidden_dim, hidden_dim, dropout)
        self.edge_ctx_rnn = BiTreeLSTM(embed_dim + in_channels + hidden_dim, hidden_dim, edge_layers,
                                       dropout if edge_layers > 1 else 0.0)
        self.effect_analysis = effect_analysis
        if effect_analysis:  # SGB's buffer names (they are in its checkpoints)
            self.register_buffer("untreated_dcd_feat", torch.zeros(obj_input_dim + hidden_dim))
            self.register_buffer("untreated_obj_feat", torch.zeros(obj_input_dim))
            self.register_buffer("untreated_edg_feat", torch.zeros(embed_dim + in_channels))

    def forward(self, batch: RelationBatch, return_pair_scores: bool = False, ctx_average: bool = False):
        """``ctx_average``: the counterfactual pass of Causal TDE (test only, needs ``effect_analysis``)."""
        untreated = ctx_average and self.effect_analysis and not self.training
        roi_features = batch.roi_features
        if batch.mode == "predcls":
            input_logits, obj_labels = ground_truth_objects(batch, self.num_obj_classes)
        else:
            require_object_classifier(self.decoder_rnn, batch, "VCTreePredictor", "object decoder")
            input_logits = detector_logits(batch)
        obj_embed = self.obj_embed1(batch)
        obj_input = torch.cat([roi_features, obj_embed, self.pos_embed(batch.boxes, roi_features.device)], dim=1)

        pair_scores = self.score_net(batch, obj_embed, input_logits)
        forest = build_forest([torch.sigmoid(s) for s in pair_scores], roi_features.device)
        num_images = len(batch.boxes)
        obj_ctx = self.obj_ctx_rnn(forest, obj_input, num_images)
        if batch.mode == "predcls":
            obj_logits, obj_preds = input_logits, obj_labels
        else:
            decoder_input = torch.cat([obj_input, obj_ctx], dim=1)
            if untreated:
                decoder_input = self.untreated_dcd_feat.view(1, -1).expand_as(decoder_input)
            if self.training and self.effect_analysis:
                for image_input in decoder_input.split(batch.num_boxes):
                    update_moving_average(self.untreated_dcd_feat, image_input)
            obj_logits, obj_preds = self.decoder_rnn(forest, decoder_input, num_images)
        label_and_roi = torch.cat([self.obj_embed2(obj_preds), roi_features], dim=1)
        if untreated:
            label_and_roi = self.untreated_edg_feat.view(1, -1).expand_as(label_and_roi)
        edge_ctx = self.edge_ctx_rnn(forest, torch.cat([label_and_roi, obj_ctx], dim=1), num_images)
        if self.training and self.effect_analysis:
            update_moving_average(self.untreated_obj_feat, obj_input)
            update_moving_average(self.untreated_edg_feat, label_and_roi)
        if return_pair_scores:
            return obj_logits, obj_preds, edge_ctx, pair_scores
        return obj_logits, obj_preds, edge_ctx


class VCTreeEdgeHead(nn.Module):
    """SGB's VCTree pair classifier: ``relu(post_emb(edge_ctx))`` split into head and tail halves,
    ``ctx_compress(post_cat([head_s; tail_o]) * union) + freq_bias(label_s, label_o)`` (``up_dim`` maps the union
    feature to the pooling dim when the widths differ). The union feature and the bias are always used, as in SGB."""

    def __init__(self, hidden_dim: int, pooling_dim: int, num_rel_classes: int, union_dim: int,
                 freq_bias: FrequencyBias):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.union_dim = union_dim
        self.post_emb = normal_init(nn.Linear(hidden_dim, hidden_dim * 2), 10.0 * math.sqrt(1.0 / hidden_dim))
        self.post_cat = xavier_init(nn.Linear(hidden_dim * 2, pooling_dim))
        self.ctx_compress = xavier_init(nn.Linear(pooling_dim, num_rel_classes))
        self.up_dim = xavier_init(nn.Linear(union_dim, pooling_dim)) if union_dim != pooling_dim else None
        self.freq_bias = freq_bias

    def forward(self, edge_ctx: torch.Tensor, pairs: torch.Tensor, obj_preds: torch.Tensor,
                union_features: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        if union_features is None or union_features.shape != (pairs.shape[0], self.union_dim):
            shape = None if union_features is None else tuple(union_features.shape)
            raise ValueError(f"VCTreePredictor needs union_features of shape ({pairs.shape[0]}, {self.union_dim}) "
                             f"(one row per pair, predictor in_channels), got {shape}")
        head_tail = F.relu(self.post_emb(edge_ctx)).view(-1, 2, self.hidden_dim)
        pair_rep = torch.cat([head_tail[pairs[:, 0], 0], head_tail[pairs[:, 1], 1]], dim=-1)
        union = union_features if self.up_dim is None else self.up_dim(union_features)
        gated = self.post_cat(pair_rep) * union
        logits = self.ctx_compress(gated) + self.freq_bias.index_with_labels(obj_preds[pairs])
        return logits, gated


@ROI_RELATION_PREDICTORS.register("VCTreePredictor")
class VCTreePredictor(nn.Module):
    """VCTreeContext + VCTreeEdgeHead; training batches also return the pair scores for ``VCTreeBinary``."""

    def __init__(self, context: VCTreeContext, edge_head: VCTreeEdgeHead):
        super().__init__()
        self.context = context
        self.edge_head = edge_head

    @staticmethod
    def required_loss_terms(cfg) -> Tuple[str, ...]:
        """SGB always trains VCTree with its binary loss: build_relation_losses adds the term (weight 1) when
        MODEL.ROI_RELATION_HEAD.LOSS does not list it (list it as "VCTreeBinary:W" for another weight)."""
        return ("VCTreeBinary",)

    @classmethod
    def from_config(cls, cfg, in_channels: int, statistics):
        head = cfg.MODEL.ROI_RELATION_HEAD
        require_union_features(cfg, "VCTreePredictor", "multiplies every pair with its union feature (as SGB's)")
        if head.CONTEXT_HIDDEN_DIM % 2:
            raise ConfigError(f"VCTreePredictor: MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM must be even (the "
                              f"Bi-TreeLSTMs split it into two directions), got {head.CONTEXT_HIDDEN_DIM}")
        for key in ("CONTEXT_OBJ_LAYER", "CONTEXT_REL_LAYER"):
            if head[key] < 1:
                raise ConfigError(f"VCTreePredictor: MODEL.ROI_RELATION_HEAD.{key} must be >= 1, got {head[key]}")
        if not head.PREDICT_USE_BIAS:
            logger.warning("VCTreePredictor ignores MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS False: SGB's VCTree "
                           "always adds the frequency bias (docs/vctree.md)")
        obj_classes, rel_classes = class_counts(statistics)
        context = VCTreeContext(get_protocol(cfg), obj_classes, in_channels, cfg.GLOVE_DIR, head.EMBED_DIM,
                                head.CONTEXT_HIDDEN_DIM, head.CONTEXT_OBJ_LAYER, head.CONTEXT_REL_LAYER,
                                head.CONTEXT_DROPOUT_RATE, statistics["pred_dist"])
        edge_head = VCTreeEdgeHead(head.CONTEXT_HIDDEN_DIM, head.CONTEXT_POOLING_DIM, len(rel_classes), in_channels,
                                   FrequencyBias(statistics["pred_dist"]))
        return cls(context, edge_head)

    def forward(self, batch: RelationBatch) -> PredictorOutput:
        obj_logits, obj_preds, edge_ctx, pair_scores = self.context(batch, return_pair_scores=True)
        rel_logits, rel_features = self.edge_head(edge_ctx, global_pair_indices(batch), obj_preds,
                                                  batch.union_features)
        aux = AuxiliaryOutputs()
        if self.training:
            aux.pair_scores = pair_score_targets(pair_scores, batch.rel_binarys, batch.roi_features.device)
        return PredictorOutput(obj_logits=obj_logits, obj_preds=obj_preds, rel_logits=rel_logits,
                               rel_features=rel_features, aux=aux)
