"""What flows into and out of a relation predictor. Every predictor takes a RelationBatch and returns a
PredictorOutput, so any predictor works with any sampler, feature extractor, loss and post-processor."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

from sgg.structures import BoxList


@dataclass
class RelationBatch:
    """One batch of images at the relation head.

    ``boxes[i]``: image i's boxes (xyxy, input-image coordinates, ``size = (w, h)``) with fields ``labels`` (GT labels
    in PredCls/SGCls; the matched GT label in SGDet training; absent at SGDet test), ``predict_logits`` (N, C)
    detector class logits (all protocols; in PredCls/SGCls those of the GT boxes) and, in SGDet, ``boxes_per_cls`` (N, C, 4).
    ``roi_features`` and ``union_features`` are concatenated over images in ``boxes`` / ``pair_idxs`` order.
    """

    mode: str
    boxes: List[BoxList]
    pair_idxs: List[torch.Tensor]  # per image (P_i, 2) indices into boxes[i]
    roi_features: torch.Tensor  # (sum N_i, D)
    union_features: Optional[torch.Tensor] = None  # (sum P_i, D_union), None without PREDICT_USE_VISION
    rel_labels: Optional[List[torch.Tensor]] = None  # training: per image (P_i,), 0 = background
    rel_binarys: Optional[List[torch.Tensor]] = None  # training: per image (N_i, N_i) symmetric 0/1
    features: Optional[Dict[str, torch.Tensor]] = None  # the backbone's feature maps (image-level context)
    image_sizes: Optional[List[Tuple[int, int]]] = None  # (h, w) of each image before padding
    union_spatial_features: Optional[torch.Tensor] = None  # (sum P_i, D_union) Causal SEPARATE_SPATIAL, else None

    @property
    def num_boxes(self) -> List[int]:
        return [len(b) for b in self.boxes]

    @property
    def num_pairs(self) -> List[int]:
        return [len(p) for p in self.pair_idxs]

    @property
    def training_labels(self) -> bool:
        return self.rel_labels is not None


@dataclass
class PredictorOutput:
    """Refined object logits (sum N, C), the object labels the pairs were scored with (sum N,), relation logits
    (sum P, R), and any extra tensors a loss or a re-scoring module needs. Convention: ``extras["rel_features"]``
    (sum P, D) is the relation representation the final classifier reads (the Ranker and BA-SGG use it)."""

    obj_logits: torch.Tensor
    obj_preds: torch.Tensor
    rel_logits: torch.Tensor
    extras: Dict[str, torch.Tensor] = field(default_factory=dict)
