"""BA-SGG's two training-strategy parts that live in the model (Guo et al., ICCV 2021; METHODS.md 3, docs/ba_sgg.md).

* Semantic Adjustment (``WITH_TRANSFER_CLASSIFIER``): a fixed transfer matrix A' built from the stage-1 model's
  confusion matrix C maps the relation logits, z' = A' z, in training and at test. ``TransferClassifier`` is a
  registered logit adjuster (``logit_adjusters/``); the relation head runs it like any other.
* Balanced Predicate Learning (``WITH_CLEAN_CLASSIFIER``): each module of the predictor's relation classifier gets a
  "clean" copy; the copy alone is trained (everything else frozen) and used for the logits. Which modules form the
  classifier is declared by the predictor class in ``CLASSIFIER_MODULES`` (dotted attribute paths), so the strategy
  applies to any predictor that declares them. The model builder calls ``prepare_stage2(head, cfg)`` on the built
  relation head.
The re-balanced training split of BPL is ``sgg.data.bpl``.
"""
from __future__ import annotations

import copy
import logging
import os
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import RELATION_LOGIT_ADJUSTERS
from sgg.utils.checkpoint import load_checkpoint_file
from sgg.utils.errors import DataError

logger = logging.getLogger(__name__)

CM_KEY = "MODEL.ROI_RELATION_HEAD.BA_SGG.CONFUSION_MATRIX_PATH"


# ------------------------------------------------------------------------------------------------ confusion matrix
def load_confusion_matrix(path: str, num_predicates: int, key: str = CM_KEY,
                          predicate_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """The (R, R) confusion matrix C[gt, predicted] (background at 0) of ``tools/relation_confusion_matrix.py``,
    checked: the file exists, the shape is (R, R) and the counts are finite and >= 0. A foreground row without any
    count (a predicate the stage-1 model never met) is allowed with a warning naming the predicates, as the
    reference's ``+ 1e-8`` allows it: its transfer row becomes the identity and its CDL lattice row zero."""
    if not path:
        raise ConfigError(f"{key} is empty: run tools/relation_confusion_matrix.py on the stage-1 model first")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{key}: {path} does not exist (tools/relation_confusion_matrix.py writes it)")
    matrix = np.load(path, allow_pickle=False)
    if matrix.shape != (num_predicates, num_predicates):
        raise DataError(f"{key}: {path} has shape {matrix.shape}, expected ({num_predicates}, {num_predicates}) "
                        f"for the dataset's {num_predicates - 1} predicates + background")
    matrix = matrix.astype(np.float64)
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise DataError(f"{key}: {path} must hold finite, non-negative counts")
    empty = (np.flatnonzero(matrix[1:].sum(axis=1) == 0) + 1).tolist()
    if empty:
        has_names = predicate_names is not None and len(predicate_names) == num_predicates
        named = [f"{i} ({predicate_names[i]})" if has_names else str(i) for i in empty]
        message = (f"{key}: {path} has all-zero rows for predicates {', '.join(named)}: the stage-1 model saw no GT "
                   f"pair of them. As in the reference, their transfer rows are the identity (no semantic "
                   f"adjustment) and their CDL lattice rows are zero")
        warnings.warn(message, stacklevel=2)
        logger.warning(message)
    return matrix


def transfer_matrix(confusion: np.ndarray) -> torch.Tensor:
    """A' = rownorm(rownorm(C) + I) with the background row and column of C zeroed and C[0, 0] = 1. A row of C
    without counts stays zero in rownorm(C) (the reference's ``C / (rowsum + 1e-8)``), so its row of A' is the
    identity's: that predicate's logit is not adjusted."""
    c = torch.as_tensor(np.asarray(confusion, dtype=np.float64)).clone()
    c[0, :] = 0.0
    c[:, 0] = 0.0
    c[0, 0] = 1.0
    row_sums = c.sum(dim=1, keepdim=True)
    a = torch.where(row_sums > 0, c / row_sums.clamp(min=1e-300), torch.zeros_like(c))
    a = a + torch.eye(len(a), dtype=a.dtype)
    return (a / a.sum(dim=1, keepdim=True)).float()


@RELATION_LOGIT_ADJUSTERS.register("TransferClassifier")
class TransferClassifier(nn.Module):
    """z'_i = sum_j A'_ij z_j on (P, R) logits. A' is a buffer: fixed, and saved with the checkpoint (as
    ``relation_head.transfer.matrix``)."""

    HEAD_ATTRIBUTE = "transfer"

    def __init__(self, matrix: torch.Tensor):
        super().__init__()
        self.register_buffer("matrix", matrix)

    @classmethod
    def from_config(cls, cfg, statistics: Dict) -> "TransferClassifier":
        """The predicate count (with background) and names come from the dataset statistics' ``rel_classes``."""
        path = cfg.MODEL.ROI_RELATION_HEAD.BA_SGG.CONFUSION_MATRIX_PATH
        names = statistics["rel_classes"]
        return cls(transfer_matrix(load_confusion_matrix(path, len(names), predicate_names=names)))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits @ self.matrix.to(logits.dtype).t()


# ------------------------------------------------------------------------------------------------ clean classifier
class CleanClassifier(nn.Module):
    """Holds a classifier module (``general``, the stage-1 one) and its trainable copy (``clean``); calls and
    attribute look-ups go to ``clean``, so the predictor's own code runs unchanged."""

    def __init__(self, general: nn.Module):
        super().__init__()
        self.general = general
        self.clean = copy.deepcopy(general)

    def forward(self, *args, **kwargs):
        return self.clean(*args, **kwargs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("clean"), name)


def classifier_paths(predictor: nn.Module) -> List[str]:
    """The predictor's declared relation classifier modules that exist in this configuration (e.g. no
    ``freq_bias`` without PREDICT_USE_BIAS)."""
    declared = getattr(type(predictor), "CLASSIFIER_MODULES", None)
    if not declared:
        raise ConfigError(f"MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER: {type(predictor).__name__} declares no "
                          f"CLASSIFIER_MODULES (the modules that map its relation features to logits), so BA-SGG's "
                          f"clean classifier cannot be built for it; see docs/ba_sgg.md for the supported predictors")
    paths = []
    for path in declared:
        parent_path, _, leaf = path.rpartition(".")
        parent = predictor.get_submodule(parent_path) if parent_path else predictor
        if getattr(parent, leaf, None) is not None:
            paths.append(path)
    return paths


def add_clean_classifier(predictor: nn.Module) -> List[str]:
    """Wrap each classifier module in a ``CleanClassifier``; returns the wrapped paths."""
    paths = classifier_paths(predictor)
    for path in paths:
        parent_path, _, leaf = path.rpartition(".")
        parent = predictor.get_submodule(parent_path) if parent_path else predictor
        setattr(parent, leaf, CleanClassifier(getattr(parent, leaf)))
    return paths


def freeze_all_but_clean(module: nn.Module) -> List[str]:
    """requires_grad False on every parameter whose name has no ``.clean.`` part; returns the trainable names."""
    trainable = []
    for name, param in module.named_parameters():
        keep = ".clean." in f".{name}"
        param.requires_grad_(keep)
        if keep:
            trainable.append(name)
    return trainable


def set_clean_train_mode(module: nn.Module, mode: bool) -> None:
    """``BA_SGG.FROZEN_EVAL_MODE`` (not the reference, which keeps the frozen modules in train mode): every
    submodule in eval mode (dropout off, batch-norm statistics fixed) but the clean copies; ``module`` itself keeps
    ``mode`` (it decides between losses and predictions). Sets the flags directly: ``module.train`` may be the
    caller."""
    for sub in module.modules():
        sub.training = False
    module.training = mode
    for sub in module.modules():
        if isinstance(sub, CleanClassifier):
            for part in sub.clean.modules():
                part.training = mode


def prepare_stage2(head: nn.Module, cfg) -> None:
    """BPL's stage 2 on a built relation head (``WITH_CLEAN_CLASSIFIER``; nothing otherwise): clean copies of the
    predictor's classifier, everything else frozen, and with ``BA_SGG.FROZEN_EVAL_MODE`` a train-mode hook that keeps
    the frozen part in eval mode. ``head`` has a ``predictor`` and a ``train_mode_hooks`` list."""
    settings = cfg.MODEL.ROI_RELATION_HEAD
    if not settings.WITH_CLEAN_CLASSIFIER:
        return
    paths = add_clean_classifier(head.predictor)
    trainable = freeze_all_but_clean(head)
    logger.info("BA-SGG clean classifier over %s: %d trainable parameter tensors, the rest frozen",
                ", ".join(paths), len(trainable))
    # the reference freezes by requires_grad only and keeps train mode; eval mode for the frozen part is a key
    if settings.BA_SGG.FROZEN_EVAL_MODE:
        head.train_mode_hooks.append(set_clean_train_mode)


def map_stage1_state_dict(stage1: Dict[str, torch.Tensor], model_keys: Sequence[str]) -> Dict[str, torch.Tensor]:
    """A stage-1 state dict (no clean copies) onto the stage-2 model's keys: ``X.general.p`` and ``X.clean.p`` both
    take stage-1 ``X.p``; other keys are taken as they are."""
    mapped = {}
    for key in model_keys:
        source = key
        for part in (".general.", ".clean."):
            if part in key:
                source = key.replace(part, ".", 1)
                break
        if key in stage1:  # a stage-2 checkpoint (already with copies) loads as it is
            mapped[key] = stage1[key]
        elif source in stage1:
            mapped[key] = stage1[source]
    return mapped


def load_stage1_model(cfg, model: nn.Module) -> None:
    """``MODEL.PRETRAINED_MODEL_CKPT`` into the stage-2 model, its classifier weights into the clean copies too.
    Every parameter and buffer of the model must be covered, except the transfer matrix (built from the config)."""
    path = cfg.MODEL.PRETRAINED_MODEL_CKPT
    key = "MODEL.PRETRAINED_MODEL_CKPT"
    if not path:
        raise ConfigError(f"{key} is empty but MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER is True: BA-SGG's stage 2 "
                          f"starts from a stage-1 relation model (e.g. <stage-1 OUTPUT_DIR>/model_final.pth)")
    state = load_checkpoint_file(path, key=key)["model"]
    model_state = model.state_dict()
    mapped = map_stage1_state_dict(state, list(model_state))
    missing = [k for k in model_state if k not in mapped and not k.endswith("transfer.matrix")]
    if missing:
        raise DataError(f"{key}: {path} does not fit this model: {len(missing)} keys are missing, e.g. "
                        f"{missing[:3]} (is it a relation checkpoint of MODEL.ROI_RELATION_HEAD.PREDICTOR?)")
    bad = [k for k, v in mapped.items() if tuple(v.shape) != tuple(model_state[k].shape)]
    if bad:
        raise DataError(f"{key}: {path} does not fit this model: shape of {bad[0]} is "
                        f"{tuple(mapped[bad[0]].shape)}, expected {tuple(model_state[bad[0]].shape)}")
    model.load_state_dict(mapped, strict=False)
    logger.info("BA-SGG stage 2: loaded %s (%d tensors; classifier copied into the clean classifier)", path,
                len(mapped))


__all__ = ["load_confusion_matrix", "transfer_matrix", "TransferClassifier", "CleanClassifier", "classifier_paths",
           "add_clean_classifier", "freeze_all_but_clean", "set_clean_train_mode", "prepare_stage2",
           "map_stage1_state_dict", "load_stage1_model"]
