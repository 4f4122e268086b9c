"""What the relation tools share: statistics, the scene graph model with its detector, validation and testing."""
from __future__ import annotations

import logging
import os
from typing import Callable, Dict

from torch import nn

from sgg.config import get_protocol
from sgg.config.sgg_config import ConfigError
from sgg.utils import comm
from sgg.utils.checkpoint import Checkpointer

from .relation_eval import evaluate_relations

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def load_statistics(cfg) -> Dict:
    """The training statistics; rank 0 computes and caches them first so other processes only read the cache."""
    from sgg.data import get_dataset_statistics

    if comm.is_main_process():
        statistics = get_dataset_statistics(cfg)
    comm.synchronize()
    if not comm.is_main_process():
        statistics = get_dataset_statistics(cfg)
    return statistics


def build_scene_graph_model(cfg, statistics: Dict) -> nn.Module:
    from sgg.modeling.detector.detectors import meta_architecture_name
    from sgg.modeling.registry import META_ARCHITECTURES

    if not cfg.MODEL.RELATION_ON:
        raise ConfigError("relation training and testing need MODEL.RELATION_ON True (the detector alone is "
                          "tools/detector_pretrain_net.py)")
    return META_ARCHITECTURES.get(meta_architecture_name(cfg)).from_config(cfg, statistics)


def load_pretrained_detector(cfg, model: nn.Module) -> None:
    """``MODEL.PRETRAINED_DETECTOR_CKPT`` into ``model.detector`` (strict), then the relation head's copies of the
    box MLP start from it. SGDet cannot work without a trained detector, so it is required there.
    A model with its own ``load_pretrained_detector(path)`` (the one-stage IterativeSG: the backbone of a Faster
    R-CNN, or backbone and transformer of a DETR) takes it."""
    path = cfg.MODEL.PRETRAINED_DETECTOR_CKPT
    if hasattr(model, "load_pretrained_detector"):
        model.load_pretrained_detector(path)
        return
    if not path:
        if get_protocol(cfg) == "sgdet":
            raise ConfigError("SGDet needs a trained detector: set MODEL.PRETRAINED_DETECTOR_CKPT to the output of "
                              "tools/detector_pretrain_net.py (e.g. <detector OUTPUT_DIR>/model_final.pth)")
        logger.warning("MODEL.PRETRAINED_DETECTOR_CKPT is empty: the relation head trains on features of a randomly "
                       "initialised detector")
        return
    Checkpointer(model.detector, save_dir="", cfg=cfg).load_weights(path, key="MODEL.PRETRAINED_DETECTOR_CKPT",
                                                                      strict=True)
    model.relation_head.init_from_detector(model.detector)
    logger.info("Loaded the detector from %s", path)


def load_initial_weights(cfg, model: nn.Module) -> None:
    """What a fresh relation training starts from: the detector (``load_pretrained_detector``) or, in BA-SGG's
    stage 2 (``WITH_CLEAN_CLASSIFIER``), the whole stage-1 model with its classifier copied into the clean one."""
    if cfg.MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER:
        from sgg.modeling.roi_heads.relation_head.ba_sgg import load_stage1_model

        load_stage1_model(cfg, model)
    else:
        load_pretrained_detector(cfg, model)


def write_result_plots(results_file: str, folder: str) -> None:
    """Per-predicate R@K (largest K) and the GT predicate distribution of a results file, when matplotlib is there."""
    try:
        from sgg.utils.result_plots import (load_per_predicate, plot_per_predicate_recall,
                                            plot_predicate_distribution)

        block = load_per_predicate(results_file)
        k = max(int(key[2:]) for key in block if key.startswith("R@"))
        plot_per_predicate_recall(results_file, os.path.join(folder, f"per_predicate_R@{k}.png"), k=k)
        plot_predicate_distribution(block["names"], block["gt_count"],
                                    os.path.join(folder, "predicate_distribution.png"), log=True)
    except ImportError as err:
        logger.info("no result plots (TEST.RELATION.PLOTS): %s", err)


def relation_val_fn(cfg, statistics: Dict) -> Callable[[nn.Module], Dict]:
    """Validation on the first ``DATASETS.VAL`` dataset; its ``R@100`` drives the plateau schedule, as in SGB."""
    from sgg.data import build_data_loader

    loaders = build_data_loader(cfg, "val", is_distributed=comm.get_world_size() > 1)

    def validate(model: nn.Module) -> Dict:
        results = evaluate_relations(cfg, model, loaders[0], statistics=statistics)
        return {k: v for k, v in results.items() if k != "text"}

    return validate


def test_relations(cfg, model: nn.Module, statistics: Dict, split: str = "test") -> Dict:
    """Evaluate every dataset of ``DATASETS.<split>``; results (and the prediction file when
    ``TEST.RELATION.SAVE_PREDICTIONS``) go to ``OUTPUT_DIR/inference/<dataset>/``."""
    from sgg.data import build_data_loader

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
