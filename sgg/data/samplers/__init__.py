from .samplers import GroupedBatchSampler, IterationBasedBatchSampler

__all__ = ["GroupedBatchSampler", "IterationBasedBatchSampler"]
