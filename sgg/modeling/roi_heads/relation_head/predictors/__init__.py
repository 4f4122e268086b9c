"""Relation predictors (PROTOCOL.md 4.5). Importing this package imports every module in it, so each registers its
predictors in ``ROI_RELATION_PREDICTORS``: a new head is one file here (docs/relation_head.md). ``build_predictor``
builds the one named by ``MODEL.ROI_RELATION_HEAD.PREDICTOR``."""
from __future__ import annotations

from typing import Any, Dict

from torch import nn

from sgg.modeling.registry import ROI_RELATION_PREDICTORS
from sgg.utils.module_loading import import_package_modules

import_package_modules(__name__, __path__)  # registration, in sorted file order

from .frequency import FrequencyPredictor  # noqa: E402
from .motifs import LSTMContext, MotifPredictor  # noqa: E402
from .transformer import TransformerContext, TransformerPredictor  # noqa: E402


def build_predictor(cfg, in_channels: int, statistics: Dict[str, Any]) -> nn.Module:
    """``statistics``: ``pred_dist`` (C, C, R log-probabilities), ``fg_matrix``, ``obj_classes`` (C names with
    ``__background__``) and ``rel_classes`` (R names); the class counts come from here, not from the config."""
    missing = [key for key in ("pred_dist", "obj_classes", "rel_classes") if key not in statistics]
    if missing:
        raise KeyError(f"build_predictor: the dataset statistics lack {', '.join(missing)}")
    predictor_class = ROI_RELATION_PREDICTORS.get(cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR)
    return predictor_class.from_config(cfg, in_channels, statistics)


__all__ = ["build_predictor", "FrequencyPredictor", "MotifPredictor", "LSTMContext", "TransformerPredictor",
           "TransformerContext"]
