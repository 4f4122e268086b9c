"""Relation evaluation of a scene graph model on a dataset: streaming, per process, merged on rank 0; the relation
tools' validation and test runs on top of it.

Each prediction is evaluated (and optionally written to the compact prediction file) as soon as it leaves the model,
so memory stays bounded however many pairs an image has; the evaluators of all processes are merged at the end.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from sgg.config import get_protocol
from sgg.config.sgg_config import ConfigError
from sgg.data import build_data_loader
from sgg.evaluation import PredictionFileWriter, SceneGraphEvaluator, write_results
from sgg.modeling.roi_heads.relation_head.inference import groundtruth_to_eval_fields, prediction_to_eval_fields
from sgg.utils import comm
from sgg.utils.errors import DataError, EvaluationError
from sgg.utils.result_plots import (load_per_predicate, plot_per_predicate_recall,
                                    plot_predicate_distribution)

from .inference import run_inference

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def _image_id(dataset, index: int):
    return dataset.get_img_info(index)["image_id"]


def dataset_image_ids(dataset) -> List:
    """The image ids of a dataset, in dataset order."""
    return [_image_id(dataset, i) for i in range(len(dataset))]


def groundtruth_lookup(dataset) -> Callable:
    """``lookup(image_id)`` -> the evaluator's GT mapping of that image (``get_groundtruth(evaluation=True)``)."""
    index_of = {image_id: i for i, image_id in enumerate(dataset_image_ids(dataset))}
    name = getattr(dataset, "name", type(dataset).__name__)

    def lookup(image_id):
        if image_id not in index_of:
            raise EvaluationError(f"image id {image_id!r} of the predictions is not in dataset {name} "
                                  f"({len(index_of)} images); was it written for another split or filter setting?")
        return groundtruth_to_eval_fields(dataset.get_groundtruth(index_of[image_id], evaluation=True))

    return lookup


def load_zeroshot_triplets(path: Optional[str]) -> Optional[np.ndarray]:
    """(M, 3) (subject class, object class, predicate) triplets, or None (zR@K is then reported as NaN)."""
    if not path or not os.path.isfile(path):
        logger.warning("zero-shot triplets file %s not found: zR@K will be NaN", path)
        return None
    try:
        triplets = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # only tensors and plain containers are unpickled
        raise DataError(f"zero-shot triplets file {path} cannot be read as an (M, 3) tensor saved by torch.save: "
                        f"{type(err).__name__}: {err}") from None
    array = np.asarray(triplets, dtype=np.int64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise DataError(f"{path}: zero-shot triplets must have shape (M, 3), got {array.shape}")
    return array


def dataset_evaluator_kwargs(cfg, dataset, statistics: Optional[Dict] = None) -> Dict:
    """Evaluator arguments that come from the dataset: predicates, zero-shot triplets, training counts."""
    counts = None
    if statistics is not None and "predicate_counts" in statistics:
        counts = np.asarray(statistics["predicate_counts"])
    return dict(num_predicates=len(dataset.ind_to_predicates), predicate_names=list(dataset.ind_to_predicates),
                zeroshot_triplets=load_zeroshot_triplets(getattr(dataset, "zeroshot_file", None)),
                predicate_counts=counts, iou_threshold=cfg.TEST.RELATION.IOU_THRESHOLD)


def build_relation_evaluator(cfg, dataset, statistics: Optional[Dict] = None) -> SceneGraphEvaluator:
    return SceneGraphEvaluator(mode=get_protocol(cfg), ks=tuple(cfg.TEST.RELATION.RECALL_KS),
                               legacy_iou=cfg.TEST.RELATION.LEGACY_IOU, relation_nms=cfg.TEST.RELATION.RELATION_NMS,
                               **dataset_evaluator_kwargs(cfg, dataset, statistics))


def evaluate_relations(cfg, model, data_loader, output_dir: Optional[str] = None, statistics: Optional[Dict] = None,
                       save_predictions: bool = False, device=None) -> Dict:
    """Run the model over ``data_loader`` and return every relation metric (rank 0; ``{}`` on other ranks).

    With ``output_dir``: ``results.json``, ``results.txt`` and, if ``save_predictions``, the compact prediction file
    ``predictions.sgg`` (``predictions_rank{r}.sgg`` per process when distributed) are written there.
    """
    dataset = data_loader.dataset
    evaluator = build_relation_evaluator(cfg, dataset, statistics)
    writer = None
    if output_dir and save_predictions:
        os.makedirs(output_dir, exist_ok=True)
        suffix = f"_rank{comm.get_rank()}" if comm.get_world_size() > 1 else ""
        writer = PredictionFileWriter(os.path.join(output_dir, f"predictions{suffix}.sgg"), {
            "mode": evaluator.mode, "num_predicates": evaluator.num_predicates, "ks": list(evaluator.ks),
            "relation_nms": evaluator.relation_nms, "legacy_iou": evaluator.legacy_iou,
            "dataset": getattr(dataset, "name", ""), "predicate_names": list(dataset.ind_to_predicates),
            # what else decides the numbers, so that tools/evaluate.py reproduces them under any config
            "iou_threshold": evaluator.iou_threshold, "predicate_counts": evaluator.predicate_counts,
            "split_rule": evaluator.split_rule})

    def consume(index: int, prediction) -> None:
        image_id = _image_id(dataset, index)
        groundtruth = groundtruth_to_eval_fields(dataset.get_groundtruth(index, evaluation=True))
        fields = prediction_to_eval_fields(prediction)
        if writer is not None:
            ranked = writer.add(image_id, fields, groundtruth)
            evaluator.update(groundtruth, ranked, image_id=image_id)
        else:
            evaluator.update(groundtruth, fields, image_id=image_id)

    try:
        run_inference(model, data_loader, device, cfg.DTYPE, pass_targets=True, consumer=consume)
    finally:
        if writer is not None:
            writer.close()
    evaluator.gather(comm.all_gather, comm.get_rank())
    if not comm.is_main_process():
        return {}
    results = evaluator.compute()
    text = evaluator.format(results=results)
    logger.info("Relation evaluation on %s:%s", getattr(dataset, "name", ""), text)
    if output_dir:
        write_results(results, text, output_dir)
    results["text"] = text
    return results


def write_result_plots(results_file: str, folder: str) -> None:
    """Per-predicate R@K (largest K) and the GT predicate distribution of a results file, when matplotlib is there."""
    try:
        block = load_per_predicate(results_file)
        k = max(int(key[2:]) for key in block if key.startswith("R@"))
        plot_per_predicate_recall(results_file, os.path.join(folder, f"per_predicate_R@{k}.png"), k=k)
        plot_predicate_distribution(block["names"], block["gt_count"],
                                    os.path.join(folder, "predicate_distribution.png"), log=True)
    except ImportError as err:
        logger.info("no result plots (TEST.RELATION.PLOTS): %s", err)


def relation_val_fn(cfg, statistics: Dict) -> Callable[[nn.Module], Dict]:
    """Validation on the first ``DATASETS.VAL`` dataset; its ``R@100`` drives the plateau schedule, as in SGB."""
    loaders = build_data_loader(cfg, "val", is_distributed=comm.get_world_size() > 1)

    def validate(model: nn.Module) -> Dict:
        results = evaluate_relations(cfg, model, loaders[0], statistics=statistics)
        return {k: v for k, v in results.items() if k != "text"}

    return validate


def test_relations(cfg, model: nn.Module, statistics: Dict, split: str = "test") -> Dict:
    """Evaluate every dataset of ``DATASETS.<split>``; results (and the prediction file when
    ``TEST.RELATION.SAVE_PREDICTIONS``) go to ``OUTPUT_DIR/inference/<dataset>/``."""
    if split not in SPLITS:
        raise ConfigError(f"DATASETS.TO_TEST must be one of {', '.join(SPLITS)} (or empty for test), got {split!r}")
    results = {}
    for loader in build_data_loader(cfg, split, is_distributed=comm.get_world_size() > 1, for_training=False):
        name = getattr(loader.dataset, "name", split)
        folder = os.path.join(cfg.OUTPUT_DIR, "inference", name)
        results[name] = evaluate_relations(cfg, model, loader, folder, statistics,
                                           save_predictions=cfg.TEST.RELATION.SAVE_PREDICTIONS)
        if cfg.TEST.RELATION.PLOTS and comm.is_main_process():
            write_result_plots(os.path.join(folder, "results.json"), folder)
    return results
