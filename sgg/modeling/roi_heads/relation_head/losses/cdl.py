"""FGPL's category discriminating loss (CDL), ReBalance-HCA's "predicate reweighting" (METHODS.md 5.2).

The predicate lattice comes from a trained model's confusion matrix C (rows GT, columns predicted; background 0):

    M = C with the background row and column zeroed and M[0, 0] = 1
    P = row-normalise(M)                        (LATTICE_NORMALIZATION "row"; "column" divides columns first)
    corr[i, j] = P[i, j] / (P[i, i] + 1e-4)

Per batch, n_c counts the sampled relation labels of class c (background included), r[i, j] = n_j / n_i, and

    phi[i, j] = r ** MITIGATION    if r < 1 and corr <= THRESHOLD   (rarer, unrelated negative: barely suppressed)
              = r ** COMPENSATION  if r >= 1 and corr > THRESHOLD   (commoner, confusable negative: suppressed more)
              = 1                  otherwise
    w[i, j] = log(1 + phi[i, j])        (w[y, y] = log 2)
    L = mean over pairs of -( z_y - log sum_j w[y, j] exp(z_j) )
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import RELATION_LOSSES

from ..ba_sgg import load_confusion_matrix
from .base import RelationLossInputs

LATTICE_NORMALIZATIONS = ("row", "column")
ABSENT_CLASS_RULES = ("drop", "keep")
COUNT_EPS = 1e-8  # the reference's guard on per-batch counts: an absent class has ratio ~0, not 0/0
DIAG_EPS = 1e-4  # the reference's guard in corr = P_ij / (P_ii + eps)
RATIO_CLAMP = 1000.0


def predicate_lattice(confusion: np.ndarray, normalization: str = "row") -> torch.Tensor:
    """(R, R) confusion counts -> (R, R) predicate correlation ``corr[i, j] = P_ij / (P_ii + 1e-4)``.

    "row": P is the row-normalised matrix. This is what the reference computes: it first divides row i by the sum of
    *column* i (``M / M.sum(0)[:, None]``), a per-row constant that the row normalisation then cancels.
    "column": each column j is divided by its sum first (P(GT i | predicted j)), then rows are normalised; this gives
    rarely predicted classes more weight in the lattice.
    """
    if normalization not in LATTICE_NORMALIZATIONS:
        raise ConfigError(f"MODEL.ROI_RELATION_HEAD.CDL.LATTICE_NORMALIZATION is {normalization!r}; expected one of "
                          f"{', '.join(LATTICE_NORMALIZATIONS)}")
    matrix = np.array(confusion, dtype=np.float64, copy=True)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"CDL confusion matrix must be square (R, R), got shape {matrix.shape}")
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError("CDL confusion matrix must hold finite, non-negative counts")
    matrix[0, :] = 0.0
    matrix[:, 0] = 0.0
    matrix[0, 0] = 1.0
    if normalization == "column":
        column_sums = matrix.sum(axis=0, keepdims=True)
        matrix = np.divide(matrix, column_sums, out=np.zeros_like(matrix), where=column_sums > 0)
    row_sums = matrix.sum(axis=1, keepdims=True)
    probs = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)  # GT never seen: zero row
    corr = probs / (np.diag(probs)[:, None] + DIAG_EPS)
    return torch.from_numpy(corr).float()


def class_weights(counts: torch.Tensor, corr: torch.Tensor, mitigation: float, compensation: float,
                  threshold: float, absent: str = "drop") -> torch.Tensor:
    """(R,) per-batch label counts and the (R, R) lattice -> (R, R) weights ``w[i, j]`` for GT i and class j."""
    counts = counts.to(torch.float64)
    ratio = ((counts[None, :] + COUNT_EPS) / (counts[:, None] + COUNT_EPS)).clamp(0.0, RATIO_CLAMP)
    correlated = corr.to(ratio.device) > threshold
    ones = torch.ones_like(ratio)
    rarer = torch.where(correlated, ones, ratio.pow(mitigation))
    commoner = torch.where(correlated, ratio.pow(compensation), ones)
    weights = torch.log1p(torch.where(ratio < 1.0, rarer, commoner))
    if absent == "keep":
        # an absent class stays in every softmax with the plain-CE weight of the target, log 2
        weights[:, counts == 0] = math.log(2.0)
    elif absent != "drop":
        raise ConfigError(f"MODEL.ROI_RELATION_HEAD.CDL.ABSENT_CLASSES is {absent!r}; expected one of "
                          f"{', '.join(ABSENT_CLASS_RULES)}")
    return weights.float()


def weighted_softmax_nll(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """mean_k -( z_k,y - log sum_j w[k, j] exp(z_k,j) ) for per-sample weight rows ``weights`` (K, R)."""
    log_denominator = torch.logsumexp(logits + weights.log(), dim=1)
    return (log_denominator - logits.gather(1, labels[:, None]).squeeze(1)).mean()


def read_confusion_matrix(path: str, num_predicates: int, predicate_names=None) -> np.ndarray:
    """The (R, R) confusion counts through BA-SGG's validated loader: both methods read the same file (a predicate
    without counts warns and gets a zero lattice row, as in the reference)."""
    return np.asarray(load_confusion_matrix(path, num_predicates, "MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH",
                                            predicate_names))


@RELATION_LOSSES.register("cdl")
class CategoryDiscriminatingLoss(nn.Module):
    """``loss_rel_cdl``: replaces ``RelationCE`` in ``MODEL.ROI_RELATION_HEAD.LOSS`` (e.g. ("cdl", "ObjectCE")).

    A batch without any foreground relation returns 0: with only background present every other class drops out
    of the denominator (ABSENT_CLASSES "drop"), so the reference's value there is the constant log(log 2) with no
    gradient; we report 0 (same gradient) for any ABSENT_CLASSES.
    """

    def __init__(self, confusion: np.ndarray, mitigation: float = 1.5, compensation: float = 2.0,
                 threshold: float = 0.9, normalization: str = "row", absent: str = "drop",
                 num_predicates: Optional[int] = None):
        super().__init__()
        confusion = np.asarray(confusion)
        if num_predicates is not None and confusion.shape != (num_predicates, num_predicates):
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH: the confusion matrix has shape "
                              f"{confusion.shape}, expected ({num_predicates}, {num_predicates}) for {num_predicates} "
                              f"predicate classes (background included)")
        if absent not in ABSENT_CLASS_RULES:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.CDL.ABSENT_CLASSES is {absent!r}; expected one of "
                              f"{', '.join(ABSENT_CLASS_RULES)}")
        self.register_buffer("correlation", predicate_lattice(confusion, normalization), persistent=False)
        self.mitigation, self.compensation, self.threshold, self.absent = mitigation, compensation, threshold, absent

    @classmethod
    def from_config(cls, cfg, statistics=None):
        cdl = cfg.MODEL.ROI_RELATION_HEAD.CDL
        if not cdl.CONFUSION_MATRIX_PATH:
            raise ConfigError("the cdl loss needs a predicate confusion matrix: set "
                              "MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH to the (R, R) .npy written by "
                              "tools/relation_confusion_matrix.py from a trained model")
        num_predicates = len(statistics["rel_classes"]) if statistics and "rel_classes" in statistics \
            else cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES
        names = statistics.get("rel_classes") if statistics else None
        confusion = read_confusion_matrix(cdl.CONFUSION_MATRIX_PATH, num_predicates, names)
        return cls(confusion, cdl.MITIGATION_FACTOR, cdl.COMPENSATION_FACTOR, cdl.CORRELATION_THRESHOLD,
                   cdl.LATTICE_NORMALIZATION, cdl.ABSENT_CLASSES, num_predicates)

    def batch_weights(self, labels: torch.Tensor) -> torch.Tensor:
        """(R, R) weights from this batch's label counts."""
        counts = torch.bincount(labels, minlength=self.correlation.shape[0])
        return class_weights(counts, self.correlation, self.mitigation, self.compensation, self.threshold,
                             self.absent)

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        logits, labels = inputs.rel_logits, inputs.rel_labels.long()
        num_predicates = self.correlation.shape[0]
        if logits.dim() != 2 or logits.shape[1] != num_predicates:
            raise ConfigError(f"cdl: relation logits have shape {tuple(logits.shape)} but the predicate lattice "
                              f"(MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH) has {num_predicates} classes")
        if logits.numel() == 0 or not (labels > 0).any():
            return {"loss_rel_cdl": logits.sum() * 0.0}
        if labels.max() >= num_predicates or labels.min() < 0:
            raise ValueError(f"cdl: relation labels must lie in [0, {num_predicates}), got "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        weights = self.batch_weights(labels).to(logits.device)
        return {"loss_rel_cdl": weighted_softmax_nll(logits, labels, weights[labels].to(logits.dtype))}
