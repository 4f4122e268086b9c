"""Optimizer and LR schedule from ``SOLVER.*`` (PROTOCOL.md section 4.7).

Learning rate of a parameter: ``BASE_LR`` (x ``IMS_PER_BATCH`` when ``SCALE_LR_BY_BATCH``, SGB's convention: the
effective LR grows linearly with the global batch) x ``BIAS_LR_FACTOR`` for biases x ``BACKBONE_LR_FACTOR`` for
parameters whose name starts with ``backbone``, / the relation predictor's ``FEATURE_LR_DIVISOR`` (IMPPredictor: 10,
SGB's "slow_heads") for the relation head's box and union feature MLPs. Weight decay: ``WEIGHT_DECAY``;
``WEIGHT_DECAY_BIAS`` for biases; none for the parameters of normalisation layers. Frozen parameters
(``requires_grad`` False) are left out. SGB made one group per parameter; parameters with equal (lr, weight decay)
share a group here, which is the same optimisation and keeps the optimizer state small.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Tuple

import torch
from torch import nn

from sgg.config.sgg_config import ConfigError

from .lr_scheduler import WarmupCosineLR, WarmupMultiStepLR, WarmupReduceLROnPlateau

logger = logging.getLogger(__name__)

OPTIMIZERS = ("SGD", "AdamW")
SCHEDULES = ("WarmupMultiStepLR", "WarmupReduceLROnPlateau", "WarmupCosineLR")
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def effective_base_lr(cfg) -> float:
    solver = cfg.SOLVER
    return solver.BASE_LR * (solver.IMS_PER_BATCH if solver.SCALE_LR_BY_BATCH else 1)


# SGB's slow_heads (tools/relation_train_net.py): the relation head's box feature MLP and the union extractor's
# feature_extractor (its pooler's channel reduction, fc6, fc7; not the box-mask convolutions)
SLOW_FEATURE_PREFIXES = ("relation_head.box_feature_extractor.",
                         "relation_head.union_feature_extractor.reduce_channel.",
                         "relation_head.union_feature_extractor.fc6.", "relation_head.union_feature_extractor.fc7.")


def feature_lr_divisor(model: nn.Module) -> float:
    """The relation predictor's ``FEATURE_LR_DIVISOR``; 1 when it declares none or the model has no relation head."""
    predictor = getattr(getattr(model, "relation_head", None), "predictor", None)
    return float(getattr(type(predictor), "FEATURE_LR_DIVISOR", 1.0))


def _norm_parameter_ids(model: nn.Module) -> set:
    ids = set()
    for module in model.modules():
        if isinstance(module, NORM_TYPES):
            ids.update(id(p) for p in module.parameters(recurse=False))
    return ids


def param_groups(cfg, model: nn.Module) -> List[Dict]:
    """Trainable parameters grouped by (lr, weight decay); each group carries ``param_names``, ``kinds`` (e.g.
    ``["backbone weight", "weight"]``) and a readable ``name``."""
    solver = cfg.SOLVER
    base_lr = effective_base_lr(cfg)
    norm_ids = _norm_parameter_ids(model)
    slow_divisor = feature_lr_divisor(model)
    groups: Dict[Tuple[float, float], Dict] = {}
    seen = set()
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        is_bias = name.endswith("bias")
        is_backbone = name.startswith("backbone")
        is_slow = slow_divisor != 1.0 and name.startswith(SLOW_FEATURE_PREFIXES)
        lr = base_lr * (solver.BIAS_LR_FACTOR if is_bias else 1.0) * (solver.BACKBONE_LR_FACTOR if is_backbone else 1.0)
        if is_slow:
            lr = lr / slow_divisor
        if id(param) in norm_ids:
            weight_decay, kind = 0.0, "norm"
        elif is_bias:
            weight_decay, kind = solver.WEIGHT_DECAY_BIAS, "bias"
        else:
            weight_decay, kind = solver.WEIGHT_DECAY, "weight"
        key = (lr, weight_decay)
        if key not in groups:
            groups[key] = {"params": [], "lr": lr, "weight_decay": weight_decay, "param_names": [], "kinds": set()}
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
        prefix = ("backbone " if is_backbone else "") + (f"slow feature (lr/{slow_divisor:g}) " if is_slow else "")
        groups[key]["kinds"].add(prefix + kind)
    if not groups:
        raise ConfigError("the model has no trainable parameters (all are frozen: check SOLVER.FREEZE_PATTERNS)")
    out = []
    for group in groups.values():
        group["kinds"] = sorted(group["kinds"])
        group["name"] = ", ".join(group["kinds"])
        out.append(group)
    return out


def make_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    solver = cfg.SOLVER
    groups = param_groups(cfg, model)
    for group in groups:
        logger.info("param group %-34s lr %.6g  weight decay %.3g  %d tensors", group["name"], group["lr"],
                    group["weight_decay"], len(group["params"]))
    lr = effective_base_lr(cfg)
    if solver.OPTIMIZER == "SGD":
        return torch.optim.SGD(groups, lr=lr, momentum=solver.MOMENTUM)
    if solver.OPTIMIZER == "AdamW":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(solver.BETAS))
    raise ConfigError(f"unknown SOLVER.OPTIMIZER {solver.OPTIMIZER!r}; choose one of {', '.join(OPTIMIZERS)}")


def make_lr_scheduler(cfg, optimizer: torch.optim.Optimizer):
    solver = cfg.SOLVER
    warmup = dict(warmup_factor=solver.WARMUP_FACTOR, warmup_iters=solver.WARMUP_ITERS,
                  warmup_method=solver.WARMUP_METHOD)
    kind = solver.SCHEDULE.TYPE
    if kind == "WarmupMultiStepLR":
        return WarmupMultiStepLR(optimizer, solver.STEPS, solver.GAMMA, **warmup)
    if kind == "WarmupReduceLROnPlateau":
        schedule = solver.SCHEDULE
        return WarmupReduceLROnPlateau(optimizer, schedule.FACTOR, patience=schedule.PATIENCE,
                                       threshold=schedule.THRESHOLD, cooldown=schedule.COOLDOWN,
                                       max_decay_step=schedule.MAX_DECAY_STEP, **warmup)
    if kind == "WarmupCosineLR":
        return WarmupCosineLR(optimizer, solver.MAX_ITER, **warmup)
    raise ConfigError(f"unknown SOLVER.SCHEDULE.TYPE {kind!r}; choose one of {', '.join(SCHEDULES)}")


def clip_grad_norm(parameters, max_norm: float) -> torch.Tensor:
    """SGB's global gradient-norm clip: ``norm = sqrt(sum_p ||grad_p||^2)``; when ``max_norm / (norm + 1e-6) < 1``
    every gradient is multiplied by that coefficient. Returns the norm before clipping (a 0-dim tensor).
    ``max_norm <= 0`` only measures the norm."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads]))
    if max_norm > 0:
        coef = max_norm / (total + 1e-6)
        if bool(coef < 1):
            for g in grads:
                g.detach().mul_(coef.to(g.dtype))
    return total
