"""The bare training loop, detectron2-style: no config, no builders; ``sgg/engine/trainer.py`` builds its parts.

``SimpleTrainer.run_step`` is the whole iteration: data -> forward (a dict of named losses) -> sum -> backward ->
global grad-norm clip -> optimizer step. Everything else (LR schedule, validation, best and periodic checkpoints,
logging) is a hook (``sgg/engine/hooks.py``) run around it by ``TrainerBase.train``.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from typing import Dict, Iterable, List, Optional

import torch
from torch import nn

from sgg.solver import clip_grad_norm
from sgg.utils import comm
from sgg.utils.errors import DataError
from sgg.utils.metric_logger import MetricLogger

from .hooks import HookBase
from .precision import autocast_context

logger = logging.getLogger(__name__)


class TrainerBase:
    def __init__(self):
        self._hooks: List[HookBase] = []
        self.iter = self.start_iter = self.max_iter = 0
        self.completed_iter = 0
        self.stop_reason: Optional[str] = None
        self.failed = False
        self.interrupt_requested = False  # set by Ctrl-C (SIGINT); the loop stops after the current iteration
        self.interrupted = False  # the loop stopped for it
        self.meters = MetricLogger()
        self.latest_metrics: Dict[str, float] = {}  # validation results of the current iteration, if any
        self.state: Dict = {}  # hook state that goes into checkpoints (e.g. the best validation metric)

    def register_hooks(self, hooks: Iterable[Optional[HookBase]]) -> None:
        for hook in hooks:
            if hook is not None:
                hook.trainer = self
                self._hooks.append(hook)

    def request_stop(self, reason: str) -> None:
        """End the loop after the current iteration's hooks (e.g. the plateau schedule's last decay)."""
        self.stop_reason = reason

    def train(self, start_iter: int, max_iter: int) -> None:
        """Run iterations ``start_iter .. max_iter - 1``. Ctrl-C ends the loop after the current iteration and its
        hooks with ``interrupted`` set (the caller saves); a second Ctrl-C raises KeyboardInterrupt at once."""
        self.iter = self.start_iter = self.completed_iter = start_iter
        self.max_iter = max_iter
        logger.info("Starting training from iteration %d to %d", start_iter, max_iter)
        try:
            with self.sigint_stops_after_the_iteration():
                for hook in self._hooks:
                    hook.before_train()
                for self.iter in range(start_iter, max_iter):
                    self.latest_metrics = {}
                    for hook in self._hooks:
                        hook.before_step()
                    self.run_step()
                    self.completed_iter = self.iter + 1
                    for hook in self._hooks:
                        hook.after_step()
                    if self.stop_reason:
                        logger.info("Stopping at iteration %d: %s", self.completed_iter, self.stop_reason)
                        break
                    if self._interrupt_requested_anywhere():
                        self.interrupted = True
                        break
        except BaseException:
            self.failed = True
            raise
        finally:
            for hook in self._hooks:
                hook.after_train()

    @contextlib.contextmanager
    def sigint_stops_after_the_iteration(self):
        """A SIGINT handler that only sets ``interrupt_requested``: stopping between iterations leaves parameters,
        optimizer and schedule consistent (an exception inside ``optimizer.step`` would not). Processes forked
        inside (data loader workers) inherit it and ignore the signal."""
        if threading.current_thread() is not threading.main_thread():  # handlers live in the main thread only
            yield
            return
        owner = os.getpid()

        def request_stop(signum, frame):
            if os.getpid() != owner:  # a forked loader worker: the main process decides
                return
            if self.interrupt_requested:  # the second Ctrl-C: stop now, without a checkpoint
                raise KeyboardInterrupt
            self.interrupt_requested = True
            logger.warning("Ctrl-C: stopping after iteration %d with a checkpoint (Ctrl-C again stops at once, "
                           "without one)", self.iter + 1)

        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _interrupt_requested_anywhere(self) -> bool:
        """Every process stops after the same iteration, even if only some received the signal."""
        if comm.get_world_size() == 1:
            return self.interrupt_requested
        return any(comm.all_gather(self.interrupt_requested))

    def run_step(self):
        raise NotImplementedError


def _format_losses(values: Dict[str, torch.Tensor]) -> str:
    return ", ".join(f"{k}={float(v):.6g}" for k, v in values.items())


class SimpleTrainer(TrainerBase):
    """Trains ``model`` on batches ``(images, targets, indices)`` from ``data_iter``."""

    def __init__(self, model: nn.Module, data_iter, optimizer: torch.optim.Optimizer, device: torch.device,
                 grad_norm_clip: float = 0.0, dtype: str = "float32", scaler=None):
        super().__init__()
        self.model = model
        self.data_iter = data_iter
        self.optimizer = optimizer
        self.device = device
        self.grad_norm_clip = grad_norm_clip
        self.dtype = dtype
        self.scaler = scaler
        self.params = [p for group in optimizer.param_groups for p in group["params"]]

    def run_step(self):
        start = time.perf_counter()
        images, targets = self._next_batch()
        data_time = time.perf_counter() - start

        with autocast_context(self.device, self.dtype):
            loss_dict = self.model(images, targets)
        losses = self._check_losses(loss_dict)

        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(losses).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            losses.backward()
        grad_norm = clip_grad_norm(self.params, self.grad_norm_clip)
        if self.scaler is not None:  # skips the step itself when the fp16 gradients overflowed
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            if not math.isfinite(float(grad_norm)):
                raise FloatingPointError(
                    f"non-finite gradient norm ({float(grad_norm)}) at iteration {self.iter + 1} with finite losses "
                    f"({_format_losses(self.last_losses)}); the parameters were not updated and nothing was saved")
            self.optimizer.step()
        self.meters.update(data_time=data_time, grad_norm=float(grad_norm), **self.last_losses)

    def _next_batch(self):
        try:
            images, targets, _ = next(self.data_iter)
        except StopIteration:
            raise DataError(f"the training data loader ran out of batches at iteration {self.iter + 1} of "
                            f"{self.max_iter}; is the training dataset empty?") from None
        return images.to(self.device), [t.to(self.device) for t in targets]

    def _check_losses(self, loss_dict) -> torch.Tensor:
        """Sum the named losses; stop with every term's value when the (process-averaged) total is not finite."""
        if not isinstance(loss_dict, dict) or not loss_dict or not all(
                isinstance(v, torch.Tensor) for v in loss_dict.values()):
            raise TypeError(f"in training mode the model must return a non-empty dict of named loss tensors, got "
                            f"{type(loss_dict).__name__}")
        losses = sum(loss_dict.values())
        # Averaged over processes for logging; every process sees the same values, so all stop together.
        reduced = comm.reduce_dict({k: v.detach() for k, v in loss_dict.items()})
        total = sum(float(v) for v in reduced.values())
        self.last_losses = {"loss": total, **{k: float(v) for k, v in reduced.items()}}
        if not math.isfinite(total):
            local = _format_losses({k: v.detach() for k, v in loss_dict.items()})
            where = f" (this process: {local})" if comm.get_world_size() > 1 else ""
            raise FloatingPointError(
                f"non-finite loss at iteration {self.iter + 1}: loss={total}, {_format_losses(reduced)}{where}. "
                "Training stopped before the backward pass; no checkpoint was written from this iteration. Lower "
                "SOLVER.BASE_LR, check SOLVER.GRAD_NORM_CLIP, or resume from the last checkpoint")
        return losses
