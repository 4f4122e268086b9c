"""What the detector tools share before building a model: label names from the dataset files, the class-count
check."""
from __future__ import annotations

from typing import Dict, List, Optional

from sgg.config import DatasetCatalog, check_class_counts
from sgg.data.vg_format import load_vg_dicts


def dataset_label_names(cfg) -> Optional[Dict[str, List[str]]]:
    """``{"ind_to_classes", "ind_to_predicates"}`` of the first training dataset, read from its dictionary file
    (cheap: no h5, no images), or None when ``DATASETS.TRAIN`` is empty."""
    if not cfg.DATASETS.TRAIN:
        return None
    files = DatasetCatalog.get(cfg.DATASETS.TRAIN[0], cfg.DATASETS.DATA_DIR)
    names = load_vg_dicts(files["dict_file"])
    return {k: names[k] for k in ("ind_to_classes", "ind_to_predicates")}


def check_num_classes(cfg, label_names: Optional[Dict[str, List[str]]]) -> None:
    """The box predictor must have one output per dataset class plus the background (``check_class_counts``)."""
    if label_names:
        check_class_counts(cfg, cfg.DATASETS.TRAIN[0], obj_classes=label_names["ind_to_classes"])
