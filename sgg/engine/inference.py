"""Inference over a dataset, sharded over processes and merged, detectron2-style (any model, any evaluator).

``run_inference`` puts the model in eval mode under ``torch.no_grad``, runs every batch, resizes each prediction
back to its image's original size (``dataset.get_img_info``), and gathers ``{dataset index: prediction}`` from all
processes on rank 0. ``inference_on_dataset`` then hands the merged predictions to an evaluator function and returns
its dict. Timing excludes the first batches (warm-up) and is logged per image and device, with an ETA while running.
"""
from __future__ import annotations

import datetime
import logging
import sys
import time
from typing import Callable, Dict, Optional

import torch
from torch import nn
from tqdm import tqdm

from sgg.utils import comm
from sgg.utils.errors import DataError

from .precision import autocast_context

logger = logging.getLogger(__name__)

NUM_WARMUP_BATCHES = 5
PROGRESS_LOG_SECONDS = 10.0


def dataset_name(dataset) -> str:
    return getattr(dataset, "name", type(dataset).__name__)


def _to_original_size(prediction, dataset, index: int):
    info = dataset.get_img_info(index)
    size = (int(info["width"]), int(info["height"]))
    if tuple(prediction.size) != size:
        prediction = prediction.resize(size)
    return prediction.to("cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_inference(model: nn.Module, data_loader, device: Optional[torch.device] = None, dtype: str = "float32",
                  pass_targets: bool = True,
                  consumer: Optional[Callable[[int, object], None]] = None) -> Dict[int, object]:
    """Predictions of this process's shard, merged over processes: ``{index: BoxList}`` on rank 0, ``{}`` elsewhere.

    ``pass_targets`` gives the model the GT targets as SGB does at test time (PredCls/SGCls need the GT boxes); a
    detector in eval mode ignores them. With ``consumer``, each prediction (original image size, on the CPU) is
    handed to ``consumer(index, prediction)`` as it comes and nothing is kept or gathered (streaming evaluation).
    """
    model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    device = device or next(model.parameters()).device
    dataset = data_loader.dataset
    name = dataset_name(dataset)
    total = len(data_loader)
    if len(dataset) == 0 or total == 0:
        raise DataError(f"inference: dataset {name} has no images (is the split empty after filtering, or "
                        "DATASETS.NUM_IM 0?)")
    world = comm.get_world_size()
    logger.info("Start inference on %s: %d images on %d process(es)", name, len(dataset), world)
    num_warmup = min(NUM_WARMUP_BATCHES, total - 1)
    was_training = model.training
    model.eval()
    predictions: Dict[int, object] = {}
    bar = None
    if comm.is_main_process() and sys.stderr.isatty():
        bar = tqdm(total=total, desc=f"inference {name}", dynamic_ncols=True, leave=False)
    start = timed_start = time.perf_counter()
    compute_time = 0.0
    timed_images = 0
    last_log = start
    with torch.no_grad():
        for step, (images, targets, indices) in enumerate(data_loader):
            if step == num_warmup:
                timed_start, compute_time, timed_images = time.perf_counter(), 0.0, 0
            images = images.to(device)
            targets = [t.to(device) for t in targets] if pass_targets else None
            _sync(device)
            tick = time.perf_counter()
            with autocast_context(device, dtype):
                outputs = model(images, targets)
            _sync(device)
            compute_time += time.perf_counter() - tick
            timed_images += len(indices)
            for index, output in zip(indices, outputs):
                output = _to_original_size(output, dataset, int(index))
                if consumer is not None:
                    consumer(int(index), output)
                else:
                    predictions[int(index)] = output
            if bar is not None:
                bar.update(1)
            now = time.perf_counter()
            if now - last_log > PROGRESS_LOG_SECONDS and step >= num_warmup:
                per_batch = (now - timed_start) / (step + 1 - num_warmup)
                eta = datetime.timedelta(seconds=int(per_batch * (total - step - 1)))
                logger.info("Inference %d/%d batches, %.4f s/batch, ETA %s", step + 1, total, per_batch, eta)
                last_log = now
    if bar is not None:
        bar.close()
    model.train(was_training)
    total_time = time.perf_counter() - timed_start
    timed_images = max(timed_images, 1)
    logger.info("Total inference time: %s (%.4f s / img per device, on %d devices)",
                datetime.timedelta(seconds=int(time.perf_counter() - start)), total_time / timed_images, world)
    logger.info("Total inference pure compute time: %.4f s / img per device (first %d batches excluded)",
                compute_time / timed_images, num_warmup)
    if consumer is not None:
        return {}
    return _gather(predictions, len(dataset), name)


def _gather(predictions: Dict[int, object], num_images: int, name: str) -> Dict[int, object]:
    shards = comm.all_gather(predictions)
    if not comm.is_main_process():
        return {}
    merged: Dict[int, object] = {}
    for shard in shards:
        merged.update(shard)  # a DistributedSampler pads with repeated images: same index, same prediction
    if len(merged) != num_images:
        logger.warning("inference on %s: predictions for %d of %d images", name, len(merged), num_images)
    return dict(sorted(merged.items()))


def inference_on_dataset(model: nn.Module, data_loader, evaluator_fn: Callable[[Dict[int, object], object], Dict],
                         device: Optional[torch.device] = None, dtype: str = "float32",
                         pass_targets: bool = True) -> Dict:
    """``evaluator_fn(predictions, dataset) -> dict`` on rank 0 over all processes' predictions; ``{}`` elsewhere."""
    predictions = run_inference(model, data_loader, device, dtype, pass_targets)
    if not comm.is_main_process():
        return {}
    return evaluator_fn(predictions, data_loader.dataset)
