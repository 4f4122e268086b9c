"""Hooks around ``run_step``, registered in this order (each iteration's state is final when it is checkpointed):

IterationTimer -> EvalHook (validation, best checkpoint) -> LRSchedulerHook (step with the validation metric; the
plateau stop) -> extra hooks -> TrainingClock -> PeriodicCheckpointer -> TrainLogger (text log, tqdm, TensorBoard,
metrics.json).
"""
from __future__ import annotations

import datetime
import json
import logging
import math
import os
import sys
import time
from typing import Callable, Dict, Optional

import torch
from tqdm import tqdm

from sgg.config.sgg_config import ConfigError
from sgg.utils import comm
from sgg.utils.durations import format_hours
from sgg.utils.miscellaneous import max_memory_mb

logger = logging.getLogger(__name__)


class HookBase:
    """Called around the loop; ``self.trainer`` is set on registration. ``trainer.iter`` is the 0-based iteration
    being run, so ``trainer.iter + 1`` iterations are complete in ``after_step``."""

    trainer = None  # the TrainerBase the hook is registered with

    def before_train(self):
        pass

    def after_train(self):
        pass

    def before_step(self):
        pass

    def after_step(self):
        pass


def _flatten_metrics(results: Dict, prefix: str = "") -> Dict[str, float]:
    """Numbers of a (possibly nested) result dict as ``{"a/b": value}``; non-numbers are dropped."""
    flat = {}
    for key, value in (results or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten_metrics(value, name + "/"))
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            flat[name] = float(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def _reference_lr(optimizer) -> float:
    """The LR of plain (non-bias, non-backbone) weights, else the first group's: the one the log shows."""
    for group in optimizer.param_groups:
        if "weight" in group.get("kinds", ()):
            return group["lr"]
    return optimizer.param_groups[0]["lr"]


def drop_records_to_be_rewritten(path: str, start_iter: int) -> int:
    """Remove from ``metrics.json`` the lines of iterations after ``start_iter`` (an interrupted run wrote them past
    its last checkpoint, and the resumed run writes them again), every iteration line when the run starts afresh,
    and a line cut short by a kill. Returns how many were removed."""
    if not os.path.isfile(path):
        return 0
    kept, dropped = [], 0
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            iteration = record.get("iteration") if isinstance(record, dict) else None
            if record is None or (iteration is not None and (start_iter == 0 or iteration > start_iter)):
                dropped += 1
            else:
                kept.append(line if line.endswith("\n") else line + "\n")
    if dropped:
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.writelines(kept)
        os.replace(tmp, path)
        logger.info("%s: removed %d lines of iterations after %d, which this run writes again", path, dropped,
                    start_iter)
    return dropped


class IterationTimer(HookBase):
    """Seconds per ``run_step`` (validation and checkpointing excluded) as the ``time`` meter."""

    def before_step(self):
        self._start = time.perf_counter()

    def after_step(self):
        self.trainer.meters.update(time=time.perf_counter() - self._start)


class EvalHook(HookBase):
    """Validation before training (``PRE_VAL``, fresh runs only), every ``period`` iterations and at the end;
    ``model_best.pth`` whenever ``metric_name`` improves. ``val_fn`` runs on every process; rank 0's result is
    shared so that all processes take the same decisions."""

    def __init__(self, val_fn: Callable, period: int, pre_val: bool, metric_name: str, checkpointer):
        self.val_fn = val_fn
        self.period = period
        self.pre_val = pre_val
        self.metric_name = metric_name
        self.checkpointer = checkpointer

    def _evaluate(self) -> Dict[str, float]:
        model = self.trainer.unwrapped_model
        start = time.perf_counter()
        results = self.val_fn(model)
        model.train()
        results = _flatten_metrics(comm.broadcast_object(results if comm.is_main_process() else None))
        if self.metric_name and self.metric_name not in results:
            raise ConfigError(f"validation metric {self.metric_name!r} (SOLVER.BEST_METRIC) is not among the "
                              f"validation results: {', '.join(sorted(results)) or 'none'}")
        shown = ", ".join(f"{k}: {v:.4f}" for k, v in sorted(results.items()))
        logger.info("Validation at iteration %d (%.1f s): %s", self.trainer.completed_iter,
                    time.perf_counter() - start, shown)
        self.trainer.latest_metrics = results
        return results

    def before_train(self):
        if self.pre_val and self.trainer.start_iter == 0:
            self._evaluate()

    def after_step(self):
        done = self.trainer.completed_iter
        if self.period <= 0 or not (done % self.period == 0 or done == self.trainer.max_iter):
            return
        results = self._evaluate()
        if not self.metric_name:
            return
        value = results[self.metric_name]
        state = self.trainer.state
        if math.isfinite(value) and value > state.get("best_metric", -math.inf):
            state.update(best_metric=value, best_iteration=done, best_metric_name=self.metric_name)
            self.checkpointer.save("model_best", done, tag_last=False)
            logger.info("New best %s = %.4f at iteration %d (model_best.pth)", self.metric_name, value, done)


class LRSchedulerHook(HookBase):
    """Steps the schedule after every iteration, with the validation metric when there is one; asks the loop to stop
    when the schedule says so (SGB's plateau rule: stop at ``MAX_DECAY_STEP`` decays)."""

    def __init__(self, scheduler, metric_name: str):
        self.scheduler = scheduler
        self.metric_name = metric_name

    def before_train(self):
        if hasattr(self.scheduler, "stage_count") and not self.metric_name:
            logger.warning("WarmupReduceLROnPlateau needs a validation metric (SOLVER.BEST_METRIC and validation "
                           "on); without one the LR never decays")

    def after_step(self):
        self.trainer.meters.update(lr=_reference_lr(self.scheduler.optimizer))
        metric = self.trainer.latest_metrics.get(self.metric_name) if self.metric_name else None
        self.scheduler.step(metric, epoch=self.trainer.completed_iter)
        if self.scheduler.should_stop:
            self.trainer.request_stop(f"the LR was decayed {self.scheduler.stage_count} times "
                                      f"(SOLVER.SCHEDULE.MAX_DECAY_STEP {self.scheduler.max_decay_step})")


class TrainingClock(HookBase):
    """The run's training seconds summed over its attempts, in ``trainer.state["train_seconds"]``, which every
    checkpoint carries: a run resumed from a checkpoint starts its count from what the attempts before it spent on
    the iterations that checkpoint keeps (iterations an interrupted attempt ran past its last checkpoint are run
    again, and counted once). Registered before the checkpointer so that a checkpoint counts its own iteration."""

    def before_train(self):
        self._prior = float(self.trainer.state.get("train_seconds", 0.0))
        self._start = time.perf_counter()

    def after_step(self):
        self.trainer.state["train_seconds"] = self._prior + time.perf_counter() - self._start


class PeriodicCheckpointer(HookBase):
    """``model_{iter:07d}.pth`` every ``period`` iterations, ``model_final.pth`` at the end (also after an early
    stop, unlike SGB, so that the test tools find it)."""

    def __init__(self, checkpointer, period: int):
        self.checkpointer = checkpointer
        self.period = period

    def after_step(self):
        done = self.trainer.completed_iter
        if done == self.trainer.max_iter or self.trainer.stop_reason:
            self.checkpointer.save("model_final", done)
        elif self.period > 0 and done % self.period == 0:
            self.checkpointer.save(f"model_{done:07d}", done)


class TrainLogger(HookBase):
    """Rank 0: a text line every ``period`` iterations (losses by name, LR, time, data time, ETA, max memory),
    a tqdm bar on a terminal, TensorBoard scalars in ``OUTPUT_DIR/tensorboard`` and one JSON line per log in
    ``OUTPUT_DIR/metrics.json``."""

    def __init__(self, output_dir: str, period: int, device: Optional[torch.device] = None):
        self.output_dir = output_dir
        self.period = max(int(period), 1)
        self.device = device
        self.enabled = comm.is_main_process()
        self._writer = None
        self._json = None
        self._bar = None

    def _tensorboard(self):
        if self._writer is None:
            try:
                # lazy: tensorboard takes most of a second to import, and a broken install only turns logging off
                from torch.utils.tensorboard import SummaryWriter

                # purge_step: TensorBoard hides what an earlier, interrupted run logged after this run's start
                start = self.trainer.start_iter
                self._writer = SummaryWriter(os.path.join(self.output_dir, "tensorboard"),
                                             purge_step=start + 1 if start > 0 else 0)
            except Exception as err:  # tensorboard missing or broken: keep training, say so once
                logger.warning("TensorBoard logging off: %s", err)
                self._writer = False
        return self._writer or None

    def before_train(self):
        self._start = time.perf_counter()
        self._prior = float(self.trainer.state.get("train_seconds", 0.0))  # earlier attempts (TrainingClock)
        if not self.enabled:
            return
        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, "metrics.json")
        drop_records_to_be_rewritten(path, self.trainer.start_iter)
        self._json = open(path, "a")
        if sys.stderr.isatty():
            self._bar = tqdm(total=self.trainer.max_iter, initial=self.trainer.start_iter, desc="train",
                             dynamic_ncols=True, leave=False)
        if self.trainer.latest_metrics:
            self._write_val(self.trainer.start_iter)

    def _write(self, record: Dict) -> None:
        self._json.write(json.dumps(record) + "\n")
        self._json.flush()

    def _write_val(self, done: int) -> None:
        metrics = {f"val/{k}": v for k, v in self.trainer.latest_metrics.items()}
        self._write({"iteration": done, **metrics})
        writer = self._tensorboard()
        if writer:
            for name, value in metrics.items():
                writer.add_scalar(name, value, done)

    def after_step(self):
        if not self.enabled:
            return
        trainer = self.trainer
        done = trainer.completed_iter
        meters = trainer.meters
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{meters.loss.latest:.4f}")
        if trainer.latest_metrics:
            self._write_val(done)
        if not (done % self.period == 0 or done == trainer.max_iter or done == trainer.start_iter + 1
                or trainer.stop_reason):
            return
        eta = meters.time.median * (trainer.max_iter - done)
        memory = max_memory_mb(self.device)
        loss_names = ["loss"] + sorted(k for k in trainer.last_losses if k != "loss")
        line = (f"eta: {datetime.timedelta(seconds=int(eta))}  iter: {done}/{trainer.max_iter}  "
                f"{meters.format(loss_names)}  lr: {meters.lr.latest:.6g}  "
                f"time: {meters.time.median:.4f}  data: {meters.data_time.median:.4f}  "
                f"grad_norm: {meters.grad_norm.median:.4f}  max mem: {memory:.0f} MB")
        if self._bar is not None:
            self._bar.write(line)
            logger.debug(line)
        else:
            logger.info(line)
        scalars = {**{f"train/{k}": trainer.last_losses[k] for k in loss_names},
                   "train/lr": meters.lr.latest, "train/grad_norm": meters.grad_norm.latest,
                   "time/iteration": meters.time.latest, "time/data": meters.data_time.latest,
                   "time/eta_seconds": eta, "memory/max_mb": memory}
        self._write({"iteration": done, **{k: trainer.last_losses[k] for k in loss_names},
                     "lr": meters.lr.latest, "grad_norm": meters.grad_norm.latest, "time": meters.time.latest,
                     "data_time": meters.data_time.latest, "eta_seconds": eta, "max_mem_mb": memory})
        writer = self._tensorboard()
        if writer:
            for name, value in scalars.items():
                writer.add_scalar(name, value, done)

    def after_train(self):
        trainer = self.trainer
        this_run = time.perf_counter() - self._start
        total = self._prior + this_run
        if not trainer.failed and self._prior > 0:  # resumed: the whole run's time, then this attempt's share
            logger.info("Total training time: %s (%.4f s / it) over iterations 1-%d, of which this attempt "
                        "trained %d-%d in %s", format_hours(total), total / max(trainer.completed_iter, 1),
                        trainer.completed_iter, trainer.start_iter + 1, trainer.completed_iter,
                        format_hours(this_run))
        elif not trainer.failed:
            iters = trainer.completed_iter - trainer.start_iter
            unknown = (f" for iterations {trainer.start_iter + 1}-{trainer.completed_iter} only: the checkpoint "
                       "this attempt resumed from records no training time") if trainer.start_iter > 0 else ""
            logger.info("Total training time: %s (%.4f s / it)%s", format_hours(total), total / max(iters, 1),
                        unknown)
        if self._bar is not None:
            self._bar.close()
        if self._json is not None:
            self._json.close()
        if self._writer:
            self._writer.close()
