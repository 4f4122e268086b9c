"""Logit-adjusting stages (``MODEL.ROI_RELATION_HEAD.LOGIT_ADJUSTERS``), registered in ``RELATION_LOGIT_ADJUSTERS``.

An adjuster is a module called as ``rel_logits = adjuster(rel_logits)`` on the (sum P, R) relation logits, between
the predictor and the re-scorer, in training and at test, in the order listed. It is built with
``Adjuster.from_config(cfg, statistics)`` and sits on the relation head under its ``HEAD_ATTRIBUTE`` (its parameters
and buffers are saved as ``relation_head.<HEAD_ATTRIBUTE>.*``).

``TransferClassifier`` (BA-SGG's Semantic Adjustment, ``ba_sgg.py``) is one; ``WITH_TRANSFER_CLASSIFIER True``
appends it to the list, as the reference's switch.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import RELATION_LOGIT_ADJUSTERS

from .. import ba_sgg  # noqa: F401  (registers TransferClassifier)


def logit_adjuster_names(cfg) -> List[str]:
    """``LOGIT_ADJUSTERS``, with ``TransferClassifier`` appended when ``WITH_TRANSFER_CLASSIFIER`` asks for it."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    names = list(head.LOGIT_ADJUSTERS)
    if head.WITH_TRANSFER_CLASSIFIER and "TransferClassifier" not in names:
        names.append("TransferClassifier")
    return names


def build_logit_adjusters(cfg, statistics: Dict) -> List[Tuple[str, nn.Module]]:
    """(head attribute, module) of every configured adjuster, in order."""
    built = []
    for name in logit_adjuster_names(cfg):
        adjuster = RELATION_LOGIT_ADJUSTERS.get(name)
        attribute = getattr(adjuster, "HEAD_ATTRIBUTE", None)
        if not attribute:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.LOGIT_ADJUSTERS: {name} declares no HEAD_ATTRIBUTE (the name "
                              f"its weights are saved under on the relation head)")
        if attribute in (a for a, _ in built):
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.LOGIT_ADJUSTERS lists {name} twice (or two adjusters with "
                              f"HEAD_ATTRIBUTE {attribute!r})")
        built.append((attribute, adjuster.from_config(cfg, statistics)))
    return built


__all__ = ["build_logit_adjusters", "logit_adjuster_names"]
