"""Box IoU and triplet matching (SGB `_compute_pred_matches`, vectorised).

A predicted triplet matches a ground-truth triplet when subject class, predicate and object class are equal and both
the subject and the object boxes have IoU >= threshold with the GT boxes (phrdet: the union boxes). One prediction may
match several GT triplets (duplicates), and a GT triplet counts as recalled at K when any of the first K predictions
matches it. So per GT triplet only one number matters: the rank of the first prediction that matches it.
"""
from __future__ import annotations

import numpy as np

#: rank stored for a GT triplet that no prediction in the list matches
NOT_MATCHED = np.iinfo(np.int32).max


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray, legacy: bool = True) -> np.ndarray:
    """Pairwise IoU (N, M). ``legacy``: maskrcnn-benchmark's +1 pixel convention (width = x2 - x1 + 1).

    Computed in float32 with maskrcnn's operation order so that boundary cases (IoU exactly at the threshold) come
    out as in SGB.
    """
    a = np.asarray(boxes1, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(boxes2, dtype=np.float32).reshape(-1, 4)
    return _iou(a[:, None, :], b[None, :, :], legacy)


def paired_iou(boxes1: np.ndarray, boxes2: np.ndarray, legacy: bool = True) -> np.ndarray:
    """IoU of row i of ``boxes1`` with row i of ``boxes2`` (both (N, 4)); used for the few candidate matches only."""
    a = np.asarray(boxes1, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(boxes2, dtype=np.float32).reshape(-1, 4)
    return _iou(a, b, legacy)


def _iou(a: np.ndarray, b: np.ndarray, legacy: bool) -> np.ndarray:
    # maskrcnn's boxlist_iou: x and y handled together (lt, rb, wh), the same float32 operations per element
    one = np.float32(1.0 if legacy else 0.0)
    area_a = (a[..., 2] - a[..., 0] + one) * (a[..., 3] - a[..., 1] + one)
    area_b = (b[..., 2] - b[..., 0] + one) * (b[..., 3] - b[..., 1] + one)
    lt = np.maximum(a[..., :2], b[..., :2])
    rb = np.minimum(a[..., 2:], b[..., 2:])
    wh = np.maximum(rb - lt + one, np.float32(0.0))  # np.maximum, not np.clip: same values, less call overhead
    inter = wh[..., 0] * wh[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        # degenerate boxes give 0/0 = NaN, which never passes a >= threshold test
        return inter / (area_a + area_b - inter)


def union_boxes(boxes_s: np.ndarray, boxes_o: np.ndarray) -> np.ndarray:
    """The smallest box holding both boxes of each pair (phrase detection)."""
    return np.concatenate([np.minimum(boxes_s[:, :2], boxes_o[:, :2]),
                           np.maximum(boxes_s[:, 2:], boxes_o[:, 2:])], axis=1)


def first_match_ranks(gt_rels: np.ndarray, gt_boxes: np.ndarray, gt_labels: np.ndarray,
                      pred_rels: np.ndarray, pred_boxes: np.ndarray, pred_labels: np.ndarray,
                      iou_threshold: float = 0.5, phrdet: bool = False, legacy_iou: bool = True) -> np.ndarray:
    """For each GT relation, the position of the first prediction in ``pred_rels`` that matches it.

    ``gt_rels`` (G, 3) and ``pred_rels`` (L, 3) are (subject index, object index, predicate), indices into their
    own boxes/labels; ``pred_rels`` is in rank order. Returns int32 (G,), ``NOT_MATCHED`` where nothing matches.
    GT g is recalled at K exactly when ``ranks[g] < K``.
    """
    return first_match_ranks_of_lists(gt_rels, gt_boxes, gt_labels, [pred_rels], pred_boxes, pred_labels,
                                      iou_threshold, phrdet, legacy_iou)[:, 0]


def first_match_ranks_of_lists(gt_rels: np.ndarray, gt_boxes: np.ndarray, gt_labels: np.ndarray,
                               pred_lists, pred_boxes: np.ndarray, pred_labels: np.ndarray,
                               iou_threshold: float = 0.5, phrdet: bool = False, legacy_iou: bool = True
                               ) -> np.ndarray:
    """:func:`first_match_ranks` of several ranked lists over the same predicted objects at once: int32 (G, lists).

    Per image the evaluator matches three short lists (graph, ng, pair accuracy) against a few GT relations, so
    per-call overhead dominates; here the lists are stacked and matched with one table lookup.
    """
    ranks = np.full((len(gt_rels), len(pred_lists)), NOT_MATCHED, dtype=np.int32)
    if len(gt_rels) == 0:
        return ranks
    if phrdet:  # union boxes depend on the pair, so no per-object table; phrdet is rarely evaluated
        for column, rows in enumerate(pred_lists):
            ranks[:, column] = _first_match_ranks_phrdet(gt_rels, gt_boxes, gt_labels, rows, pred_boxes,
                                                         pred_labels, iou_threshold, legacy_iou)
        return ranks
    sizes = [len(rows) for rows in pred_lists]
    if sum(sizes) == 0:
        return ranks
    rows = np.concatenate([np.asarray(r).reshape(-1, 3) for r in pred_lists])
    # can predicted object m stand for GT object n: same class and IoU >= threshold. Elementwise the same float32
    # IoU as matching pair by pair, so the results are identical; M x N is small (80 x 12 on VG sgdet)
    stands_for = ((np.asarray(pred_labels)[:, None] == np.asarray(gt_labels)[None, :])
                  & (box_iou(pred_boxes, gt_boxes, legacy_iou) >= iou_threshold))
    gs, go, gp = gt_rels[:, 0], gt_rels[:, 1], gt_rels[:, 2]
    same = (stands_for[rows[:, :1], gs] & stands_for[rows[:, 1:2], go]
            & (rows[:, 2:3] == gp[None, :]))  # (sum of list lengths, G)
    # position of each row within its own list where it matches, NOT_MATCHED elsewhere; then a min per list
    position = np.concatenate([np.arange(size, dtype=np.int32) for size in sizes])
    candidates = np.where(same, position[:, None], NOT_MATCHED)
    start = 0
    for column, size in enumerate(sizes):
        if size:
            ranks[:, column] = candidates[start:start + size].min(axis=0)
        start += size
    return ranks


def _first_match_ranks_phrdet(gt_rels, gt_boxes, gt_labels, pred_rels, pred_boxes, pred_labels,
                              iou_threshold, legacy_iou):
    ranks = np.full(len(gt_rels), NOT_MATCHED, dtype=np.int32)
    if len(pred_rels) == 0:
        return ranks
    gs, go, gp = gt_rels[:, 0], gt_rels[:, 1], gt_rels[:, 2]
    ps, po, pp = pred_rels[:, 0], pred_rels[:, 1], pred_rels[:, 2]
    same = ((pred_labels[ps][:, None] == gt_labels[gs][None, :])
            & (pp[:, None] == gp[None, :])
            & (pred_labels[po][:, None] == gt_labels[go][None, :]))
    pi, gi = np.nonzero(same)  # candidates, row-major: ascending prediction rank
    if pi.size == 0:
        return ranks
    ok = paired_iou(union_boxes(pred_boxes[ps[pi]], pred_boxes[po[pi]]),
                    union_boxes(gt_boxes[gs[gi]], gt_boxes[go[gi]]), legacy_iou) >= iou_threshold
    np.minimum.at(ranks, gi[ok], pi[ok].astype(np.int32))
    return ranks


def triplet_keys(subject_classes: np.ndarray, object_classes: np.ndarray, predicates: np.ndarray) -> np.ndarray:
    """One int64 per (subject class, object class, predicate), for set membership tests (zero-shot)."""
    return ((np.asarray(subject_classes, dtype=np.int64) << 42)
            | (np.asarray(object_classes, dtype=np.int64) << 21)
            | np.asarray(predicates, dtype=np.int64))


def sorted_contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``np.isin(keys, sorted_keys)`` for an ascending ``sorted_keys``: a binary search per key. np.isin sorts both
    arrays on every call, which for the ~6,000 zero-shot triplets cost more than the rest of an image's evaluation."""
    if len(sorted_keys) == 0:
        return np.zeros(np.shape(keys), dtype=bool)
    at = np.searchsorted(sorted_keys, keys)
    return sorted_keys[np.minimum(at, len(sorted_keys) - 1)] == keys
