"""Head / body / tail groups of predicates by training frequency (for group-wise mean recall and data reports)."""
from __future__ import annotations

from typing import Dict, List

import numpy as np

SPLIT_RULES = ("thirds", "thresholds")


def split_head_body_tail(counts, rule: str = "thirds", head_min_count: int = 10_000,
                         tail_max_count: int = 500) -> Dict[str, List[int]]:
    """Split predicates 1..C-1 into ``{"head": [...], "body": [...], "tail": [...]}`` (predicate indices, each group
    listed from most to least frequent).

    ``counts`` has one entry per predicate class including background at index 0, which is ignored.
    Predicates are sorted by count, descending; equal counts keep index order (stable sort). Rules:

    * ``"thirds"`` (default): the sorted list is cut into three consecutive groups of as equal size as possible,
      larger groups first (``numpy.array_split``): 50 VG150 predicates give 17 / 17 / 16. Independent of dataset
      size, so every group is non-empty whenever there are at least three predicates.
    * ``"thresholds"``: the count rule popularised by BGNN (Li et al., CVPR 2021) and the long-tail SGG papers that
      follow it: head = count > ``head_min_count`` (10,000), tail = count < ``tail_max_count`` (500), body = the rest.
      Defined for VG150's training split; groups can be empty on smaller datasets.
    """
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    if counts.shape[0] < 2:
        raise ValueError(f"predicate counts need the background entry plus at least one predicate, "
                         f"got {counts.shape[0]} entries")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("predicate counts must be finite and non-negative")
    fg = counts[1:]
    order = np.argsort(-fg, kind="stable") + 1  # predicate indices, most frequent first
    if rule == "thirds":
        head, body, tail = np.array_split(order, 3)
    elif rule == "thresholds":
        if head_min_count < tail_max_count:
            raise ValueError(f"head_min_count ({head_min_count}) must not be below tail_max_count ({tail_max_count})")
        c = counts[order]
        head, tail = order[c > head_min_count], order[c < tail_max_count]
        body = order[(c <= head_min_count) & (c >= tail_max_count)]
    else:
        raise ValueError(f"unknown head/body/tail rule {rule!r}; expected one of {', '.join(SPLIT_RULES)}")
    return {"head": [int(p) for p in head], "body": [int(p) for p in body], "tail": [int(p) for p in tail]}
