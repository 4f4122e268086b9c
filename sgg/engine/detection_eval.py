"""Detector evaluation: COCO AP over the sharded inference of ``inference.py``, and the detector tools' test run."""
from __future__ import annotations

import json
import logging
import os
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.data import build_data_loader
from sgg.evaluation.coco_eval import evaluate_detections
from sgg.utils import comm

from .inference import dataset_name, inference_on_dataset

logger = logging.getLogger(__name__)

SPLITS_TO_TEST = ("val", "test")


def _num_classes(cfg, dataset) -> int:
    """Object classes including background: the dataset's own list when it has one."""
    classes = getattr(dataset, "ind_to_classes", None)
    return len(classes) if classes is not None else cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES


def detection_evaluator(num_classes: int) -> Callable:
    """An ``evaluator_fn`` computing COCO AP (``mAP`` = AP@0.5, SGB's detector number) against
    ``dataset.get_groundtruth(i, evaluation=True)``, and logging SGB's line ``Detection evaluation mAp=...``."""

    def evaluate(predictions: Dict[int, object], dataset) -> Dict:
        indices = sorted(predictions)
        groundtruths, detections = [], []
        for i in indices:
            gt = dataset.get_groundtruth(i, evaluation=True).convert("xyxy")
            groundtruths.append({"boxes": gt.bbox, "labels": gt.get_field("labels")})
            pred = predictions[i].convert("xyxy")
            detections.append({"boxes": pred.bbox, "labels": pred.get_field("pred_labels"),
                               "scores": pred.get_field("pred_scores")})
        results = evaluate_detections(groundtruths, detections, num_classes)
        logger.info("Detection evaluation mAp=%.4f", results["mAP"])
        return results

    return evaluate


def evaluate_detector(cfg, model: nn.Module, data_loaders: List, device: Optional[torch.device] = None) -> Dict:
    """COCO AP of the detector on each loader's dataset. One loader: its metrics (``mAP``, ...); several: the first
    dataset's metrics plus every dataset's under ``<name>/<metric>``. ``{}`` on ranks other than 0."""
    results: Dict = {}
    for position, loader in enumerate(data_loaders):
        evaluator = detection_evaluator(_num_classes(cfg, loader.dataset))
        metrics = inference_on_dataset(model, loader, evaluator, device, cfg.DTYPE, pass_targets=False)
        if position == 0:
            results.update(metrics)
        if len(data_loaders) > 1:
            results.update({f"{dataset_name(loader.dataset)}/{k}": v for k, v in metrics.items()})
    return results


def test_detector(cfg, model: nn.Module, split: str = "test") -> Dict:
    """COCO AP on ``DATASETS.VAL`` or ``DATASETS.TEST``, every process taking a shard; rank 0 writes
    ``OUTPUT_DIR/inference/<dataset>/detection_metrics.json`` and returns the metrics (``{}`` elsewhere)."""
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
