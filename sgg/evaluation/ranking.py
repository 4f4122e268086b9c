"""Ranking one image's predicted relations: the three ranked lists every metric reads.

* graph-constrained list: each pair once, with its best non-background predicate, ranked by
  ``scores[s] * scores[o] * max_c rel_scores[p, c]`` (R@K, mR@K, zR@K, F@K);
* no-graph-constraint list: every (pair, predicate) ranked by ``scores[s] * scores[o] * rel_scores[p, c]``
  (ng-R@K, ng-mR@K, ng-zR@K);
* pair-accuracy list (predcls/sgcls): the graph-constrained list restricted to pairs that are GT pairs (A@K).

A model that ranks its own triplets (IterativeSG, whose reference evaluates them in its post-processor's order) hands
that ranking over as the optional per-pair field ``rel_rank_scores``: the graph-constrained and pair-accuracy lists
are then ranked by it (stable, ties in input order), each row keeping its best non-background predicate. The ng list
is unchanged (it ranks (pair, predicate) scores, as the references do). The relation NMS re-ranks pairs by its own
scores, so it cannot be combined with a model's own ranking.

Each list is cut at the largest K, so what an image needs afterwards is bounded by K, not by the number of pairs.
Rankings are stable (ties keep input order) and computed in float32 as SGB does. The products are taken as
``(scores[s] * scores[o]) * rel`` so that a pair's graph-constrained score is exactly the largest of its ng scores;
that makes the ng top-K provably lie within the pairs whose graph-constrained score reaches the K-th largest one,
and only those pairs' score rows are expanded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from sgg.utils.errors import EvaluationError

from .matching import sorted_contains
from .relation_nms import relation_nms


def foreground_max(rel_scores: np.ndarray) -> np.ndarray:
    """Row-wise max over columns 1.. (non-background). Column by column for many rows: for 6,320 x 51 float32 this is
    faster than ``rel_scores[:, 1:].max(axis=1)``, whose short inner reductions dominate; for the few hundred pairs
    of a predcls/sgcls image the 50 calls of the loop cost more than the one reduction. Both give the same values."""
    if rel_scores.shape[0] <= 2048:
        return rel_scores[:, 1:].max(axis=1).astype(np.float32, copy=False)
    best = np.array(rel_scores[:, 1], dtype=np.float32)
    for c in range(2, rel_scores.shape[1]):
        np.maximum(best, rel_scores[:, c], out=best)
    return best


def stable_topk(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values in descending order, ties in ascending index order.

    argpartition finds the k-th value in linear time; only the entries at or above it are then sorted. Up to about a
    thousand values one stable sort is cheaper than those four calls, and gives the same indices.
    """
    n = values.shape[0]
    if k <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n or n <= 1024:
        return np.argsort(-values, kind="stable")[:k]
    kth = values[np.argpartition(-values, k - 1)[:k]].min()
    candidates = np.flatnonzero(values >= kth)
    return candidates[np.argsort(-values[candidates], kind="stable")[:k]]


@dataclass
class RankedPrediction:
    """The ranked lists of one image, each row (subject index, object index, predicate), best first.

    ``boxes``/``labels`` are the predicted objects the indices refer to (None in predcls, where GT objects are used).
    ``pair_accuracy`` is None in sgdet/phrdet.
    """
    boxes: Optional[np.ndarray]
    labels: Optional[np.ndarray]
    graph: np.ndarray
    no_graph: np.ndarray
    pair_accuracy: Optional[np.ndarray]
    top_k: int


@dataclass
class _RankDetail:
    """Row indices into the input pairs behind each list (the prediction file stores these)."""
    graph_rows: np.ndarray
    graph_labels: np.ndarray
    no_graph_rows: np.ndarray
    no_graph_labels: np.ndarray
    accuracy_rows: Optional[np.ndarray]
    accuracy_labels: Optional[np.ndarray]


def gt_pair_mask(pairs: np.ndarray, gt_relations: np.ndarray) -> np.ndarray:
    """Which predicted pairs (s, o) are the (subject, object) of some GT relation (SGB's pred_pair_in_gt)."""
    if len(pairs) == 0 or len(gt_relations) == 0:
        return np.zeros(len(pairs), dtype=bool)
    num_objects = int(max(pairs.max(), gt_relations[:, :2].max())) + 1
    if num_objects <= 2048:  # a (subject, object) table: three numpy calls for the few boxes of predcls/sgcls
        table = np.zeros((num_objects, num_objects), dtype=bool)
        table[gt_relations[:, 0], gt_relations[:, 1]] = True
        return table[pairs[:, 0], pairs[:, 1]]
    keys = pairs[:, 0].astype(np.int64) << 32 | pairs[:, 1].astype(np.int64)
    gt_keys = gt_relations[:, 0].astype(np.int64) << 32 | gt_relations[:, 1].astype(np.int64)
    return sorted_contains(np.sort(gt_keys), keys)


def rank_relations(object_scores: np.ndarray, pairs: np.ndarray, rel_scores: np.ndarray, top_k: int,
                   accuracy_mask: Optional[np.ndarray] = None, nms_boxes: Optional[np.ndarray] = None,
                   nms_labels: Optional[np.ndarray] = None, nms_iou: float = 0.6, legacy_iou: bool = True,
                   rank_scores: Optional[np.ndarray] = None) -> _RankDetail:
    """Rank the pairs of one image; see the module docstring. Passing ``nms_boxes``/``nms_labels`` turns on the
    relation NMS for the graph-constrained and pair-accuracy lists (the ng list always uses the raw scores);
    ``rank_scores`` (P,) ranks those two lists by the model's own order instead."""
    num_pairs, num_classes = rel_scores.shape
    fg = rel_scores[:, 1:]
    if num_pairs == 0 or num_classes < 2:
        empty = np.zeros(0, dtype=np.int64)
        acc = None if accuracy_mask is None else empty
        return _RankDetail(empty, empty, empty, empty, acc, acc)
    object_scores = object_scores.astype(np.float32, copy=False)
    pair_score = object_scores[pairs[:, 0]] * object_scores[pairs[:, 1]]
    best = pair_score * foreground_max(rel_scores)  # exactly max_c of the ng scores of each pair

    if rank_scores is not None:
        if nms_boxes is not None:
            raise EvaluationError("the prediction field 'rel_rank_scores' (the model ranks its own triplets) cannot "
                                  "be combined with TEST.RELATION.RELATION_NMS, which re-ranks the pairs; turn one "
                                  "off (for IterativeSG: MODEL.DETR.EVAL_QUERY_RANKING False)")
        labels_all, graph_score = None, np.asarray(rank_scores, dtype=np.float32)
    elif nms_boxes is not None:
        labels_all, picked = relation_nms(nms_boxes, nms_labels, pairs, rel_scores, nms_iou, legacy_iou)
        graph_score = pair_score * picked
    else:
        labels_all, graph_score = None, best

    def labels_of(rows):
        if labels_all is not None:
            return labels_all[rows]
        return fg[rows].argmax(axis=1) + 1

    graph_rows = stable_topk(graph_score, top_k)

    # ng top-K: any (pair, predicate) in it has a score >= the K-th largest pair maximum, so its pair is one of
    # the pairs whose maximum reaches that value; expand only those (rows kept in ascending order so that ties
    # still resolve in the row-major order of the full P x (C-1) matrix)
    best_rows = graph_rows if graph_score is best else stable_topk(best, top_k)
    kth = best[best_rows[-1]]
    cand = np.flatnonzero(best >= kth)
    ng_scores = (pair_score[cand, None] * fg[cand]).ravel()
    if len(best_rows) == top_k:
        # the K pairs above already hold K entries >= kth, so the ng top-K is among the entries >= kth: usually
        # little more than K of them, cheaper to sort outright than to partition all candidates
        keep = np.flatnonzero(ng_scores >= kth)
        flat = keep[np.argsort(-ng_scores[keep], kind="stable")[:top_k]]
    else:  # fewer pairs than K: the list reaches below every pair's maximum
        flat = stable_topk(ng_scores, top_k)
    ng_rows = cand[flat // (num_classes - 1)]
    ng_labels = flat % (num_classes - 1) + 1

    acc_rows = acc_labels = None
    if accuracy_mask is not None:
        in_gt = np.flatnonzero(accuracy_mask)
        acc_rows = in_gt[stable_topk(graph_score[in_gt], top_k)]
        acc_labels = labels_of(acc_rows)
    return _RankDetail(graph_rows, labels_of(graph_rows), ng_rows, ng_labels, acc_rows, acc_labels)


def build_ranked(boxes, labels, pairs: np.ndarray, detail: _RankDetail, top_k: int) -> RankedPrediction:
    def rows(idx, lab):
        out = np.empty((len(idx), 3), dtype=np.int64)
        out[:, :2] = pairs[idx]
        out[:, 2] = lab
        return out

    acc = None
    if detail.accuracy_rows is not None:
        acc = rows(detail.accuracy_rows, detail.accuracy_labels)
    return RankedPrediction(boxes, labels, rows(detail.graph_rows, detail.graph_labels),
                            rows(detail.no_graph_rows, detail.no_graph_labels), acc, top_k)


def rank_prediction(prediction, mode: str, top_k: int, gt_relations: Optional[np.ndarray] = None,
                    relation_nms_on: bool = False, nms_iou: float = 0.6, legacy_iou: bool = True,
                    gt_boxes: Optional[np.ndarray] = None, gt_labels: Optional[np.ndarray] = None,
                    return_detail: bool = False):
    """Rank a checked :class:`~sgg.evaluation.inputs.Prediction`.

    predcls uses object scores 1 and (for the optional NMS) the GT boxes/labels; predcls/sgcls need
    ``gt_relations`` for the pair-accuracy list.
    """
    pairs, rel_scores = prediction.rel_pair_idxs, prediction.rel_scores
    if mode == "predcls":
        num_objects = len(gt_labels) if gt_labels is not None else (int(pairs.max()) + 1 if len(pairs) else 0)
        object_scores = np.ones(num_objects, dtype=np.float32)
        boxes, labels = gt_boxes, gt_labels
    else:
        object_scores, boxes, labels = prediction.scores, prediction.boxes, prediction.labels
    mask = None
    if mode in ("predcls", "sgcls"):
        if gt_relations is None:
            raise ValueError(f"mode {mode!r} needs the ground-truth relations to rank the pair-accuracy list")
        mask = gt_pair_mask(pairs, gt_relations)
    nms_kwargs = {}
    if relation_nms_on:
        nms_kwargs = dict(nms_boxes=boxes, nms_labels=labels, nms_iou=nms_iou, legacy_iou=legacy_iou)
    detail = rank_relations(object_scores, pairs, rel_scores, top_k, mask, rank_scores=prediction.rank_scores,
                            **nms_kwargs)
    own = mode != "predcls"
    ranked = build_ranked(prediction.boxes if own else None, prediction.labels if own else None,
                          pairs, detail, top_k)
    return (ranked, detail) if return_detail else ranked
