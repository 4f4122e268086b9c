"""What the detector tools share: label names from the dataset files, the class-count check, and the test run."""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Optional

from torch import nn

from sgg.config import DatasetCatalog, check_class_counts
from sgg.config.sgg_config import ConfigError
from sgg.utils import comm

from .inference import evaluate_detector

logger = logging.getLogger(__name__)

SPLITS_TO_TEST = ("val", "test")


def dataset_label_names(cfg) -> Optional[Dict[str, List[str]]]:
    """``{"ind_to_classes", "ind_to_predicates"}`` of the first training dataset, read from its dictionary file
    (cheap: no h5, no images), or None when ``DATASETS.TRAIN`` is empty."""
    if not cfg.DATASETS.TRAIN:
        return None
    from sgg.data.vg_format import load_vg_dicts

    files = DatasetCatalog.get(cfg.DATASETS.TRAIN[0], cfg.DATASETS.DATA_DIR)
    names = load_vg_dicts(files["dict_file"])
    return {k: names[k] for k in ("ind_to_classes", "ind_to_predicates")}


def check_num_classes(cfg, label_names: Optional[Dict[str, List[str]]]) -> None:
    """The box predictor must have one output per dataset class plus the background (``check_class_counts``)."""
    if label_names:
        check_class_counts(cfg, cfg.DATASETS.TRAIN[0], obj_classes=label_names["ind_to_classes"])


def test_detector(cfg, model: nn.Module, split: str = "test") -> Dict:
    """COCO AP on ``DATASETS.VAL`` or ``DATASETS.TEST``, every process taking a shard; rank 0 writes
    ``OUTPUT_DIR/inference/<dataset>/detection_metrics.json`` and returns the metrics (``{}`` elsewhere)."""
    from sgg.data import build_data_loader

    if split not in SPLITS_TO_TEST:
        raise ConfigError(f"detector testing runs on {' or '.join(SPLITS_TO_TEST)} (DATASETS.TO_TEST), got {split!r}")
    loaders = build_data_loader(cfg, split, is_distributed=comm.get_world_size() > 1)
    results = {}
    for loader in loaders:
        name = getattr(loader.dataset, "name", split)
        metrics = evaluate_detector(cfg, model, [loader])
        if comm.is_main_process():
            folder = os.path.join(cfg.OUTPUT_DIR, "inference", name)
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "detection_metrics.json"), "w") as f:
                json.dump(metrics, f, indent=2)
            logger.info("%s: %s", name, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        results[name] = metrics
    comm.synchronize()
    return results
