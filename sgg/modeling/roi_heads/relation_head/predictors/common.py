"""Pieces the baseline predictors share (PROTOCOL.md 4.5): label embeddings, the 9-d box geometry encoding, object
label decoding per protocol, and the "post_emb -> head/tail -> post_cat (x union) -> rel_compress + bias" edge head."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sgg.structures import BoxList
from sgg.utils.word_vectors import obj_edge_vectors

from ..frequency_bias import FrequencyBias
from ..inference import object_prediction_nms
from ..types import RelationBatch

MODES = ("predcls", "sgcls", "sgdet")
POS_EMBED_DIM = 128  # SGB's fixed size of the box geometry embedding
ONEHOT_FILL = 1000.0  # SGB's to_onehot fill: GT labels become +-1000 logits in PredCls


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown relation protocol {mode!r}; expected one of {', '.join(MODES)}")
    return mode


def xavier_init(layer: nn.Linear) -> nn.Linear:
    nn.init.xavier_normal_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def normal_init(layer: nn.Linear, std: float) -> nn.Linear:
    nn.init.normal_(layer.weight, mean=0.0, std=std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def label_embedding(class_names: Sequence[str], glove_dir: str, embed_dim: int) -> nn.Embedding:
    """An ``Embedding(len(class_names), embed_dim)`` initialised with the names' GloVe vectors."""
    embedding = nn.Embedding(len(class_names), embed_dim)
    with torch.no_grad():
        embedding.weight.copy_(obj_edge_vectors(class_names, glove_dir, embed_dim))
    return embedding


def to_onehot(labels: torch.Tensor, num_classes: int, fill: float = ONEHOT_FILL) -> torch.Tensor:
    """(N,) labels -> (N, C) logits of +fill at the label and -fill elsewhere (SGB's PredCls object logits)."""
    logits = torch.full((labels.shape[0], num_classes), -fill, device=labels.device)
    if labels.numel():
        logits[torch.arange(labels.shape[0], device=labels.device), labels.long()] = fill
    return logits


# ------------------------------------------------------------------------------------------------ batch accessors
def box_field(batch: RelationBatch, name: str) -> torch.Tensor:
    """A per-box field concatenated over images, with an error naming the field and the mode when it is absent."""
    values = []
    for image, boxes in enumerate(batch.boxes):
        if not boxes.has_field(name):
            raise KeyError(f"{batch.mode}: image {image} of the relation batch has no box field {name!r}")
        values.append(boxes.get_field(name))
    return torch.cat(values, dim=0)


def gt_labels(batch: RelationBatch) -> torch.Tensor:
    return box_field(batch, "labels").long().to(batch.roi_features.device)


def detector_logits(batch: RelationBatch) -> torch.Tensor:
    """The detector's class logits, detached (SGB does not back-propagate into the frozen box predictor)."""
    return box_field(batch, "predict_logits").detach().float().to(batch.roi_features.device)


def encode_box_geometry(boxes: Sequence[BoxList]) -> torch.Tensor:
    """(sum N, 9) SGB box info per image: [w/W, h/H, cx/W, cy/H, x1/W, y1/H, x2/W, y2/H, wh/(WH)] with +1 widths."""
    encoded = []
    for image in boxes:
        xyxy = image.convert("xyxy").bbox.float()
        width, height = float(image.size[0]), float(image.size[1])
        x1, y1, x2, y2 = xyxy.unbind(dim=1)
        w, h = x2 - x1 + 1.0, y2 - y1 + 1.0
        cx, cy = x1 + 0.5 * w, y1 + 0.5 * h
        encoded.append(torch.stack([w / width, h / height, cx / width, cy / height, x1 / width, y1 / height,
                                    x2 / width, y2 / height, w * h / (width * height)], dim=1))
    if not encoded:
        return torch.zeros(0, 9)
    return torch.cat(encoded, dim=0)


class SmallBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that uses its running statistics when a training batch has fewer than two rows (one image with one
    box), where batch statistics do not exist."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] < 2:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class BoxPositionEncoder(nn.Module):
    """Motif's position embedding: 9-d geometry -> Linear(32) -> BN -> Linear(128) -> ReLU. The Transformer variant
    (``batch_norm=False``) uses ReLU + Dropout(0.1) after each Linear instead, as in SGB's TransformerContext."""

    def __init__(self, out_dim: int = POS_EMBED_DIM, batch_norm: bool = True, dropout: float = 0.1):
        super().__init__()
        if batch_norm:
            self.layers = nn.Sequential(nn.Linear(9, 32), SmallBatchNorm1d(32, momentum=0.001),
                                        nn.Linear(32, out_dim), nn.ReLU(inplace=True))
        else:
            self.layers = nn.Sequential(nn.Linear(9, 32), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                        nn.Linear(32, out_dim), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.out_dim = out_dim

    def forward(self, boxes: Sequence[BoxList], device) -> torch.Tensor:
        return self.layers(encode_box_geometry(boxes).to(device))


class ObjectInputEmbedding(nn.Module):
    """The label embedding fed to the object context: the GT label's word vector in PredCls, otherwise the detector's
    class distribution times the embedding table (SGB: ``softmax(predict_logits) @ obj_embed1.weight``)."""

    def __init__(self, class_names: Sequence[str], glove_dir: str, embed_dim: int):
        super().__init__()
        self.embedding = label_embedding(class_names, glove_dir, embed_dim)

    def forward(self, batch: RelationBatch) -> torch.Tensor:
        if batch.mode == "predcls":
            return self.embedding(gt_labels(batch))
        return F.softmax(detector_logits(batch), dim=1) @ self.embedding.weight


def decode_object_labels(obj_logits: torch.Tensor, batch: RelationBatch, training: bool,
                         nms_thresh: float) -> torch.Tensor:
    """Labels the pairs are scored with in SGCls/SGDet: argmax over the non-background classes, except at SGDet test
    where SGB's per-class NMS on ``boxes_per_cls`` (IoU >= ``nms_thresh``) labels each box once."""
    if batch.mode == "sgdet" and not training and batch.boxes and batch.boxes[0].has_field("boxes_per_cls"):
        preds = []
        for boxes, logits in zip(batch.boxes, obj_logits.split(batch.num_boxes)):
            preds.append(object_prediction_nms(boxes.get_field("boxes_per_cls").to(logits.device), logits,
                                               nms_thresh))
        return torch.cat(preds) if preds else obj_logits.new_zeros(0, dtype=torch.long)
    if obj_logits.shape[0] == 0:
        return obj_logits.new_zeros(0, dtype=torch.long)
    return obj_logits[:, 1:].argmax(dim=1) + 1


def global_pair_indices(batch: RelationBatch) -> torch.Tensor:
    """(sum P, 2) pair indices into the concatenated boxes of the batch."""
    device = batch.roi_features.device
    pairs, offset = [], 0
    for num_boxes, pair_idxs in zip(batch.num_boxes, batch.pair_idxs):
        pairs.append(pair_idxs.to(device).long().reshape(-1, 2) + offset)
        offset += num_boxes
    if not pairs:
        return torch.zeros(0, 2, dtype=torch.long, device=device)
    return torch.cat(pairs, dim=0)


def pack_per_image(features: torch.Tensor, num_boxes: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(sum N, D) -> zero-padded (B, max N, D) and a (B, max N) bool mask of real boxes."""
    batch_size, longest = len(num_boxes), max(num_boxes, default=0)
    padded = features.new_zeros(batch_size, longest, features.shape[-1])
    mask = torch.zeros(batch_size, longest, dtype=torch.bool, device=features.device)
    for image, chunk in enumerate(features.split(list(num_boxes))):
        padded[image, : chunk.shape[0]] = chunk
        mask[image, : chunk.shape[0]] = True
    return padded, mask


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
            if union_features is None:
                raise ValueError("PREDICT_USE_VISION is True but the relation batch has no union_features")
            if union_features.shape != (pairs.shape[0], self.union_dim):
                raise ValueError(f"union_features have shape {tuple(union_features.shape)}, expected "
                                 f"({pairs.shape[0]}, {self.union_dim}) (one row per pair, predictor in_channels)")
            union = union_features if self.up_dim is None else self.up_dim(union_features)
            gated = gated * union
        logits = self.rel_compress(gated)
        if self.ctx_compress is not None:
            logits = logits + self.ctx_compress(pair_rep)
        if self.freq_bias is not None:
            logits = logits + self.freq_bias.index_with_labels(obj_preds[pairs])
        return logits, gated


def build_frequency_bias(use_bias: bool, statistics) -> Optional[FrequencyBias]:
    return FrequencyBias(statistics["pred_dist"]) if use_bias else None


def class_counts(statistics) -> Tuple[List[str], List[str]]:
    """Object and predicate class names (background first) from the dataset statistics, checked against pred_dist."""
    obj_classes, rel_classes = list(statistics["obj_classes"]), list(statistics["rel_classes"])
    pred_dist = statistics.get("pred_dist")
    if pred_dist is not None:
        shape = tuple(pred_dist.shape)
        if shape != (len(obj_classes), len(obj_classes), len(rel_classes)):
            raise ValueError(f"statistics: pred_dist has shape {shape} but there are {len(obj_classes)} object and "
                             f"{len(rel_classes)} predicate classes")
    return obj_classes, rel_classes


UNTREATED_AVERAGE_RATIO = 0.0005  # SGB's average_ratio of the Causal TDE moving averages


@torch.no_grad()
def update_moving_average(average: torch.Tensor, rows: torch.Tensor, ratio: float = UNTREATED_AVERAGE_RATIO) -> None:
    """In place: ``average <- (1 - ratio) * average + ratio * mean(rows)`` (SGB's ``moving_average``, Causal TDE's
    untreated features). A batch without rows leaves the average as it is (SGB would write NaN)."""
    if rows.shape[0] == 0:
        return
    average.mul_(1.0 - ratio).add_(rows.detach().float().mean(dim=0).view(-1).to(average.dtype), alpha=ratio)
