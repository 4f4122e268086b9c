"""What the relation tools share before training or testing: the statistics, the scene graph model, its initial
weights (the detector, or BA-SGG's stage-1 model)."""
from __future__ import annotations

import logging
from typing import Dict

from torch import nn

from sgg.config import get_protocol
from sgg.config.sgg_config import ConfigError
from sgg.data import get_dataset_statistics
from sgg.modeling.detector.detectors import meta_architecture_name
from sgg.modeling.registry import META_ARCHITECTURES
from sgg.modeling.roi_heads.relation_head.ba_sgg import load_stage1_model
from sgg.utils import comm
from sgg.utils.checkpoint import Checkpointer

logger = logging.getLogger(__name__)


def load_statistics(cfg) -> Dict:
    """The training statistics; rank 0 computes and caches them first so other processes only read the cache."""
    if comm.is_main_process():
        statistics = get_dataset_statistics(cfg)
    comm.synchronize()
    if not comm.is_main_process():
        statistics = get_dataset_statistics(cfg)
    return statistics


def build_scene_graph_model(cfg, statistics: Dict) -> nn.Module:
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
        load_stage1_model(cfg, model)
    else:
        load_pretrained_detector(cfg, model)
