"""The config-driven trainer: builds the optimizer, schedule, AMP scaler, checkpointer, data loader and hooks from
the config, resumes or loads weights, and runs the loop of ``sgg/engine/train_loop.py`` (detector pretraining,
relation training, the one-stage model)."""
from __future__ import annotations

import inspect
import json
import logging
import os
from typing import Callable, Dict, Iterable, List, Optional

import torch
from torch import nn

from sgg.data.build import build_data_loader
from sgg.modeling.model_info import describe_model, parameter_summary, triplet_cap
from sgg.solver import make_lr_scheduler, make_optimizer
from sgg.utils import comm
from sgg.utils.checkpoint import Checkpointer, remove_orphan_temporaries
from sgg.utils.errors import DataError

from . import hooks
from .defaults import resolve_device
from .freeze import freeze_by_patterns
from .hooks import HookBase
from .resume import check_fresh_start, check_resume, lock_output_dir, write_run_config
from .train_loop import SimpleTrainer

logger = logging.getLogger(__name__)


def write_model_info(cfg, model: nn.Module) -> Dict:
    """``OUTPUT_DIR/model_info.json``: encoder / decoder names, parameter counts, batch size, device and the most
    triplets per image the model can rank (read by tools/run_benchmark.py)."""
    info = dict(describe_model(cfg), **parameter_summary(model), ims_per_batch=int(cfg.SOLVER.IMS_PER_BATCH),
                world_size=comm.get_world_size(), device=str(resolve_device(cfg)),
                max_triplets_per_image=triplet_cap(cfg))
    logger.info("Parameters: %(total_parameters)d total, %(trainable_parameters)d trainable, "
                "%(backbone_parameters)d in the backbone", info)
    if comm.is_main_process() and cfg.OUTPUT_DIR:
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        with open(os.path.join(cfg.OUTPUT_DIR, "model_info.json"), "w") as f:
            json.dump(info, f, indent=1)
    return info


class TrainingInterrupted(SystemExit):
    """Training stopped by Ctrl-C; the message was logged. Exit code 130 (the shell's code for SIGINT), no
    traceback."""

    def __init__(self):
        super().__init__(130)


class Trainer:
    """Config-driven training: optimizer, schedule, AMP, freezing, DDP, checkpoints, validation and logging.

    ``val_fn(model) -> dict`` runs validation on every process and returns the metrics (on rank 0 at least);
    ``default_metric`` names the one that picks ``model_best.pth`` and drives the plateau schedule when
    ``SOLVER.BEST_METRIC`` is empty. ``build_train_loader(start_iter)`` defaults to ``build_data_loader``.
    """

    def __init__(self, cfg, model: nn.Module, val_fn: Optional[Callable[[nn.Module], Dict]] = None,
                 default_metric: str = "", label_names=None,
                 build_train_loader: Optional[Callable[[int], Iterable]] = None,
                 extra_hooks: Iterable[HookBase] = ()):
        self.cfg = cfg
        self.device = resolve_device(cfg)
        self.model = model.to(self.device)
        self.distributed = comm.get_world_size() > 1
        if cfg.SOLVER.FREEZE_PATTERNS:
            freeze_by_patterns(model, cfg.SOLVER.FREEZE_PATTERNS)
        self.optimizer = make_optimizer(cfg, model)
        self.scheduler = make_lr_scheduler(cfg, self.optimizer)
        self.scaler = None
        if self.device.type == "cuda" and cfg.DTYPE == "float16":
            self.scaler = torch.amp.GradScaler("cuda")
        elif self.device.type != "cuda" and cfg.DTYPE == "float16":
            logger.info("DTYPE float16 needs CUDA's GradScaler: training in float32 on %s (bfloat16 works on %s)",
                        self.device, self.device)
        self.checkpointer = Checkpointer(model, self.optimizer, self.scheduler, self.scaler, cfg.OUTPUT_DIR,
                                         cfg=cfg, label_names=label_names)
        self.val_fn = val_fn
        self.metric_name = cfg.SOLVER.BEST_METRIC or default_metric
        self.build_train_loader = build_train_loader or self._default_train_loader
        self.extra_hooks = list(extra_hooks)
        self.start_iter = 0
        self._resumed: Optional[Dict] = None
        self._lock = None  # OUTPUT_DIR's training lock, from resume_or_load to the end of train

    def _default_train_loader(self, start_iter: int):
        return build_data_loader(self.cfg, "train", is_distributed=self.distributed, start_iter=start_iter)

    def resume_or_load(self, resume: bool = True) -> int:
        """Resume from ``OUTPUT_DIR/last_checkpoint`` if it exists (everything, exactly; a RunError when the config
        does not continue that run, ``check_resume``), else load ``MODEL.WEIGHT`` (weights only) if set; a fresh start
        into an ``OUTPUT_DIR`` holding checkpoints without ``last_checkpoint`` is a RunError. Temporaries of a killed
        save are removed first. Another process training into the same ``OUTPUT_DIR`` is a RunError
        (``lock_output_dir``). Returns the iteration training starts from."""
        if self.checkpointer.save_to_disk and self.cfg.OUTPUT_DIR and self._lock is None:
            self._lock = lock_output_dir(self.cfg.OUTPUT_DIR)
        try:
            return self._resume_or_load(resume)
        except BaseException:
            self.release_output_dir()
            raise

    def release_output_dir(self) -> None:
        """Let another process train into ``OUTPUT_DIR`` (done by ``train`` when it ends)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _resume_or_load(self, resume: bool) -> int:
        if self.checkpointer.save_to_disk:
            remove_orphan_temporaries(self.cfg.OUTPUT_DIR)
        if resume and self.checkpointer.has_checkpoint():
            last = self.checkpointer.read_last()
            check_resume(self.cfg, last[1], last[0])
            self._resumed = self.checkpointer.resume(last)
            self.start_iter = int(self._resumed.get("iteration", 0))
            if hasattr(self.scheduler, "max_iter"):  # a cosine schedule follows an extended SOLVER.MAX_ITER
                self.scheduler.max_iter = self.cfg.SOLVER.MAX_ITER
                self.scheduler.step(epoch=self.scheduler.last_epoch)
            return self.start_iter
        check_fresh_start(self.cfg.OUTPUT_DIR)
        if self.cfg.MODEL.WEIGHT and not self.cfg.MODEL.WEIGHT.startswith("catalog://"):
            # SGB's catalog:// names are ImageNet trunks, which the backbone builder handles (never downloaded)
            self.checkpointer.load_weights(self.cfg.MODEL.WEIGHT, key="MODEL.WEIGHT")
            self.start_iter = 0
        return self.start_iter

    def _wrap_ddp(self) -> nn.Module:
        if not self.distributed:
            return self.model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # Buffers are synchronised once at construction, not at every forward (SGB's broadcast_buffers=False);
        # newer PyTorch names that switch forward_sync_buffers.
        ddp_args = inspect.signature(nn.parallel.DistributedDataParallel).parameters
        switch = "forward_sync_buffers" if "forward_sync_buffers" in ddp_args else "broadcast_buffers"
        no_sync = {switch: False}
        return nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids,
                                                   find_unused_parameters=self.cfg.SOLVER.FIND_UNUSED_PARAMETERS,
                                                   **no_sync)

    def build_hooks(self) -> List[HookBase]:
        solver = self.cfg.SOLVER
        eval_hook = None
        if self.val_fn is not None and (solver.TO_VAL or solver.PRE_VAL):
            eval_hook = hooks.EvalHook(self.val_fn, solver.VAL_PERIOD if solver.TO_VAL else 0, solver.PRE_VAL,
                                       self.metric_name, self.checkpointer)
        return [hooks.IterationTimer(), eval_hook, hooks.LRSchedulerHook(self.scheduler, self.metric_name),
                *self.extra_hooks, hooks.TrainingClock(),
                hooks.PeriodicCheckpointer(self.checkpointer, solver.CHECKPOINT_PERIOD),
                hooks.TrainLogger(self.cfg.OUTPUT_DIR, solver.LOG_PERIOD, self.device)]

    def train(self) -> SimpleTrainer:
        try:
            return self._train()
        finally:
            self.release_output_dir()

    def _train(self) -> SimpleTrainer:
        max_iter = self.cfg.SOLVER.MAX_ITER
        if self.start_iter >= max_iter or self.scheduler.should_stop:
            logger.info("Nothing to train: the checkpoint is at iteration %d (SOLVER.MAX_ITER %d)%s", self.start_iter,
                        max_iter, ", and the plateau schedule has stopped" if self.scheduler.should_stop else "")
            return None
        loader = self.build_train_loader(self.start_iter)
        dataset = getattr(loader, "dataset", None)
        if dataset is not None and len(dataset) == 0:
            raise DataError(f"the training dataset {getattr(dataset, 'name', '')} is empty: no image to train on "
                            f"(check DATASETS.TRAIN {tuple(self.cfg.DATASETS.TRAIN)}, DATASETS.NUM_IM and the "
                            "dataset filters)")
        if self.checkpointer.label_names is None and dataset is not None:
            names = {k: list(getattr(dataset, k)) for k in ("ind_to_classes", "ind_to_predicates")
                     if hasattr(dataset, k)}
            self.checkpointer.label_names = names or None
        if self._resumed is not None:
            self.checkpointer.keep_final_under_iteration_name()  # an extended finished run keeps its final model
        if comm.is_main_process() and self.cfg.OUTPUT_DIR:
            logger.info("Resolved config saved to %s", write_run_config(self.cfg, self.start_iter))
        write_model_info(self.cfg, self.model)
        loop = SimpleTrainer(self._wrap_ddp(), None, self.optimizer, self.device, self.cfg.SOLVER.GRAD_NORM_CLIP,
                             self.cfg.DTYPE, self.scaler)
        loop.config = self.cfg
        loop.unwrapped_model = self.model
        if self._resumed is not None:
            loop.state.update(self._resumed.get("trainer_state") or {})
        self.checkpointer.extra_state = loop.state
        loop.register_hooks(self.build_hooks())
        # Installed before the loader starts its workers: forked workers inherit the handler, so the Ctrl-C that a
        # terminal sends to the whole process group does not kill them mid-batch.
        with loop.sigint_stops_after_the_iteration():
            loop.data_iter = iter(loader)
            if self._resumed is not None:
                # After creating the loader iterator, which draws a seed from the torch RNG: the run then continues
                # with exactly the random numbers the uninterrupted run had after the checkpointed iteration.
                Checkpointer.restore_rng(self._resumed)
            self.model.train()
            try:
                loop.train(self.start_iter, max_iter)
            except KeyboardInterrupt:
                logger.error("Interrupted during iteration %d: no checkpoint saved for it; %s", loop.iter + 1,
                             self._resume_point())
                raise TrainingInterrupted() from None
        if loop.interrupted:
            self._save_interrupted(loop)
        return loop

    def _resume_point(self) -> str:
        if not self.checkpointer.has_checkpoint():
            return "there is no checkpoint yet: the next run starts afresh"
        return f"the next run resumes from {self.checkpointer.get_checkpoint_file()}"

    def _save_interrupted(self, loop: SimpleTrainer) -> None:
        """After Ctrl-C between iterations: a checkpoint of the last completed one (unless the periodic one is it),
        then a one-line message and exit code 130."""
        done = loop.completed_iter
        if done == loop.start_iter:
            logger.warning("Interrupted before iteration %d completed: nothing new to save; %s", done + 1,
                           self._resume_point())
        else:
            if self.checkpointer.last_saved_iteration != done:
                self.checkpointer.save(f"model_{done:07d}", done)
            logger.warning("Interrupted after iteration %d of %d: saved; run the same command to resume from %s",
                           done, loop.max_iter, self.checkpointer.get_checkpoint_file())
        raise TrainingInterrupted()
