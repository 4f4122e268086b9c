"""Optional relation NMS in the style of PE-Net's evaluator (METHODS.md 4.3; taken there from RU-Net / HL-Net).

Greedy, per predicate class: repeatedly take the unprocessed pair with the highest remaining predicate score, give
it that predicate, and zero the same predicate in every unprocessed pair that overlaps it (same subject class and
same object class, subject IoU and object IoU both >= ``iou_threshold``). Duplicate detections of one relation then
stop occupying several top-K slots with the same triplet, which **raises R@K and mR@K above the standard protocol**;
the evaluator therefore keeps it off by default and numbers obtained with it must be reported as such.

Differences from PE-Net's code, on purpose:
* the re-ranking score is ``scores[s] * scores[o] * picked`` (PE-Net multiplies the subject score twice, a bug);
* PE-Net's "l21" similarity test is dropped: for probability rows (each summing to 1) the sum over classes of
  ``sqrt(a_c^2 + b_c^2)`` is at least 1 > 0.7, so the test never rejects anything;
* a pair whose every predicate was suppressed is still processed once and keeps its (zero) suppressed score, so it
  ranks last, instead of PE-Net's edge case that can leave such a pair labelled background.
Cost: the greedy loop runs only over pairs that overlap another pair (O(n^2) for n such pairs); detector output
after class-wise NMS has few of them, so even sgdet's ~6,000 pairs per image stay cheap.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .matching import box_iou


def relation_nms(boxes: np.ndarray, labels: np.ndarray, pairs: np.ndarray, rel_scores: np.ndarray,
                 iou_threshold: float = 0.6, legacy_iou: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Return, per pair, the kept predicate (1..C-1) and its score after suppression (float32)."""
    num_pairs = rel_scores.shape[0]
    out_labels = np.zeros(num_pairs, dtype=np.int64)
    out_scores = np.zeros(num_pairs, dtype=np.float32)
    if num_pairs == 0:
        return out_labels, out_scores
    boxes = np.asarray(boxes, dtype=np.float32)
    labels = np.asarray(labels)
    similar = (box_iou(boxes, boxes, legacy_iou) >= iou_threshold) & (labels[:, None] == labels[None, :])
    subj, obj = pairs[:, 0], pairs[:, 1]

    # A pair that overlaps no other pair just keeps its best predicate. Count each pair's overlapping pairs with
    # box-level matrix products (M x M, cheap) instead of the P x P matrix, and run the greedy loop only on the
    # pairs that have company; they never interact with the others, so the result is the same.
    num_boxes = boxes.shape[0]
    pair_count = np.zeros((num_boxes, num_boxes))
    np.add.at(pair_count, (subj, obj), 1.0)
    sim = similar.astype(np.float64)
    overlapping = (sim @ pair_count @ sim.T)[subj, obj] - (similar[subj, subj] & similar[obj, obj])
    crowded = np.flatnonzero(overlapping > 0.5)

    fg = np.asarray(rel_scores[:, 1:], dtype=np.float32)
    out_labels[:] = fg.argmax(axis=1) + 1
    out_scores[:] = fg.max(axis=1)
    if crowded.size == 0:
        return out_labels, out_scores
    cs, co = subj[crowded], obj[crowded]
    overlap = similar[cs][:, cs] & similar[co][:, co]
    remaining = fg[crowded].copy()
    row_best = remaining.max(axis=1)
    open_rows = np.ones(len(crowded), dtype=bool)
    for _ in range(len(crowded)):
        p = int(np.argmax(row_best))  # first index among equals, like PE-Net's flat argmax
        c = int(np.argmax(remaining[p]))
        out_labels[crowded[p]] = c + 1
        out_scores[crowded[p]] = remaining[p, c]
        open_rows[p] = False
        row_best[p] = -np.inf
        hit = np.flatnonzero(overlap[p] & open_rows)
        if hit.size:
            remaining[hit, c] = 0.0
            row_best[hit] = remaining[hit].max(axis=1)
    return out_labels, out_scores
