"""The one path from yaml + command line to a frozen config that every tool shares."""
from __future__ import annotations

import logging
import os
from typing import Iterable, Optional

from .defaults import get_default_config
from .sgg_config import ConfigError, SGGConfig

logger = logging.getLogger(__name__)

PROTOCOLS = ("predcls", "sgcls", "sgdet")


def get_cfg() -> SGGConfig:
    """A fresh, mutable copy of the defaults."""
    return get_default_config()


def protocol_name(use_gt_box: bool, use_gt_object_label: bool) -> str:
    """SGB's protocol from its two switches: PredCls (True, True), SGCls (True, False), SGDet (False, False)."""
    if use_gt_box:
        return "predcls" if use_gt_object_label else "sgcls"
    if use_gt_object_label:
        raise ConfigError("MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL True needs USE_GT_BOX True "
                          "(GT labels without GT boxes is not a protocol)")
    return "sgdet"


def get_protocol(cfg) -> str:
    head = cfg.MODEL.ROI_RELATION_HEAD
    return protocol_name(head.USE_GT_BOX, head.USE_GT_OBJECT_LABEL)


# every key counted in training iterations: SOLVER.SCHEDULE_SCALE stretches them together
SCHEDULE_KEYS = ("SOLVER.MAX_ITER", "SOLVER.STEPS", "SOLVER.WARMUP_ITERS", "SOLVER.CHECKPOINT_PERIOD",
                 "SOLVER.VAL_PERIOD", "MODEL.ROI_RELATION_HEAD.REWEIGHT.DECAY_ITERS")


def apply_schedule_scale(cfg: SGGConfig) -> None:
    """Multiply every key of ``SCHEDULE_KEYS`` by ``SOLVER.SCHEDULE_SCALE`` (rounded; a positive count stays at least
    1, 0 = off stays 0) and set the scale to 1.0, so a yaml's schedule can be stretched for a larger dataset with one
    key, every stage of a recipe alike, and the saved config (the scaled counts, scale 1.0) loads to the same run."""
    scale = cfg.SOLVER.SCHEDULE_SCALE
    if not scale > 0:
        raise ConfigError(f"SOLVER.SCHEDULE_SCALE must be positive, got {scale}")
    if scale == 1.0:
        return

    def stretch(count: int) -> int:
        return max(1, int(round(count * scale))) if count > 0 else count

    changes = []
    for key in SCHEDULE_KEYS:
        *path, name = key.split(".")
        node = cfg
        for part in path:
            node = getattr(node, part)
        value = getattr(node, name)
        new = tuple(stretch(v) for v in value) if isinstance(value, (tuple, list)) else stretch(value)
        setattr(node, name, new)
        changes.append(f"{key} {value} -> {new}")
    cfg.SOLVER.SCHEDULE_SCALE = 1.0
    logger.info("SOLVER.SCHEDULE_SCALE %s: %s", scale, "; ".join(changes))


def _check(cfg: SGGConfig) -> None:
    """Cross-key rules that a single key's type cannot express."""
    if cfg.MODEL.ATTRIBUTE_ON:
        raise ConfigError("MODEL.ATTRIBUTE_ON True: the attribute head is not implemented; set it to False")
    if cfg.MODEL.FLIP_AUG and cfg.INPUT.FLIP_PROB_TRAIN == 0:
        cfg.INPUT.FLIP_PROB_TRAIN = 0.5
    if not 0.0 <= cfg.INPUT.FLIP_PROB_TRAIN <= 1.0:
        raise ConfigError(f"INPUT.FLIP_PROB_TRAIN must be in [0, 1], got {cfg.INPUT.FLIP_PROB_TRAIN}")
    if cfg.SOLVER.IMS_PER_BATCH <= 0 or cfg.TEST.IMS_PER_BATCH <= 0:
        raise ConfigError("SOLVER.IMS_PER_BATCH and TEST.IMS_PER_BATCH must be positive")
    if list(cfg.SOLVER.STEPS) != sorted(cfg.SOLVER.STEPS):
        raise ConfigError(f"SOLVER.STEPS must be increasing, got {tuple(cfg.SOLVER.STEPS)}")
    if cfg.DTYPE not in ("float32", "float16", "bfloat16"):
        raise ConfigError(f"DTYPE must be float32, float16 or bfloat16, got {cfg.DTYPE!r}")
    get_protocol(cfg)
    _check_causal(cfg)


CAUSAL_PREDICTOR = "CausalAnalysisPredictor"
EFFECT_TYPES = ("none", "TDE", "NIE", "TE")


def _check_causal(cfg: SGGConfig) -> None:
    """The CAUSAL keys act only on CausalAnalysisPredictor: a counterfactual asked of another head is an error, not a
    silent no-op. EFFECT_ANALYSIS alone is accepted with a warning: SGB's relation yaml sets it for every head."""
    causal = cfg.MODEL.ROI_RELATION_HEAD.CAUSAL
    key = "MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE"
    if causal.EFFECT_TYPE not in EFFECT_TYPES:
        raise ConfigError(f"{key} is {causal.EFFECT_TYPE!r}; expected one of {', '.join(EFFECT_TYPES)}")
    predictor = cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR
    if predictor != CAUSAL_PREDICTOR:
        if causal.EFFECT_TYPE != "none":
            raise ConfigError(f"{key} is {causal.EFFECT_TYPE!r} but MODEL.ROI_RELATION_HEAD.PREDICTOR is "
                              f"{predictor!r}: the causal effects exist only for {CAUSAL_PREDICTOR}; set "
                              f"EFFECT_TYPE none or PREDICTOR {CAUSAL_PREDICTOR}")
        if causal.SEPARATE_SPATIAL:  # it changes what the union feature extractor returns
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.CAUSAL.SEPARATE_SPATIAL is True but "
                              f"MODEL.ROI_RELATION_HEAD.PREDICTOR is {predictor!r}: only {CAUSAL_PREDICTOR} reads "
                              f"the separate spatial features; set SEPARATE_SPATIAL False")
        if causal.EFFECT_ANALYSIS:
            logger.warning("MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS True has no effect on %s (only %s "
                           "reads it)", predictor, CAUSAL_PREDICTOR)
    elif causal.EFFECT_TYPE != "none" and not causal.EFFECT_ANALYSIS:
        # SGB silently returns the factual logits here
        raise ConfigError(f"{key} is {causal.EFFECT_TYPE!r} but MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS is "
                          f"False: the counterfactual needs the untreated averages; set EFFECT_ANALYSIS True")


def load_config(config_file: Optional[str] = None, opts: Iterable = (), freeze: bool = True) -> SGGConfig:
    """defaults < ``config_file`` < ``opts`` (KEY VALUE ...), checked, optionally frozen."""
    cfg = get_cfg()
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    apply_schedule_scale(cfg)
    _check(cfg)
    if freeze:
        cfg.freeze()
    return cfg


def save_config(cfg: SGGConfig, path: Optional[str] = None) -> str:
    """Write the resolved config as yaml (default ``OUTPUT_DIR/config.yaml``); returns the path."""
    path = path or os.path.join(cfg.OUTPUT_DIR, "config.yaml")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(cfg.dump())
    return path
