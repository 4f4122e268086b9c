"""The weighted loss terms named in ``MODEL.ROI_RELATION_HEAD.LOSS``, built from the RELATION_LOSSES registry (its
modules register when the package is imported)."""
from __future__ import annotations

from sgg.modeling.registry import RELATION_LOSSES

from .base import WeightedLosses
from .reweight import resolve_loss_spec


def build_relation_losses(cfg, statistics=None) -> WeightedLosses:
    """The terms named in ``MODEL.ROI_RELATION_HEAD.LOSS`` (after ``MODEL.USE_REWEIGHT``); each class is built with
    ``from_config(cfg, stats)``."""
    terms = []
    for name, weight in resolve_loss_spec(cfg):
        cls = RELATION_LOSSES.get(name)
        module = cls.from_config(cfg, statistics) if hasattr(cls, "from_config") else cls()
        terms.append((name, weight, module))
    return WeightedLosses(terms)
