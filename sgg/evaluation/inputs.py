"""Conversion of one image's ground truth and prediction mappings to checked numpy arrays.

Every failure is a ``ValueError`` that names the image, the field and what was expected, because a bad field deep in a
26k-image evaluation is otherwise hard to trace back to its source.
"""
from __future__ import annotations

from collections.abc import Mapping  # not typing.Mapping: its isinstance check is several times slower
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from sgg.utils.errors import EvaluationError

MODES = ("predcls", "sgcls", "sgdet", "phrdet")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise EvaluationError(f"unknown evaluation mode {mode!r}; expected one of {', '.join(MODES)}")
    return mode


def to_numpy(value: Any) -> np.ndarray:
    """A numpy view of a numpy array, torch tensor (any device, bf16/fp16 included) or nested sequence."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # torch tensor, without importing torch here
        if value.requires_grad:
            value = value.detach()
        if str(value.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            value = value.float()
        if value.device.type != "cpu":
            value = value.cpu()
        return value.numpy()
    return np.asarray(value)


@dataclass
class GroundTruth:
    boxes: np.ndarray      # (N, 4) float32 xyxy
    labels: np.ndarray     # (N,) int64
    relations: np.ndarray  # (R, 3) int64: subject index, object index, predicate


@dataclass
class Prediction:
    boxes: Optional[np.ndarray]   # (M, 4) float32, None in predcls when not given
    labels: Optional[np.ndarray]  # (M,) int64
    scores: Optional[np.ndarray]  # (M,) float32
    rel_pair_idxs: np.ndarray     # (P, 2) int64
    rel_scores: np.ndarray        # (P, C) float32
    rank_scores: Optional[np.ndarray] = None  # (P,) float32: the model's own ranking of the pairs (optional)


class _Checker:
    def __init__(self, image_id, source: str):
        self.image_id = image_id
        self.source = source

    def fail(self, field: str, message: str) -> None:
        raise EvaluationError(f"image {self.image_id!r}: {self.source} field {field!r}: {message}")

    def get(self, mapping: Mapping, field: str, required: bool = True):
        if field in mapping and mapping[field] is not None:
            return to_numpy(mapping[field])
        if required:
            keys = ", ".join(sorted(map(str, mapping.keys())))
            self.fail(field, f"missing (the mapping has: {keys or 'nothing'})")
        return None

    def shape(self, field: str, array: np.ndarray, expected: tuple, text: str) -> None:
        ok = array.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, array.shape))
        if not ok:
            self.fail(field, f"expected shape {text}, got {tuple(array.shape)}")

    def integers(self, field: str, array: np.ndarray) -> np.ndarray:
        if array.size and array.dtype.kind not in "iu":  # dtype.kind: np.issubdtype costs more than the check
            if array.dtype.kind != "f" or not np.all(np.mod(array, 1) == 0):
                self.fail(field, f"expected integer values, got dtype {array.dtype}")
        return array.astype(np.int64, copy=False)

    def finite(self, field: str, array: np.ndarray) -> np.ndarray:
        array = array.astype(np.float32, copy=False)
        if array.size and not np.isfinite(array).all():
            self.fail(field, "expected finite values, found NaN or infinity")
        return array

    def probabilities(self, field: str, array: np.ndarray) -> np.ndarray:
        array = array.astype(np.float32, copy=False)
        if array.size == 0:
            return array
        # min() propagates NaN, so one comparison rejects NaN and negatives; details only on failure
        low, high = array.min(), array.max()
        if not low >= 0:
            if np.isnan(low):
                self.fail(field, "expected non-negative scores, found NaN")
            self.fail(field, f"expected non-negative scores, found {float(low)}")
        if not np.isfinite(high):
            self.fail(field, "expected finite scores, found infinity")
        return array

    def index_range(self, field: str, index: np.ndarray, size: int, what: str) -> None:
        if index.size and (index.min() < 0 or index.max() >= size):
            bad = int(index.min()) if index.min() < 0 else int(index.max())
            self.fail(field, f"index {bad} is outside the {size} {what} (expected 0..{size - 1})")


def parse_groundtruth(mapping: Mapping, num_predicates: int, image_id=None) -> GroundTruth:
    check = _Checker(image_id, "groundtruth")
    if not isinstance(mapping, Mapping):
        raise EvaluationError(f"image {image_id!r}: groundtruth must be a mapping with boxes, labels, relations; "
                              f"got {type(mapping).__name__}")
    boxes = check.finite("boxes", check.get(mapping, "boxes"))
    check.shape("boxes", boxes, (None, 4), "(N, 4) xyxy")
    labels = check.integers("labels", check.get(mapping, "labels"))
    check.shape("labels", labels, (boxes.shape[0],), f"({boxes.shape[0]},) like boxes")
    relations = check.integers("relations", check.get(mapping, "relations"))
    if relations.size == 0:
        relations = relations.reshape(0, 3)
    check.shape("relations", relations, (None, 3), "(R, 3): subject index, object index, predicate")
    check.index_range("relations", relations[:, :2], boxes.shape[0], "ground-truth boxes")
    if relations.size and (relations[:, 2].min() < 1 or relations[:, 2].max() >= num_predicates):
        check.fail("relations", f"predicate labels must lie in 1..{num_predicates - 1} (0 is background), "
                                f"got {int(relations[:, 2].min())}..{int(relations[:, 2].max())}")
    return GroundTruth(boxes, labels, relations)


def parse_prediction(mapping: Mapping, mode: str, num_predicates: int, num_gt_boxes: int,
                     image_id=None) -> Prediction:
    """Check one prediction. In predcls the object fields are optional (GT boxes, labels and scores 1 replace
    them) and pair indices refer to the ground-truth boxes."""
    check = _Checker(image_id, "prediction")
    if not isinstance(mapping, Mapping):
        raise EvaluationError(f"image {image_id!r}: prediction must be a mapping with boxes, labels, scores, "
                              f"rel_pair_idxs, rel_scores; got {type(mapping).__name__}")
    objects_required = mode != "predcls"
    boxes = check.get(mapping, "boxes", objects_required)
    labels = check.get(mapping, "labels", objects_required)
    scores = check.get(mapping, "scores", objects_required)
    if boxes is not None:
        boxes = check.finite("boxes", boxes)
        check.shape("boxes", boxes, (None, 4), "(M, 4) xyxy")
    num_boxes = boxes.shape[0] if boxes is not None else None
    if labels is not None:
        labels = check.integers("labels", labels)
        if num_boxes is not None:
            check.shape("labels", labels, (num_boxes,), f"({num_boxes},) like boxes")
    if scores is not None:
        scores = check.probabilities("scores", scores)
        if num_boxes is not None:
            check.shape("scores", scores, (num_boxes,), f"({num_boxes},) like boxes")
    pairs = check.integers("rel_pair_idxs", check.get(mapping, "rel_pair_idxs"))
    if pairs.size == 0:
        pairs = pairs.reshape(0, 2)
    check.shape("rel_pair_idxs", pairs, (None, 2), "(P, 2): subject index, object index")
    rel_scores = check.get(mapping, "rel_scores")
    if rel_scores.size == 0 and pairs.shape[0] == 0:
        rel_scores = rel_scores.reshape(0, num_predicates)
    if rel_scores.ndim != 2 or rel_scores.shape[1] != num_predicates:
        check.fail("rel_scores", f"expected shape (P, {num_predicates}) with num_predicates={num_predicates} "
                                 f"(column 0 background), got {tuple(rel_scores.shape)}")
    check.shape("rel_scores", rel_scores, (pairs.shape[0], num_predicates),
                f"({pairs.shape[0]}, {num_predicates}), one row per rel_pair_idxs row")
    rel_scores = check.probabilities("rel_scores", rel_scores)
    rank_scores = check.get(mapping, "rel_rank_scores", required=False)
    if rank_scores is not None:
        rank_scores = check.finite("rel_rank_scores", rank_scores)
        check.shape("rel_rank_scores", rank_scores, (pairs.shape[0],),
                    f"({pairs.shape[0]},), one per rel_pair_idxs row")
    if mode == "predcls":
        check.index_range("rel_pair_idxs", pairs, num_gt_boxes, "ground-truth boxes (predcls uses GT boxes)")
    else:
        check.index_range("rel_pair_idxs", pairs, num_boxes, "predicted boxes")
    return Prediction(boxes, labels, scores, pairs, rel_scores, rank_scores)
