"""Iteration-based LR schedules with warmup (PROTOCOL.md section 4.7).

Every schedule sets ``lr = base_lr * warmup(it) * decay(it)`` on each param group, where ``it`` is the number of
iterations completed (``last_epoch``): the LR used by the 0-based iteration ``it``. ``step(metric=None, epoch=None)``
is called once after every iteration (``epoch`` = iterations completed); only the plateau schedule reads ``metric``,
which is None except at validation iterations.

Warmup (maskrcnn-benchmark): for ``it < warmup_iters``, ``linear``: ``f * (1 - a) + a`` with ``a = it / warmup_iters``;
``constant``: ``f``; afterwards 1.
"""
from __future__ import annotations

import logging
import math
from bisect import bisect_right
from typing import Dict, List, Optional, Sequence

from torch.optim import Optimizer

from sgg.config.sgg_config import ConfigError
from sgg.utils.errors import CheckpointError

logger = logging.getLogger(__name__)

WARMUP_METHODS = ("linear", "constant")


def warmup_factor_at(it: int, method: str, warmup_iters: int, warmup_factor: float) -> float:
    if it >= warmup_iters:
        return 1.0
    if method == "constant":
        return warmup_factor
    alpha = float(it) / warmup_iters
    return warmup_factor * (1.0 - alpha) + alpha


class _WarmupSchedule:
    """Shared machinery: base LRs from the param groups, warmup, state dicts (everything but the optimizer)."""

    def __init__(self, optimizer: Optimizer, warmup_factor: float, warmup_iters: int, warmup_method: str):
        if warmup_method not in WARMUP_METHODS:
            raise ConfigError(f"SOLVER.WARMUP_METHOD must be one of {WARMUP_METHODS}, got {warmup_method!r}")
        if warmup_iters < 0:
            raise ConfigError(f"SOLVER.WARMUP_ITERS must be >= 0, got {warmup_iters}")
        self.optimizer = optimizer
        self.warmup_factor = float(warmup_factor)
        self.warmup_iters = int(warmup_iters)
        self.warmup_method = warmup_method
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def decay(self) -> float:
        raise NotImplementedError

    def get_lr(self) -> List[float]:
        factor = warmup_factor_at(self.last_epoch, self.warmup_method, self.warmup_iters, self.warmup_factor)
        factor *= self.decay()
        return [base * factor for base in self.base_lrs]

    def get_last_lr(self) -> List[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def _apply(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr

    def step(self, metric: Optional[float] = None, epoch: Optional[int] = None) -> None:
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        self._apply()

    @property
    def should_stop(self) -> bool:
        """True when the schedule asks the training loop to end before MAX_ITER."""
        return False

    def state_dict(self) -> Dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: Dict) -> None:
        unknown = set(state) - set(self.__dict__)
        if unknown:
            raise CheckpointError(f"{type(self).__name__}: the saved schedule state has keys {sorted(unknown)} this "
                                  "schedule does not know; was the checkpoint made with another SOLVER.SCHEDULE.TYPE?")
        self.__dict__.update(state)
        self._apply()


class WarmupMultiStepLR(_WarmupSchedule):
    """``decay = gamma ** bisect_right(milestones, it)``: the LR drops by ``gamma`` at each milestone."""

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 warmup_factor: float = 1.0 / 3, warmup_iters: int = 500, warmup_method: str = "linear"):
        if list(milestones) != sorted(milestones):
            raise ConfigError(f"SOLVER.STEPS must be increasing, got {tuple(milestones)}")
        self.milestones = list(milestones)
        self.gamma = float(gamma)
        super().__init__(optimizer, warmup_factor, warmup_iters, warmup_method)

    def decay(self) -> float:
        return self.gamma ** bisect_right(self.milestones, self.last_epoch)


class WarmupCosineLR(_WarmupSchedule):
    """``decay = 0.5 * (1 + cos(pi * it / max_iter))`` (SGDR without restarts), from BASE_LR to 0 at ``max_iter``."""

    def __init__(self, optimizer: Optimizer, max_iter: int, warmup_factor: float = 1.0 / 3, warmup_iters: int = 500,
                 warmup_method: str = "linear"):
        if max_iter <= 0:
            raise ConfigError(f"SOLVER.MAX_ITER must be positive for WarmupCosineLR, got {max_iter}")
        self.max_iter = int(max_iter)
        super().__init__(optimizer, warmup_factor, warmup_iters, warmup_method)

    def decay(self) -> float:
        progress = min(self.last_epoch, self.max_iter) / self.max_iter
        return 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupReduceLROnPlateau(_WarmupSchedule):
    """SGB's plateau schedule on a validation metric (higher is better): ``decay = factor ** stage_count``.

    At each call with a metric: a metric above ``best + threshold`` (absolute) becomes the best and clears the bad
    count, otherwise the bad count grows; while the cooldown counter is positive it is decremented and the bad count
    cleared (the counter starts at ``cooldown``, so the first ``cooldown`` validations never count as bad); when the bad
    count reaches ``patience`` the stage count grows by one, the cooldown restarts and the bad count is cleared.
    ``should_stop`` becomes True once ``stage_count >= max_decay_step`` (SGB ends training at the third decay;
    ``max_decay_step <= 0`` never stops).
    """

    def __init__(self, optimizer: Optimizer, factor: float = 0.5, warmup_factor: float = 1.0 / 3,
                 warmup_iters: int = 500, warmup_method: str = "linear", patience: int = 2, threshold: float = 1e-4,
                 cooldown: int = 1, max_decay_step: int = 7):
        self.factor = float(factor)
        self.patience = int(patience)
        self.threshold = float(threshold)
        self.cooldown = int(cooldown)
        self.max_decay_step = int(max_decay_step)
        self.stage_count = 0
        self.best = -1e12
        self.num_bad_epochs = 0
        self.under_cooldown = self.cooldown
        super().__init__(optimizer, warmup_factor, warmup_iters, warmup_method)

    def decay(self) -> float:
        return self.factor ** self.stage_count

    def step(self, metric: Optional[float] = None, epoch: Optional[int] = None) -> None:
        if metric is not None:
            self._observe(float(metric))
        super().step(epoch=epoch)

    def _observe(self, metric: float) -> None:
        if metric > self.best + self.threshold:
            self.best = metric
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.under_cooldown > 0:
            self.under_cooldown -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs >= self.patience:
            self.stage_count += 1
            self.under_cooldown = self.cooldown
            self.num_bad_epochs = 0
            logger.info("Validation metric has not improved for %d validations: LR decay %d (x%g)", self.patience,
                        self.stage_count, self.factor)

    @property
    def should_stop(self) -> bool:
        return 0 < self.max_decay_step <= self.stage_count
