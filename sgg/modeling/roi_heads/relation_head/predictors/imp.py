"""Iterative Message Passing (Xu et al., "Scene Graph Generation by Iterative Message Passing", CVPR 2017) as SGB's
IMPPredictor (``roi_relation_predictors.py``) with its ``IMPContext`` (``model_msg_passing.py``); docs/imp.md.

Each box is a node and each candidate pair an edge. Nodes start from their box feature, edges from their union-box
feature, each through a unary layer and a GRU from a zero state. Every round, an edge reads a gated sum of its subject
and object states, and a node reads the gated sum of the edge states of the pairs it is subject of (outgoing) and
object of (incoming). Objects are classified from the last node states, predicates from the last edge states. No
frequency bias: SGB's IMPPredictor hard-codes ``use_bias = False`` whatever PREDICT_USE_BIAS says.

Module names are SGB's (``context_layer.obj_unary`` ...), so an SGB IMP state dict maps onto this one key for key
(in PredCls SGB's has ``context_layer.obj_fc`` besides, which SGB never uses there).
"""
from __future__ import annotations

import logging
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.config import get_protocol
from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import ROI_RELATION_PREDICTORS

from ..layers.batch_access import check_mode, class_counts, global_pair_indices, gt_labels
from ..layers.edge_head import require_union_features
from ..layers.init import xavier_init
from ..layers.object_labels import decode_object_labels, ground_truth_objects, require_object_classifier
from ..types import PredictorOutput, RelationBatch

logger = logging.getLogger(__name__)


def caffe2_xavier_fc(in_dim: int, out_dim: int) -> nn.Linear:
    """SGB's ``make_fc``: kaiming-uniform weights (a=1, Caffe2's "XavierFill") and a zero bias."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.kaiming_uniform_(layer.weight, a=1)
    nn.init.zeros_(layer.bias)
    return layer


def sigmoid_gate(hidden_dim: int) -> nn.Sequential:
    """A scalar gate in (0, 1) per row of ``[vertex state; edge state]`` (SGB: Linear(2h, 1) + Sigmoid, default
    PyTorch init)."""
    return nn.Sequential(nn.Linear(hidden_dim * 2, 1), nn.Sigmoid())


class IMPContext(nn.Module):
    """The message passing of SGB's ``IMPContext`` over all images of a batch at once (pairs never cross images)."""

    def __init__(self, mode: str, num_obj_classes: int, num_rel_classes: int, in_channels: int, pooling_dim: int,
                 hidden_dim: int, num_iter: int):
        super().__init__()
        self.mode = check_mode(mode)
        self.num_obj_classes = num_obj_classes
        self.hidden_dim = hidden_dim
        self.num_iter = num_iter
        self.rel_fc = caffe2_xavier_fc(hidden_dim, num_rel_classes)
        # PredCls takes the GT labels, so it builds no object classifier (SGB builds one it never uses)
        self.obj_fc = None if mode == "predcls" else caffe2_xavier_fc(hidden_dim, num_obj_classes)
        self.obj_unary = caffe2_xavier_fc(in_channels, hidden_dim)
        self.edge_unary = caffe2_xavier_fc(pooling_dim, hidden_dim)
        self.edge_gru = nn.GRUCell(input_size=hidden_dim, hidden_size=hidden_dim)
        self.node_gru = nn.GRUCell(input_size=hidden_dim, hidden_size=hidden_dim)
        self.sub_vert_w_fc = sigmoid_gate(hidden_dim)  # edge <- its subject
        self.obj_vert_w_fc = sigmoid_gate(hidden_dim)  # edge <- its object
        self.out_edge_w_fc = sigmoid_gate(hidden_dim)  # subject <- its outgoing edge
        self.in_edge_w_fc = sigmoid_gate(hidden_dim)  # object <- its incoming edge

    def pass_messages(self, roi_features: torch.Tensor, union_features: torch.Tensor,
                      pairs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Node states (sum N, h) and edge states (sum P, h) after ``num_iter`` rounds; ``pairs`` (sum P, 2) are
        global (subject, object) indices."""
        subjects, objects = pairs[:, 0], pairs[:, 1]
        node = self.node_gru(self.obj_unary(roi_features))  # zero initial state, as SGB's hx_obj
        edge = self.edge_gru(F.relu(self.edge_unary(union_features)))
        for _ in range(self.num_iter):
            sub_vert, obj_vert = node[subjects], node[objects]
            weighted_sub = self.sub_vert_w_fc(torch.cat([sub_vert, edge], dim=1)) * sub_vert
            weighted_obj = self.obj_vert_w_fc(torch.cat([obj_vert, edge], dim=1)) * obj_vert
            new_edge = self.edge_gru(weighted_sub + weighted_obj, edge)
            # the nodes read this round's *input* edge states, as SGB (edge_factor[i], not the update above)
            outgoing = self.out_edge_w_fc(torch.cat([sub_vert, edge], dim=1)) * edge
            incoming = self.in_edge_w_fc(torch.cat([obj_vert, edge], dim=1)) * edge
            # SGB multiplies by dense (nodes x pairs) 0/1 matrices; a scatter-add gives the same sums in O(pairs)
            node_context = outgoing.new_zeros(node.shape)
            node_context = node_context.index_add(0, subjects, outgoing).index_add(0, objects, incoming)
            node = self.node_gru(node_context, node)
            edge = new_edge
        return node, edge

    def forward(self, batch: RelationBatch, union_features: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(obj_logits (sum N, C), edge states (sum P, h))."""
        node, edge = self.pass_messages(batch.roi_features, union_features, global_pair_indices(batch))
        if batch.mode == "predcls":
            return ground_truth_objects(batch, self.num_obj_classes)[0], edge
        require_object_classifier(self.obj_fc, batch, "IMPPredictor")
        return self.obj_fc(node), edge


@ROI_RELATION_PREDICTORS.register("IMPPredictor")
class IMPPredictor(nn.Module):
    """``rel_logits = rel_fc(edge state)``, ``obj_logits = obj_fc(node state)`` (one-hot GT in PredCls)."""

    # SGB's relation_train_net.py trains the relation head's box and union feature MLPs at LR / 10 for IMP only
    # ("slow_heads", slow_ratio 10); the optimizer builder reads this (sgg/solver/build.py)
    FEATURE_LR_DIVISOR = 10.0

    def __init__(self, context_layer: IMPContext, union_dim: int, pooling_dim: int,
                 later_nms_thresh: float = 0.3):
        super().__init__()
        self.context_layer = context_layer
        self.union_dim = union_dim
        self.later_nms_thresh = later_nms_thresh
        # SGB: up_dim (Xavier normal) when CONTEXT_POOLING_DIM != MLP_HEAD_DIM
        self.up_dim = xavier_init(nn.Linear(union_dim, pooling_dim)) if union_dim != pooling_dim else None

    @classmethod
    def from_config(cls, cfg, in_channels: int, statistics):
        head = cfg.MODEL.ROI_RELATION_HEAD
        require_union_features(cfg, "IMPPredictor", "starts every edge from its union-box feature")
        if head.IMP.NUM_ITER < 1:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.IMP.NUM_ITER must be an integer >= 1 (SGB: 3), got "
                              f"{head.IMP.NUM_ITER}")
        if head.PREDICT_USE_BIAS:
            logger.info("IMPPredictor has no frequency bias (as SGB's): MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS "
                        "is not read")
        obj_classes, rel_classes = class_counts(statistics)
        context = IMPContext(get_protocol(cfg), len(obj_classes), len(rel_classes), in_channels,
                             head.CONTEXT_POOLING_DIM, head.IMP.HIDDEN_DIM, head.IMP.NUM_ITER)
        return cls(context, in_channels, head.CONTEXT_POOLING_DIM, cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES)

    @staticmethod
    def rel_feature_dim(cfg) -> int:
        """Width of ``rel_features`` (the last edge states) for a re-scorer such as the Ranker."""
        return int(cfg.MODEL.ROI_RELATION_HEAD.IMP.HIDDEN_DIM)

    def _union_features(self, batch: RelationBatch) -> torch.Tensor:
        union = batch.union_features
        expected = (sum(batch.num_pairs), self.union_dim)
        if union is None or tuple(union.shape) != expected:
            found = "none" if union is None else f"shape {tuple(union.shape)}"
            raise ValueError(f"IMPPredictor needs union_features of shape {expected} (one row per pair, predictor "
                             f"in_channels), got {found}")
        return union if self.up_dim is None else self.up_dim(union)

    def object_labels(self, obj_logits: torch.Tensor, batch: RelationBatch) -> torch.Tensor:
        """The labels the post-processor will give (IMP scores pairs without them): GT in PredCls, else the
        non-background argmax, or SGB's later NMS at SGDet test."""
        if batch.mode == "predcls":
            return gt_labels(batch)
        return decode_object_labels(obj_logits, batch, self.training, self.later_nms_thresh)

    def forward(self, batch: RelationBatch) -> PredictorOutput:
        obj_logits, edge = self.context_layer(batch, self._union_features(batch))
        rel_logits = self.context_layer.rel_fc(edge)
        return PredictorOutput(obj_logits=obj_logits, obj_preds=self.object_labels(obj_logits, batch),
                               rel_logits=rel_logits, rel_features=edge)
