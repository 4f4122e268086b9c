"""Annotation statistics of a VG-format dataset, and VG150's, side by side (``tools/dataset_info.py --compare-dict``).

What a scene graph benchmark's ranking depends on: boxes and relations per image, images without relations,
(subject, object) pairs annotated with more than one predicate, candidate pairs per PredCls test image, and the
predicate long tail. VG150's per-image numbers come from the sizes of its h5 file (documented in DATASET.md: 108,073
images, 1,145,398 boxes, 622,705 relations; 57,723 + 5,000 of 75,651 train and 26,446 of 32,422 test images have
relations); its long tail comes from the ``predicate_count`` of its dictionary file, which is read at run time and
never copied into this repository.
"""
from __future__ import annotations

import os
from typing import Dict, Sequence

import numpy as np

from sgg.utils.errors import DataError

from .vg_format import SPLIT_TEST, SPLIT_TRAIN, read_json, read_vg_h5

# Sizes of VG150's VG-SGG-with-attri.h5 (the file itself is not needed to compare against it).
VG150_IMAGES = 108_073
VG150_BOXES = 1_145_398
VG150_RELATIONS = 622_705
VG150_IMAGES_WITH_RELATIONS = 57_723 + 5_000 + 26_446  # train + val + test after SGB's filter_empty_rels
RARE_SHARE = 0.02  # a predicate "under 2 %" holds less than this share of the annotations

ROWS = (  # (key, label, format)
    ("boxes_per_image", "boxes per image", "{:.2f}"),
    ("relations_per_image", "relations per image", "{:.2f}"),
    ("empty_image_share", "images without relations", "{:.1%}"),
    ("duplicate_pair_share", "pairs with > 1 predicate", "{:.1%}"),
    ("test_candidate_pairs", "PredCls pairs / test image", "{:.1f}"),
    ("top3_share", "top-3 predicate share", "{:.1%}"),
    ("rare_predicate_share", "predicates under 2 %", "{:.1%}"),
)


def predicate_tail(counts: Sequence[int]) -> Dict[str, float]:
    """Share of the annotations held by the three most frequent predicates, and the share of predicates (of all
    predicate classes, zero counts included) that hold under 2 % each."""
    counts = np.asarray(counts, dtype=np.float64)
    shares = counts / max(counts.sum(), 1.0)
    return {"top3_share": float(np.sort(shares)[::-1][:3].sum()),
            "rare_predicate_share": float((shares < RARE_SHARE).mean())}


def scene_statistics(box_counts: np.ndarray, rel_counts: np.ndarray, pairs: np.ndarray, predicates: np.ndarray,
                     split: np.ndarray, num_predicates: int) -> Dict[str, float]:
    """Statistics of per-image annotations. ``pairs``: (R, 2) subject and object box indices (any indexing that is
    unique within an image), grouped by image in image order; ``predicates``: (R,) ids 1..num_predicates; ``split``:
    (I,) 0 = train, 2 = test. The long tail is that of the train split; candidate pairs are n (n - 1) averaged over
    the test images that have relations (those PredCls evaluates)."""
    box_counts, rel_counts = np.asarray(box_counts), np.asarray(rel_counts)
    rel_image = np.repeat(np.arange(len(rel_counts)), rel_counts)
    keys = np.stack([rel_image, pairs[:, 0], pairs[:, 1]], axis=1)
    _, per_pair = np.unique(keys, axis=0, return_counts=True)
    evaluated = (split == SPLIT_TEST) & (rel_counts > 0)
    n = box_counts[evaluated].astype(np.float64)
    train_counts = np.bincount(predicates[split[rel_image] == SPLIT_TRAIN], minlength=num_predicates + 1)[1:]
    return {
        "images": int(len(box_counts)),
        "boxes_per_image": float(box_counts.mean()),
        "relations_per_image": float(rel_counts.mean()),
        "empty_image_share": float((rel_counts == 0).mean()),
        "duplicate_pair_share": float((per_pair > 1).mean()) if len(per_pair) else 0.0,
        "test_candidate_pairs": float((n * (n - 1)).mean()) if len(n) else 0.0,
        **predicate_tail(train_counts),
    }


def h5_statistics(roidb_file: str, num_predicates: int) -> Dict[str, float]:
    """:func:`scene_statistics` of a VG-format h5 file."""
    data = read_vg_h5(roidb_file, with_attributes=False)

    def sizes(first, last):
        return np.where(first >= 0, last - first + 1, 0)

    return scene_statistics(sizes(data["img_to_first_box"], data["img_to_last_box"]),
                            sizes(data["img_to_first_rel"], data["img_to_last_rel"]), data["relationships"],
                            data["predicates"], data["split"], num_predicates)


def vg150_reference(dict_file: str) -> Dict[str, float]:
    """VG150's statistics: per-image numbers from its h5 sizes, the long tail from ``predicate_count`` in
    ``dict_file`` (VG150's VG-SGG-dicts-with-attri.json; raw counts over the whole release)."""
    if not os.path.isfile(dict_file):
        raise DataError(f"VG150 dictionary file not found: {dict_file} (expected VG150's VG-SGG-dicts-with-attri.json,"
                        f" e.g. ../shared/data/vg150/VG-SGG-dicts-with-attri.json)")
    info = read_json(dict_file)
    counts = info.get("predicate_count") if isinstance(info, dict) else None
    if not isinstance(counts, dict) or not counts:
        raise DataError(f"{dict_file}: no 'predicate_count' (a dict predicate name -> count, as in VG150's "
                        f"VG-SGG-dicts-with-attri.json); it is needed for the predicate long tail")
    return {
        "images": VG150_IMAGES,
        "boxes_per_image": VG150_BOXES / VG150_IMAGES,
        "relations_per_image": VG150_RELATIONS / VG150_IMAGES,
        "empty_image_share": 1 - VG150_IMAGES_WITH_RELATIONS / VG150_IMAGES,
        **predicate_tail(list(counts.values())),
    }


def format_comparison(ours: Dict[str, float], reference: Dict[str, float], name: str) -> str:
    """A two-column table; a statistic the reference does not have prints as 'n/a'."""
    lines = [f"  {'':<28} {name:>14} {'VG150':>10}"]
    for key, label, fmt in ROWS:
        theirs = fmt.format(reference[key]) if key in reference else "n/a"
        lines.append(f"  {label:<28} {fmt.format(ours[key]):>14} {theirs:>10}")
    return "\n".join(lines)
