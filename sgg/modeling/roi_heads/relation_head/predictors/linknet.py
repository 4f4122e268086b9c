"""LinkNet (Woo et al., NeurIPS 2018) as the CCE paper uses it (Huang et al., ACCV 2020; METHODS.md 2.1).

    c      = global average of the backbone maps (global context encoding, GCE); a multi-label head on c gives the
             image's class-presence logits for the "gce" loss
    O0     = [roi feature ; softmax(detector logits) @ K0 ; c]   (PredCls too, as the reference)
    O2     = RE1(O0)            (relational embedding, d0 -> hidden)
    O3, O4 = RE2(O2)            (O3: object context = RE2's residual output, O4: object logits)
    E      = RE4(RE3([word(label) ; O3]))  -> split into subject / object roles E_s, E_o (pooling dim each)
    G0     = E_s[i] * E_o[j] * union(i, j)
    logits = Linear([G0 ; K2(b_o|s)]) + frequency bias,   b_o|s the relative box layout of the pair

A relational embedding (RE) module is ``R = softmax_row((O W)(O U)^T)``, ``O' = O + fc0(R (O H))``, ``out = fc1(O')``.
"""
from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.config import get_protocol
from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import ROI_RELATION_PREDICTORS

from ..layers.batch_access import check_mode, class_counts, detector_logits, global_pair_indices, gt_labels
from ..layers.batch_norm import SmallBatchNorm1d
from ..layers.edge_head import build_frequency_bias, union_for_pairs
from ..layers.embeddings import ObjectInputEmbedding, label_embedding
from ..layers.image_context import (DETECTOR_SIZE_DIVISIBILITY, GLOBAL_POOLING_REGIONS, backbone_channels,
                                    batch_size_divisibility, global_image_features)
from ..layers.init import xavier_init
from ..layers.object_labels import decode_object_labels, ground_truth_objects
from ..losses import parse_loss_spec
from ..types import AuxiliaryOutputs, GlobalContextOutputs, PredictorOutput, RelationBatch

logger = logging.getLogger(__name__)

GCE_ACTIVATIONS = ("sigmoid", "softmax")
ATTENTION_SCOPES = ("image", "batch")
OBJECT_LABEL_INPUTS = ("detector", "gt_label")


def image_index_per_box(num_boxes: Sequence[int], device) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(num_boxes), device=device),
                                   torch.as_tensor(list(num_boxes), device=device, dtype=torch.long))


# ------------------------------------------------------------------------------------------------- layout
def relative_layout(subject_xyxy: torch.Tensor, object_xyxy: torch.Tensor) -> torch.Tensor:
    """b_o|s = ((x_o - x_s) / w_s, (y_o - y_s) / h_s, log(w_o / w_s), log(h_o / h_s)) with (x, y) box centres and
    neural-motifs' +1 widths (``center_size``), both (P, 4) xyxy -> (P, 4)."""
    def centre_size(xyxy):
        wh = (xyxy[:, 2:] - xyxy[:, :2] + 1.0).clamp(min=1e-3)  # clamp only guards inverted boxes
        return xyxy[:, :2] + 0.5 * wh, wh

    centre_s, size_s = centre_size(subject_xyxy.float())
    centre_o, size_o = centre_size(object_xyxy.float())
    return torch.cat([(centre_o - centre_s) / size_s, torch.log(size_o / size_s)], dim=1)


def pair_layout(batch: RelationBatch, pairs: torch.Tensor) -> torch.Tensor:
    """(sum P, 4) b_o|s of every pair of the batch (``pairs`` are global box indices)."""
    device = batch.roi_features.device
    if pairs.shape[0] == 0:
        return torch.zeros(0, 4, device=device)
    boxes = torch.cat([b.convert("xyxy").bbox.to(device) for b in batch.boxes], dim=0)
    return relative_layout(boxes[pairs[:, 0]], boxes[pairs[:, 1]])


class LayoutEncoder(nn.Module):
    """K2: BatchNorm(4) -> Linear(4, GEOMETRY_DIM) -> ReLU -> Dropout (neural-motifs' BN momentum 0.01 / 10)."""

    def __init__(self, out_dim: int, dropout: float):
        super().__init__()
        self.out_dim = out_dim
        self.layers = nn.Sequential(SmallBatchNorm1d(4, momentum=0.001), nn.Linear(4, out_dim), nn.ReLU(inplace=True),
                                    nn.Dropout(dropout))

    def forward(self, layout: torch.Tensor) -> torch.Tensor:
        return self.layers(layout)


# ------------------------------------------------------------------------------------------------- modules
class RelationalEmbedding(nn.Module):
    """``R = softmax_row((O W)(O U)^T)`` over the objects ``allowed`` lets each row see (its image),
    ``O' = O + fc0(R (O H))`` and ``out = fc1(O')``. ``out_dim=None`` builds no fc1 (PredCls' RE2, whose object
    logits are never used). Returns (O', out)."""

    def __init__(self, in_dim: int, out_dim: Optional[int], reduction: int = 2):
        super().__init__()
        inner = max(1, in_dim // reduction)
        self.query = nn.Linear(in_dim, inner)  # W
        self.key = nn.Linear(in_dim, inner)  # U
        self.value = nn.Linear(in_dim, inner)  # H
        self.fc0 = nn.Linear(inner, in_dim)
        self.fc1 = nn.Linear(in_dim, out_dim) if out_dim is not None else None

    def forward(self, objects: torch.Tensor,
                allowed: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        affinity = self.query(objects) @ self.key(objects).t()
        if allowed is not None:
            affinity = affinity.masked_fill(~allowed, float("-inf"))  # the diagonal is always allowed: no empty row
        attention = F.softmax(affinity, dim=1)
        residual = objects + self.fc0(attention @ self.value(objects))
        return residual, (self.fc1(residual) if self.fc1 is not None else None)


class GlobalContextEncoding(nn.Module):
    """c = global average of the backbone maps; multi-label logits = Linear(c) (one per object class)."""

    def __init__(self, context_dim: int, num_obj_classes: int, map_names: Sequence[str], region: str = "padded",
                 size_divisibility: Sequence[int] = (DETECTOR_SIZE_DIVISIBILITY,)):
        super().__init__()
        self.context_dim = context_dim
        self.map_names = tuple(map_names)
        self.region = region
        self.size_divisibility = tuple(size_divisibility)
        self.multi_label = nn.Linear(context_dim, num_obj_classes)

    def forward(self, batch: RelationBatch) -> Tuple[torch.Tensor, torch.Tensor]:
        context = global_image_features(batch.features, batch.image_sizes, self.map_names,
                                        "MODEL.ROI_RELATION_HEAD.LINKNET.GLOBAL_FEATURE_MAPS", self.region,
                                        self.size_divisibility)
        if context.shape[1] != self.context_dim:
            raise ConfigError(f"LinkNetPredictor: the backbone maps have {context.shape[1]} channels, but the global "
                              f"context encoding was built for {self.context_dim} (MODEL.BACKBONE.OUT_CHANNELS)")
        context = context.to(batch.roi_features.device, batch.roi_features.dtype)
        return context, self.multi_label(context)


def multi_label_targets(batch: RelationBatch, num_classes: int) -> Optional[torch.Tensor]:
    """(B, C) 1 where class c labels a box of the image (GT boxes in PredCls/SGCls, matched detections in SGDet
    training; background never), or None when the boxes carry no labels (SGDet test)."""
    if not all(b.has_field("labels") for b in batch.boxes):
        return None
    device = batch.roi_features.device
    targets = torch.zeros(len(batch.boxes), num_classes, device=device)
    for index, boxes in enumerate(batch.boxes):
        labels = boxes.get_field("labels").long().to(device)
        targets[index, labels[labels > 0]] = 1.0
    return targets


@ROI_RELATION_PREDICTORS.register("LinkNetPredictor")
class LinkNetPredictor(nn.Module):
    """Global context encoding + object and edge relational embeddings + layout encoding + classifier + bias.

    ``rel_features``: [G0 ; K2(b)], what the classifier reads and the Ranker re-scores; ``aux.global_context``: the
    (B, C) multi-label logits and, when the boxes are labelled, their (B, C) targets for the "gce" loss term.
    """

    CLASSIFIER_MODULES = ("rel_compress", "freq_bias")  # BA-SGG's clean classifier (ba_sgg.py)

    def __init__(self, mode: str, obj_classes: Sequence[str], num_rel_classes: int, in_channels: int,
                 context_dim: int, glove_dir: str, embed_dim: int = 200, hidden_dim: int = 256,
                 pooling_dim: int = 4096, reduction: int = 2, geometry_dim: int = 128, geometry_dropout: float = 0.1,
                 use_vision: bool = True, freq_bias=None, global_feature_maps: Sequence[str] = (),
                 attention_scope: str = "image", use_tanh: bool = False, limit_vision_dim: int = 0,
                 later_nms_thresh: float = 0.3, global_pooling: str = "padded", object_label_input: str = "detector",
                 size_divisibility: Sequence[int] = (DETECTOR_SIZE_DIVISIBILITY,)):
        super().__init__()
        self.mode = check_mode(mode)
        if attention_scope not in ATTENTION_SCOPES:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.LINKNET.ATTENTION_SCOPE must be one of {ATTENTION_SCOPES}, "
                              f"got {attention_scope!r}")
        if not 0 <= limit_vision_dim <= pooling_dim:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.LINKNET.LIMIT_VISION_DIM must be in 0..CONTEXT_POOLING_DIM "
                              f"({pooling_dim}), got {limit_vision_dim}")
        if reduction < 1:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.LINKNET.REDUCTION must be >= 1, got {reduction}")
        if global_pooling not in GLOBAL_POOLING_REGIONS:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.LINKNET.GLOBAL_POOLING must be one of {GLOBAL_POOLING_REGIONS}, "
                              f"got {global_pooling!r}")
        if object_label_input not in OBJECT_LABEL_INPUTS:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.LINKNET.OBJECT_LABEL_INPUT must be one of "
                              f"{OBJECT_LABEL_INPUTS}, got {object_label_input!r}")
        self.object_label_input = object_label_input
        # SceneGraphRCNN classifies the GT boxes in PredCls only for a predictor that reads the logits there
        self.reads_predcls_detector_logits = object_label_input == "detector"
        self.num_obj_classes = len(obj_classes)
        self.pooling_dim = pooling_dim
        self.use_vision = use_vision
        self.union_dim = in_channels
        self.attention_scope = attention_scope
        self.use_tanh = use_tanh
        self.limit_vision_dim = limit_vision_dim
        self.later_nms_thresh = later_nms_thresh

        self.global_context = GlobalContextEncoding(context_dim, self.num_obj_classes, global_feature_maps,
                                                    global_pooling, size_divisibility)
        self.obj_input_embed = ObjectInputEmbedding(obj_classes, glove_dir, embed_dim)  # K0
        self.obj_embed2 = label_embedding(obj_classes, glove_dir, embed_dim)  # K1
        self.re1 = RelationalEmbedding(in_channels + embed_dim + context_dim, hidden_dim, reduction)
        self.re2 = RelationalEmbedding(hidden_dim, None if mode == "predcls" else self.num_obj_classes, reduction)
        self.re3 = RelationalEmbedding(embed_dim + hidden_dim, hidden_dim, reduction)
        self.re4 = RelationalEmbedding(hidden_dim, 2 * pooling_dim, reduction)
        self.up_dim = xavier_init(nn.Linear(in_channels, pooling_dim)) if use_vision and in_channels != pooling_dim \
            else None
        self.layout_encoder = LayoutEncoder(geometry_dim, geometry_dropout)
        self.rel_compress = xavier_init(nn.Linear(pooling_dim + geometry_dim, num_rel_classes))
        self.freq_bias = freq_bias

    @staticmethod
    def rel_feature_dim(cfg) -> int:
        """Width of ``rel_features`` (the Ranker sizes its input from it)."""
        return cfg.MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM + cfg.MODEL.ROI_RELATION_HEAD.LINKNET.GEOMETRY_DIM

    @classmethod
    def from_config(cls, cfg, in_channels: int, statistics):
        head = cfg.MODEL.ROI_RELATION_HEAD
        linknet = head.LINKNET
        if linknet.GCE_ACTIVATION not in GCE_ACTIVATIONS:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.LINKNET.GCE_ACTIVATION must be one of {GCE_ACTIVATIONS}, got "
                              f"{linknet.GCE_ACTIVATION!r}")
        if "gce" not in [name for name, _ in parse_loss_spec(head.LOSS)]:
            logger.warning("LinkNetPredictor without the 'gce' term in MODEL.ROI_RELATION_HEAD.LOSS: its multi-label "
                           "image classifier gets no training signal (METHODS.md 2.1 trains it with weight 1)")
        obj_classes, rel_classes = class_counts(statistics)
        return cls(get_protocol(cfg), obj_classes, len(rel_classes), in_channels, backbone_channels(cfg),
                   cfg.GLOVE_DIR, head.EMBED_DIM, head.CONTEXT_HIDDEN_DIM, head.CONTEXT_POOLING_DIM,
                   linknet.REDUCTION, linknet.GEOMETRY_DIM, linknet.GEOMETRY_DROPOUT, head.PREDICT_USE_VISION,
                   build_frequency_bias(head.PREDICT_USE_BIAS, statistics), tuple(linknet.GLOBAL_FEATURE_MAPS),
                   linknet.ATTENTION_SCOPE, linknet.USE_TANH, linknet.LIMIT_VISION_DIM,
                   cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES, linknet.GLOBAL_POOLING, linknet.OBJECT_LABEL_INPUT,
                   batch_size_divisibility(cfg))

    # -------------------------------------------------------------------------------------------- pieces
    def _attention_mask(self, batch: RelationBatch) -> Optional[torch.Tensor]:
        if self.attention_scope == "batch":
            return None
        image = image_index_per_box(batch.num_boxes, batch.roi_features.device)
        return image[:, None] == image[None, :]

    def _object_label_embedding(self, batch: RelationBatch) -> torch.Tensor:
        """O0's label part: softmax(detector logits) @ K0 in every protocol, PredCls included (the reference feeds the
        detector's distribution of the GT boxes), or with OBJECT_LABEL_INPUT "gt_label" the GT label's word vector in
        PredCls."""
        if batch.mode == "predcls" and self.object_label_input == "gt_label":
            return self.obj_input_embed(batch)
        return F.softmax(detector_logits(batch), dim=1) @ self.obj_input_embed.embedding.weight

    def _object_labels(self, batch: RelationBatch, obj_logits: torch.Tensor) -> torch.Tensor:
        """Training: the boxes' labels (unmatched SGDet boxes take the argmax); test: argmax / SGDet's later NMS."""
        if self.training:
            labels = gt_labels(batch).clone()
            if labels.numel():
                unmatched = labels == 0
                labels[unmatched] = obj_logits.detach()[unmatched][:, 1:].argmax(dim=1) + 1
            return labels
        return decode_object_labels(obj_logits, batch, False, self.later_nms_thresh)

    def _relation_product(self, edge_rep: torch.Tensor, pairs: torch.Tensor,
                          union_features: Optional[torch.Tensor]) -> torch.Tensor:
        roles = edge_rep.view(-1, 2, self.pooling_dim)
        product = roles[pairs[:, 0], 0] * roles[pairs[:, 1], 1]  # G0 = E_s[i] * E_o[j]
        if self.use_vision:
            union = union_for_pairs(union_features, pairs.shape[0], self.union_dim, self.up_dim)
            if self.limit_vision_dim:
                limit = self.limit_vision_dim
                product = torch.cat([product[:, :limit] * union[:, :limit], product[:, limit:]], dim=1)
            else:
                product = product * union
        return torch.tanh(product) if self.use_tanh else product

    # -------------------------------------------------------------------------------------------- forward
    def forward(self, batch: RelationBatch) -> PredictorOutput:
        if batch.mode != self.mode:
            raise ValueError(f"this LinkNetPredictor was built for {self.mode}; got a {batch.mode} batch (build it "
                             f"with the {batch.mode} config)")
        roi_features = batch.roi_features
        context, gce_logits = self.global_context(batch)
        image = image_index_per_box(batch.num_boxes, roi_features.device)
        # the reference detaches c: the context feeds the objects but only the "gce" loss trains the multi-label head
        obj_input = torch.cat([roi_features, self._object_label_embedding(batch), context.detach()[image]],
                              dim=1)  # O0
        allowed = self._attention_mask(batch)
        _, o2 = self.re1(obj_input, allowed)
        obj_context, o4 = self.re2(o2, allowed)  # O3, O4
        if batch.mode == "predcls":
            obj_logits, obj_preds = ground_truth_objects(batch, self.num_obj_classes)
        else:
            obj_logits = o4
            obj_preds = self._object_labels(batch, obj_logits)

        edge_input = torch.cat([self.obj_embed2(obj_preds), obj_context], dim=1)  # E0
        _, e1 = self.re3(edge_input, allowed)
        _, edge_rep = self.re4(e1, allowed)

        pairs = global_pair_indices(batch)
        product = self._relation_product(edge_rep, pairs, batch.union_features)
        rel_features = torch.cat([product, self.layout_encoder(pair_layout(batch, pairs))], dim=1)
        rel_logits = self.rel_compress(rel_features)  # G2
        if self.freq_bias is not None:
            rel_logits = rel_logits + self.freq_bias.index_with_labels(obj_preds[pairs])

        global_context = GlobalContextOutputs(gce_logits, multi_label_targets(batch, self.num_obj_classes))
        return PredictorOutput(obj_logits=obj_logits, obj_preds=obj_preds, rel_logits=rel_logits,
                               rel_features=rel_features, aux=AuxiliaryOutputs(global_context=global_context))


__all__: List[str] = ["LinkNetPredictor", "RelationalEmbedding", "GlobalContextEncoding", "LayoutEncoder",
                      "relative_layout", "pair_layout", "multi_label_targets"]
