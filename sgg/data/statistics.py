"""Frequency statistics of a training split, exactly as SGB's ``get_VG_statistics`` (PROTOCOL.md 1.6), vectorised.

* ``fg_matrix[s, o, p]``: number of GT relations (duplicates included) with subject class s, object class o and
  predicate p.
* ``bg_matrix[s, o]``: number of ordered pairs (i != j) of GT boxes of one image with classes (s, o) whose boxes
  overlap with positive area (strict, no +1; on the stored 1024-scale boxes as SGB). An image without any such pair
  counts all its ordered pairs instead.
* ``pred_dist = log(F / F.sum(-1) + 1e-3)`` with ``F = fg_matrix`` whose background channel is ``bg_matrix + 1``.

The caller chooses the dataset; SGB's choice (train split without val, non-overlapping relations removed, empty
images dropped, duplicates kept) is what :func:`sgg.data.get_dataset_statistics` builds.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Dict

import numpy as np
import torch

from sgg.evaluation import split_head_body_tail

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
# Images are processed in groups of equal box count; a group is cut into chunks of at most this many box pairs.
_MAX_PAIRS_PER_CHUNK = 4_000_000


def compute_statistics(dataset) -> Dict[str, object]:
    """Statistics dict of a :class:`VGDataset`-like object (``gt_classes``, ``gt_boxes``, ``relationships`` lists and
    ``ind_to_*`` names).

    Keys: ``fg_matrix`` (C, C, P) int64 with channel 0 = ``bg_matrix + 1`` (as SGB returns it), ``bg_matrix``
    (C, C) int64 raw pair counts, ``pred_dist`` (C, C, P) float32, ``predicate_counts`` (P,) int64 GT relations per
    predicate (entry 0 is 0), ``predicate_groups`` {"head", "body", "tail"} predicate ids by training frequency,
    ``obj_classes``, ``rel_classes``, ``att_classes`` (names, background first).
    """
    num_classes, num_predicates = len(dataset.ind_to_classes), len(dataset.ind_to_predicates)
    box_counts = np.array([len(c) for c in dataset.gt_classes], dtype=np.int64)
    rel_counts = np.array([len(r) for r in dataset.relationships], dtype=np.int64)
    labels = _concat(dataset.gt_classes, (0,)).astype(np.int64)
    boxes = _concat(dataset.gt_boxes, (0, 4))
    relations = _concat(dataset.relationships, (0, 3)).astype(np.int64)
    offsets = np.cumsum(box_counts) - box_counts

    rel_offsets = np.repeat(offsets, rel_counts)
    sub = labels[rel_offsets + relations[:, 0]]
    obj = labels[rel_offsets + relations[:, 1]]
    flat = (sub * num_classes + obj) * num_predicates + relations[:, 2]
    fg_counts = np.bincount(flat, minlength=num_classes * num_classes * num_predicates)
    fg_counts = fg_counts.reshape(num_classes, num_classes, num_predicates).astype(np.int64)
    bg_counts = overlap_pair_counts(labels, boxes, box_counts, num_classes)

    fg_matrix = fg_counts.copy()
    fg_matrix[:, :, 0] = bg_counts + 1
    pred_dist = np.log(fg_matrix / fg_matrix.sum(axis=2, keepdims=True) + 1e-3).astype(np.float32)
    predicate_counts = fg_counts.sum(axis=(0, 1))

    return {"fg_matrix": torch.from_numpy(fg_matrix), "bg_matrix": torch.from_numpy(bg_counts),
            "pred_dist": torch.from_numpy(pred_dist), "predicate_counts": torch.from_numpy(predicate_counts),
            "predicate_groups": split_head_body_tail(predicate_counts),
            "obj_classes": list(dataset.ind_to_classes), "rel_classes": list(dataset.ind_to_predicates),
            "att_classes": list(dataset.ind_to_attributes)}


def _concat(arrays, empty_shape) -> np.ndarray:
    arrays = list(arrays)
    return np.concatenate(arrays) if arrays else np.zeros(empty_shape, dtype=np.int64)


def overlap_pair_counts(labels: np.ndarray, boxes: np.ndarray, box_counts: np.ndarray, num_classes: int) -> np.ndarray:
    """``bg_matrix`` (see the module doc). Images with the same number of boxes are stacked and handled at once."""
    bg = np.zeros(num_classes * num_classes, dtype=np.int64)
    offsets = np.cumsum(box_counts) - box_counts
    for n in np.unique(box_counts):
        n = int(n)
        if n < 2:
            continue  # a single box has no pair
        images = np.flatnonzero(box_counts == n)
        off_diagonal = ~np.eye(n, dtype=bool)
        chunk = max(1, _MAX_PAIRS_PER_CHUNK // (n * n))
        for start in range(0, len(images), chunk):
            rows = offsets[images[start:start + chunk]][:, None] + np.arange(n)  # (k, n)
            b, lab = boxes[rows].astype(np.float64), labels[rows]
            lt = np.maximum(b[:, :, None, :2], b[:, None, :, :2])
            rb = np.minimum(b[:, :, None, 2:], b[:, None, :, 2:])
            wh = np.clip(rb - lt, 0, None)
            pairs = (wh[..., 0] * wh[..., 1] > 0) & off_diagonal
            no_overlap = ~pairs.any(axis=(1, 2))
            pairs[no_overlap] = off_diagonal
            k, i, j = np.nonzero(pairs)
            bg += np.bincount(lab[k, i] * num_classes + lab[k, j], minlength=num_classes * num_classes)
    return bg.reshape(num_classes, num_classes)


# ------------------------------------------------------------------------------------------------------ cache
def statistics_cache_key(dataset) -> str:
    """Hash of everything the statistics depend on: the annotation files (path, size, mtime) and the options."""
    files = {}
    for name in ("roidb_file", "dict_file"):
        path = getattr(dataset, name, None)
        if path:
            st = os.stat(path)
            files[name] = [os.path.abspath(path), st.st_size, st.st_mtime_ns]
    options = {name: getattr(dataset, name, None) for name in
               ("split", "num_im", "num_val_im", "filter_empty_rels", "filter_non_overlap", "filter_duplicate_rels")}
    payload = json.dumps({"version": CACHE_VERSION, "files": files, "options": options}, sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()


def load_or_compute_statistics(dataset, cache_dir: str, cache_name: str) -> Dict[str, object]:
    """Statistics from ``cache_dir/cache_name.cache`` when it was written for the same inputs, else computed and
    saved there (``torch.save``; SGB's file name is ``<dataset>_statistics.cache``). An empty ``cache_dir`` disables
    the cache."""
    if not cache_dir:
        return compute_statistics(dataset)
    key = statistics_cache_key(dataset)
    path = os.path.join(cache_dir, f"{cache_name}.cache")
    if os.path.isfile(path):
        try:
            cached = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated or foreign file: recompute rather than fail
            logger.warning("ignoring unreadable statistics cache %s (%s)", path, err)
            cached = None
        if isinstance(cached, dict) and cached.get("cache_key") == key:
            logger.info("frequency statistics loaded from %s", path)
            return cached["statistics"]
        if cached is not None:
            logger.info("statistics cache %s was written for other inputs; recomputing", path)
    statistics = compute_statistics(dataset)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    torch.save({"cache_key": key, "statistics": statistics}, tmp)
    os.replace(tmp, path)
    logger.info("frequency statistics saved to %s", path)
    return statistics
