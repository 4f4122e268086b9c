"""BA-SGG's re-balanced training split for Balanced Predicate Learning (METHODS.md 3.4, docs/ba_sgg.md).

The N most frequent predicates keep at most M instances each, the first ones met in dataset order (deterministic,
no sampling); every instance of the other predicates is kept; images left without a relation are dropped.
"""
from __future__ import annotations

import json
import logging
from typing import List, Optional, Sequence

import numpy as np

from sgg.config.sgg_config import ConfigError

logger = logging.getLogger(__name__)

KEY = "MODEL.ROI_RELATION_HEAD.BA_SGG"


def most_frequent_predicates(counts: Sequence[float], top_n: int) -> np.ndarray:
    """Indices (background 0 excluded) of the ``top_n`` largest counts; ties keep the lower index first."""
    counts = np.asarray(counts, dtype=np.float64)
    order = np.argsort(-counts[1:], kind="stable") + 1
    return order[:top_n]


def cap_relations(relationships: List[np.ndarray], capped: Sequence[int], max_instances: int) -> List[np.ndarray]:
    """Per-image (K, 3) [subject, object, predicate] rows with the predicates in ``capped`` limited to their first
    ``max_instances`` rows over the images in order; the other rows are kept."""
    sizes = np.array([len(r) for r in relationships], dtype=np.int64)
    if sizes.sum() == 0:
        return [r.copy() for r in relationships]
    rows = np.concatenate([np.asarray(r, dtype=np.int64).reshape(-1, 3) for r in relationships])
    keep = np.ones(len(rows), dtype=bool)
    for predicate in capped:
        keep[np.flatnonzero(rows[:, 2] == predicate)[max_instances:]] = False
    image = np.repeat(np.arange(len(relationships)), sizes)
    kept_sizes = np.bincount(image[keep], minlength=len(relationships))
    kept = rows[keep]
    return [part for part in np.split(kept, np.cumsum(kept_sizes)[:-1])]


def dataset_predicate_counts(dataset) -> np.ndarray:
    """The counts BA-SGG ranks predicates by: ``predicate_count`` of the dataset's dictionary file (as the reference),
    or, without it, the counts of the split itself."""
    names = list(dataset.ind_to_predicates)
    try:
        with open(dataset.dict_file) as f:
            by_name = json.load(f).get("predicate_count")
    except (OSError, ValueError):
        by_name = None
    if by_name:
        return np.array([0] + [by_name.get(name, 0) for name in names[1:]], dtype=np.float64)
    values = [r[:, 2] for r in dataset.relationships if len(r)]
    values = np.concatenate(values) if values else np.zeros(0, dtype=np.int64)
    return np.bincount(values, minlength=len(names)).astype(np.float64)


def balance_training_split(dataset, top_n: int, max_instances: int,
                           counts: Optional[Sequence[float]] = None) -> None:
    """Apply BPL's re-balancing to a ``VGDataset`` in place."""
    if top_n < 0 or max_instances < 0:
        raise ConfigError(f"{KEY}.TOP_PREDICATES ({top_n}) and MAX_INSTANCES ({max_instances}) must be >= 0")
    counts = dataset_predicate_counts(dataset) if counts is None else counts
    capped = most_frequent_predicates(counts, top_n)
    before = sum(len(r) for r in dataset.relationships)
    relationships = cap_relations(dataset.relationships, capped, max_instances)
    keep = np.array([len(r) > 0 for r in relationships], dtype=bool)
    if not keep.any():
        raise ConfigError(f"{KEY}: capping the {top_n} most frequent predicates at {max_instances} instances leaves "
                          f"no relation in {getattr(dataset, 'name', dataset.roidb_file)}; raise MAX_INSTANCES")
    dataset.relationships = relationships
    images = len(keep)
    dataset.keep_images(keep)
    names = [dataset.ind_to_predicates[p] for p in capped]
    logger.info("BA-SGG balanced split of %s: %s capped at %d; %d of %d relations and %d of %d images kept",
                getattr(dataset, "name", dataset.roidb_file), names, max_instances,
                sum(len(r) for r in relationships), before, len(dataset), images)
