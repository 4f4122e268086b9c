"""From per-image records to the dataset numbers (SGB's averaging rules, vectorised over all images).

A record is an int32 array (G, 5) for one image with G GT relations; columns ``RECORD_COLUMNS``. The three rank
columns hold, per GT relation, the position of the first matching prediction in that ranked list (``NOT_MATCHED``
when none), so "recalled at K" is ``rank < K`` for every K at once.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import numpy as np

RECORD_COLUMNS = ("predicate", "zero_shot", "graph_rank", "no_graph_rank", "accuracy_rank")
PREDICATE, ZERO_SHOT, GRAPH, NO_GRAPH, ACCURACY = range(5)


def harmonic_mean(a: float, b: float) -> float:
    """F@K: 2ab / (a + b), 0 when both are 0, NaN when either is undefined."""
    if math.isnan(a) or math.isnan(b):
        return float("nan")
    return 0.0 if a + b == 0 else 2.0 * a * b / (a + b)


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else float("nan")


def compute_metrics(records: Sequence[np.ndarray], ks: Sequence[int], num_predicates: int, mode: str,
                    groups: Optional[Dict[str, List[int]]] = None, predicate_names: Optional[List[str]] = None
                    ) -> dict:
    """All metrics for the evaluated images; ``records`` in a fixed (image id) order."""
    n = len(records)
    sizes = np.array([len(r) for r in records], dtype=np.int64)
    table = np.concatenate(records).astype(np.int64) if n else np.zeros((0, 5), dtype=np.int64)
    image = np.repeat(np.arange(n), sizes)
    predicate = table[:, PREDICATE]
    zero_shot = table[:, ZERO_SHOT].astype(bool)
    num_fg = num_predicates - 1

    # per image and predicate: GT count (images x predicates); shared by every K
    cell = image * num_predicates + predicate
    count = np.bincount(cell, minlength=n * num_predicates).reshape(n, num_predicates)[:, 1:]
    present = count > 0
    images_with = present.sum(axis=0)
    zs_count = np.bincount(image, weights=zero_shot, minlength=n)
    zs_images = zs_count > 0

    out: dict = {"mode": mode, "num_images": int(n), "num_gt_relations": int(len(table)),
                 "num_zero_shot_images": int(zs_images.sum()), "ks": [int(k) for k in ks]}
    per_predicate: dict = {}
    names = list(predicate_names[1:]) if predicate_names is not None else [str(i) for i in range(1, num_predicates)]
    per_predicate["names"] = names
    per_predicate["gt_count"] = [int(c) for c in count.sum(axis=0)]
    per_predicate["num_images"] = [int(c) for c in images_with]

    lists = [("", GRAPH), ("ng", NO_GRAPH)]
    for k in ks:
        for prefix, column in lists:
            hit = table[:, column] < k
            image_recall = np.bincount(image, weights=hit, minlength=n) / np.maximum(sizes, 1)
            out[f"{prefix}R@{k}"] = _mean(image_recall)
            # mean recall, SGB style: per image and predicate hit/count, averaged over the images holding the
            # predicate, then over all num_predicates - 1 predicates (a predicate never seen counts 0)
            hits = np.bincount(cell, weights=hit, minlength=n * num_predicates).astype(np.float64)
            hits = hits.reshape(n, num_predicates)[:, 1:]
            ratio = np.divide(hits, count, out=np.zeros(hits.shape), where=present)
            recall_c = np.divide(ratio.sum(axis=0), images_with, out=np.zeros(num_fg), where=images_with > 0)
            out[f"{prefix}mR@{k}"] = float(recall_c.sum() / num_fg) if num_fg else float("nan")
            per_predicate[f"{prefix}R@{k}"] = [float(v) for v in recall_c]
            zs_hit = np.bincount(image, weights=zero_shot & hit, minlength=n)
            out[f"{prefix}zR@{k}"] = _mean(zs_hit[zs_images] / zs_count[zs_images])
            out[f"{prefix}F@{k}"] = harmonic_mean(out[f"{prefix}R@{k}"], out[f"{prefix}mR@{k}"])
            if groups:
                for group, members in groups.items():
                    value = float(np.mean(recall_c[np.asarray(members, dtype=np.int64) - 1])) if members else \
                        float("nan")
                    out[f"{group}_{prefix}mR@{k}"] = value
        if mode in ("predcls", "sgcls"):
            total = float(len(table))
            hit_total = float(np.count_nonzero(table[:, ACCURACY] < k))
            out[f"A@{k}"] = hit_total / total if total else float("nan")
    out["per_predicate"] = per_predicate
    if groups:
        out["predicate_groups"] = {g: list(m) for g, m in groups.items()}
    return out
