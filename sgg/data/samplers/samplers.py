"""Batch samplers: aspect-ratio grouping and iteration-based (epoch-free) training, as maskrcnn-benchmark."""
from __future__ import annotations

from typing import Iterator, List, Sequence

from torch.utils.data import BatchSampler, Sampler

from sgg.utils.errors import DataError


class GroupedBatchSampler(BatchSampler):
    """Batches whose images share a group id (e.g. landscape vs portrait), in the order ``sampler`` gives.

    Leftover images of each group are batched together at the end unless ``drop_uneven``.
    """

    def __init__(self, sampler: Sampler, group_ids: Sequence[int], batch_size: int, drop_uneven: bool = False):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.sampler = sampler
        self.group_ids = list(group_ids)
        self.batch_size = batch_size
        self.drop_uneven = drop_uneven

    def __iter__(self) -> Iterator[List[int]]:
        buffers = {}
        for index in self.sampler:
            group = self.group_ids[index]
            buffer = buffers.setdefault(group, [])
            buffer.append(index)
            if len(buffer) == self.batch_size:
                yield list(buffer)
                buffer.clear()
        if not self.drop_uneven:
            for buffer in buffers.values():
                if buffer:
                    yield list(buffer)

    def __len__(self) -> int:
        counts = {}
        for index in self.sampler:
            counts[self.group_ids[index]] = counts.get(self.group_ids[index], 0) + 1
        full = sum(c // self.batch_size for c in counts.values())
        rest = 0 if self.drop_uneven else sum(1 for c in counts.values() if c % self.batch_size)
        return full + rest


class IterationBasedBatchSampler(BatchSampler):
    """Re-iterates ``batch_sampler`` until ``num_iterations`` batches were produced, starting at ``start_iter``.

    A DistributedSampler underneath gets ``set_epoch`` at every pass so each pass is shuffled differently.
    """

    def __init__(self, batch_sampler: BatchSampler, num_iterations: int, start_iter: int = 0):
        self.batch_sampler = batch_sampler
        self.num_iterations = num_iterations
        self.start_iter = start_iter

    def __iter__(self) -> Iterator[List[int]]:
        # Replay the batch order from iteration 0 and skip what was already trained on, so that a resumed run
        # sees exactly the batches an uninterrupted run would (only indices are drawn; no data is loaded).
        iteration = 0
        epoch = 0
        while iteration < self.num_iterations:
            inner = getattr(self.batch_sampler, "sampler", None)
            if hasattr(inner, "set_epoch"):
                inner.set_epoch(epoch)
            produced = False
            for batch in self.batch_sampler:
                produced = True
                iteration += 1
                if iteration > self.num_iterations:
                    return
                if iteration > self.start_iter:
                    yield batch
            if not produced:
                raise DataError("the training data produced no batch: the dataset is empty (check DATASETS.TRAIN, "
                                "DATASETS.NUM_IM and the dataset filters)")
            epoch += 1

    def __len__(self) -> int:
        return self.num_iterations - self.start_iter
