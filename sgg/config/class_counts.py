"""The one rule for class-count keys: the dataset decides, and a key that disagrees with it is an error.

The model's class lists come from the dataset (its dictionary file / statistics, background at 0), and the count keys
size the layers; a key that disagrees would otherwise build a model for another dataset or be silently ignored.
"""
from __future__ import annotations

from typing import Optional, Sequence

from .sgg_config import ConfigError

OBJECT_COUNT_KEY = "MODEL.ROI_BOX_HEAD.NUM_CLASSES"
PREDICATE_COUNT_KEY = "MODEL.ROI_RELATION_HEAD.NUM_CLASSES"


def _value(cfg, key: str) -> int:
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def check_class_counts(cfg, dataset: str, obj_classes: Optional[Sequence[str]] = None,
                       rel_classes: Optional[Sequence[str]] = None) -> None:
    """Each given class list (background included) must have as many entries as its count key says; every
    disagreeing key is named in one ConfigError with its value, the dataset's count and the setting that fits."""
    wrong = []
    for key, classes, kind in ((OBJECT_COUNT_KEY, obj_classes, "object"), (PREDICATE_COUNT_KEY, rel_classes,
                                                                             "predicate")):
        if classes is not None and _value(cfg, key) != len(classes):
            wrong.append((key, _value(cfg, key), len(classes), kind))
    if wrong:
        found = "; ".join(f"{key} is {value} but {dataset} has {count} {kind} classes (with the background)"
                          for key, value, count, kind in wrong)
        fix = " ".join(f"{key} {count}" for key, _, count, _ in wrong)
        raise ConfigError(f"{found}: the dataset decides the class counts; set {fix}")


def dataset_name(cfg) -> str:
    """The dataset the class lists come from (the first training dataset), for messages."""
    return cfg.DATASETS.TRAIN[0] if cfg.DATASETS.TRAIN else "the dataset"
