"""The weighted loss terms named in ``MODEL.ROI_RELATION_HEAD.LOSS``, built from the RELATION_LOSSES registry (its
modules register when the package is imported)."""
from __future__ import annotations

from typing import List, Tuple

from sgg.modeling.registry import RELATION_LOSSES, ROI_RELATION_PREDICTORS

from .base import WeightedLosses
from .reweight import resolve_loss_spec


def with_required_terms(spec: List[Tuple[str, float]], cfg) -> List[Tuple[str, float]]:
    """``spec`` plus, with weight 1, the terms the configured predictor's reference always trains with and LOSS does
    not list: its class's ``required_loss_terms(cfg)`` (e.g. VCTreePredictor's VCTreeBinary)."""
    name = cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR
    predictor = ROI_RELATION_PREDICTORS.get(name) if name in ROI_RELATION_PREDICTORS else None
    required = getattr(predictor, "required_loss_terms", None)
    listed = {term for term, _ in spec}
    return list(spec) + [(term, 1.0) for term in (required(cfg) if required else ()) if term not in listed]


def build_relation_losses(cfg, statistics=None) -> WeightedLosses:
    """The terms named in ``MODEL.ROI_RELATION_HEAD.LOSS`` (after ``MODEL.USE_REWEIGHT``); each class is built with
    ``from_config(cfg, stats)``."""
    terms = []
    for name, weight in with_required_terms(resolve_loss_spec(cfg), cfg):
        cls = RELATION_LOSSES.get(name)
        module = cls.from_config(cfg, statistics) if hasattr(cls, "from_config") else cls()
        terms.append((name, weight, module))
    return WeightedLosses(terms)
