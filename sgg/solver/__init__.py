"""Optimizers, LR schedules and gradient clipping from ``SOLVER.*``."""
from .build import clip_grad_norm, effective_base_lr, make_lr_scheduler, make_optimizer, param_groups
from .lr_scheduler import WarmupCosineLR, WarmupMultiStepLR, WarmupReduceLROnPlateau, warmup_factor_at

__all__ = ["make_optimizer", "make_lr_scheduler", "param_groups", "effective_base_lr", "clip_grad_norm",
           "WarmupMultiStepLR", "WarmupReduceLROnPlateau", "WarmupCosineLR", "warmup_factor_at"]
