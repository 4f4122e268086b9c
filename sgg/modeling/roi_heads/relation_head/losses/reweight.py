"""Predicate reweighting as a loss term for any predictor: ``ReweightedRelationCE`` (``loss_rel``), the class-weighted
CE of SPL's ``MODEL.USE_REWEIGHT 'PENET'`` with its predicate curriculum (METHODS.md 4.5).

Class weights (``REWEIGHT.WEIGHTS``):
* ``"effective_number"``: the class-balanced weights of Cui et al. (CVPR 2019),
  w_p = (1 - beta) / (1 - beta^n_p), the background as n = infinity (w_0 = 1 - beta), scaled so that the R weights
  sum to R. With beta = 0.99999 and the ``predicate_count`` of VG150's ``VG-SGG-dicts-with-attri.json`` this
  reproduces the reference's fixed 51-entry vector to its 4 printed decimals (tests/modeling/test_reweight.py), so
  the formula is what the reference computed. Here n_p are the training counts of the dataset statistics.
* ``"file"``: ``REWEIGHT.WEIGHT_FILE``, json ``{predicate name: weight}`` (checked against the dataset's names) or
  one weight per class in class order (.txt, .npy, .pt). configs/penet/vg150_penet_predicate_weights.json is the
  reference vector.

Curriculum: the iteration counter t (a buffer, so it is saved in checkpoints and a resumed run continues exactly) is
incremented at every training call, then w_head <- w_head * max(1 - t / DECAY_ITERS, FLOOR).

``MODEL.USE_REWEIGHT 'PENET'`` is read by ``resolve_loss_spec``: it names ``ReweightedRelationCE`` in place of
``RelationCE`` in ``MODEL.ROI_RELATION_HEAD.LOSS`` (LOSS stays the list of terms; nothing else changes).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import RELATION_LOSSES
from sgg.utils.errors import DataError

from .base import RelationLossInputs, parse_loss_spec

logger = logging.getLogger(__name__)

KEY = "MODEL.ROI_RELATION_HEAD.REWEIGHT"
REWEIGHT_MODES = ("none", "PENET")


def resolve_loss_spec(cfg) -> List[Tuple[str, float]]:
    """The (name, weight) loss terms after MODEL.USE_REWEIGHT: 'PENET' swaps RelationCE for ReweightedRelationCE."""
    mode = str(cfg.MODEL.USE_REWEIGHT)
    if mode.lower() not in [m.lower() for m in REWEIGHT_MODES]:
        raise ConfigError(f"MODEL.USE_REWEIGHT must be one of {', '.join(REWEIGHT_MODES)}, got {mode!r}")
    spec = parse_loss_spec(cfg.MODEL.ROI_RELATION_HEAD.LOSS)
    if mode.lower() == "penet":
        spec = [("ReweightedRelationCE" if name == "RelationCE" else name, weight) for name, weight in spec]
        if not any(name == "ReweightedRelationCE" for name, _ in spec):
            raise ConfigError("MODEL.USE_REWEIGHT 'PENET' needs a relation CE in MODEL.ROI_RELATION_HEAD.LOSS "
                              "(RelationCE or ReweightedRelationCE)")
    return spec


def effective_number_weights(counts: Sequence[float], beta: float) -> torch.Tensor:
    """(R,) class-balanced weights from per-class counts (entry 0 = background, its count ignored)."""
    if not 0.0 < beta < 1.0:
        raise ConfigError(f"{KEY}.BETA must be in (0, 1), got {beta}")
    counts = torch.as_tensor(np.asarray(counts, dtype=np.float64)).clamp_min(1.0)
    raw = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    raw[0] = 1.0 - beta  # n -> infinity
    return (raw / raw.sum() * len(raw)).float()


def load_weight_file(path: str, rel_classes: Sequence[str]) -> torch.Tensor:
    key = f"{KEY}.WEIGHT_FILE"
    if not path:
        raise ConfigError(f"{key} is empty but {KEY}.WEIGHTS is 'file'")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{key}: {path} does not exist")
    if path.endswith(".json"):
        with open(path) as handle:
            data = json.load(handle)
        if isinstance(data, dict):
            missing = [n for n in rel_classes if n not in data]
            unknown = [n for n in data if n not in rel_classes]
            if missing or unknown:
                raise DataError(f"{key}: {path} does not name the dataset's predicates (missing: {missing[:5]}, "
                                f"unknown: {unknown[:5]})")
            data = [data[n] for n in rel_classes]
        values = np.asarray(data, dtype=np.float64)
    elif path.endswith(".npy"):
        values = np.load(path)
    elif path.endswith(".pt"):
        values = torch.load(path, map_location="cpu", weights_only=True)
    else:
        values = np.loadtxt(path, dtype=np.float64)
    weights = torch.as_tensor(np.asarray(values, dtype=np.float32)).reshape(-1)
    if weights.numel() != len(rel_classes):
        raise DataError(f"{key}: {path} has {weights.numel()} weights but there are {len(rel_classes)} predicate "
                        f"classes (background included)")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise DataError(f"{key}: {path} must hold finite, non-negative weights")
    return weights


def head_predicates(names: Sequence[str], head_count: int, counts: Optional[Sequence[float]],
                    rel_classes: Sequence[str]) -> List[int]:
    """Indices of the curriculum's head set: the given names, else the ``head_count`` most frequent predicates."""
    if names:
        unknown = [n for n in names if n not in rel_classes or n == rel_classes[0]]
        if unknown:
            raise ConfigError(f"{KEY}.HEAD_PREDICATES: {unknown} are not foreground predicates of the dataset")
        return [list(rel_classes).index(n) for n in names]
    if head_count <= 0:
        return []
    if counts is None:
        raise ConfigError(f"{KEY}.HEAD_COUNT needs the training predicate counts (statistics 'predicate_counts'), or "
                          f"name the head set in {KEY}.HEAD_PREDICATES")
    counts = np.asarray(counts, dtype=np.float64).copy()
    counts[0] = -1.0
    order = np.argsort(-counts, kind="stable")
    return sorted(int(i) for i in order[: min(head_count, len(counts) - 1)])


def curriculum_factor(iteration: int, decay_iters: int, floor: float) -> float:
    """max(1 - t / DECAY_ITERS, FLOOR); 1 when the curriculum is off (DECAY_ITERS <= 0)."""
    if decay_iters <= 0:
        return 1.0
    return max(1.0 - float(iteration) / float(decay_iters), float(floor))


@RELATION_LOSSES.register("ReweightedRelationCE")
class ReweightedRelationCE(nn.Module):
    """``loss_rel``: CE with per-class weights (weighted mean, as torch) and the head-predicate curriculum."""

    def __init__(self, class_weights: torch.Tensor, head: Sequence[int] = (), decay_iters: int = 0,
                 floor: float = 1.0):
        super().__init__()
        if not 0.0 <= floor <= 1.0:
            raise ConfigError(f"{KEY}.FLOOR must be in [0, 1], got {floor}")
        self.register_buffer("class_weights", torch.as_tensor(class_weights, dtype=torch.float32).clone())
        mask = torch.zeros(len(self.class_weights), dtype=torch.bool)
        mask[list(head)] = True
        self.register_buffer("head_mask", mask)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self.decay_iters, self.floor = int(decay_iters), float(floor)

    @classmethod
    def from_config(cls, cfg, statistics=None):
        rw = cfg.MODEL.ROI_RELATION_HEAD.REWEIGHT
        if statistics is None or "rel_classes" not in statistics:
            raise KeyError("ReweightedRelationCE needs the dataset statistics (predicate names and counts)")
        rel_classes = list(statistics["rel_classes"])
        counts = statistics.get("predicate_counts")
        if rw.WEIGHTS == "file":
            weights = load_weight_file(rw.WEIGHT_FILE, rel_classes)
        elif rw.WEIGHTS == "effective_number":
            if counts is None:
                raise ConfigError(f"{KEY}.WEIGHTS 'effective_number' needs the statistics' predicate_counts")
            if len(counts) != len(rel_classes):
                raise ValueError(f"statistics: {len(counts)} predicate counts for {len(rel_classes)} predicates")
            weights = effective_number_weights(counts, rw.BETA)
        else:
            raise ConfigError(f"{KEY}.WEIGHTS must be 'effective_number' or 'file', got {rw.WEIGHTS!r}")
        head = head_predicates(list(rw.HEAD_PREDICATES), rw.HEAD_COUNT, counts, rel_classes)
        logger.info("ReweightedRelationCE: head set %s, decay over %d iterations to %.2f",
                    [rel_classes[i] for i in head], rw.DECAY_ITERS, rw.FLOOR)
        return cls(weights, head, rw.DECAY_ITERS, rw.FLOOR)

    def current_weights(self) -> torch.Tensor:
        weights = self.class_weights.clone()
        if self.decay_iters > 0:  # curriculum_factor on the device: reading the counter would sync every step
            factor = (1.0 - self.iteration.double() / self.decay_iters).clamp(min=self.floor)
            weights[self.head_mask] = weights[self.head_mask] * factor.to(weights.dtype)
        return weights

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        if inputs.rel_logits.shape[-1] != len(self.class_weights):
            raise ValueError(f"ReweightedRelationCE: {inputs.rel_logits.shape[-1]} relation logits per pair but "
                             f"{len(self.class_weights)} class weights")
        if self.training:
            self.iteration += 1  # the reference advances before weighting: the first call uses t = 1
        if inputs.rel_logits.numel() == 0:
            return {"loss_rel": inputs.rel_logits.sum() * 0.0}
        weights = self.current_weights().to(inputs.rel_logits)
        return {"loss_rel": F.cross_entropy(inputs.rel_logits, inputs.rel_labels.long(), weight=weights)}
