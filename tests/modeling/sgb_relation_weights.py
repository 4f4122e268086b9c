"""Seeded weights for SGB-named state dicts: the rule the SGB relation-head golden fixtures were made with.

The fixtures store only key names and shapes; these tensors are regenerated from them. One ``torch.Generator``
seeded with ``seed`` walks the keys in sorted order and draws, per key:

* ``*.num_batches_tracked``: nothing (a zero int64 scalar);
* ``*.running_var``: ``0.5 + U(0, 1)`` (positive, as a variance must be);
* tensors of two or more dimensions: ``N(0, 1) / sqrt(fan_in)`` with fan_in the product of the trailing dimensions
  (keeps every layer's output of order one, so the comparison is not dominated by saturation);
* other vectors (biases, norms, running means): ``0.1 * N(0, 1)``.
"""
import math
from typing import Dict, Sequence

import torch


def seeded_sgb_weights(shapes: Dict[str, Sequence[int]], seed: int) -> Dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if key.endswith("num_batches_tracked"):
            weights[key] = torch.zeros(shape, dtype=torch.long)
        elif key.endswith("running_var"):
            weights[key] = 0.5 + torch.rand(shape, generator=generator)
        elif len(shape) >= 2:
            weights[key] = torch.randn(shape, generator=generator) / math.sqrt(math.prod(shape[1:]))
        else:
            weights[key] = 0.1 * torch.randn(shape, generator=generator)
    return weights
