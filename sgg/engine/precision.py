"""Mixed precision: the ``torch.autocast`` context for ``DTYPE`` on a device, shared by training and inference."""
from __future__ import annotations

import contextlib

import torch


def autocast_context(device: torch.device, dtype: str):
    """``torch.autocast`` for DTYPE float16 / bfloat16 on CUDA and bfloat16 on the CPU; float16 on the CPU runs in
    float32 (float16 needs the GradScaler, which is CUDA's)."""
    if dtype == "float32" or (device.type != "cuda" and dtype == "float16"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if dtype == "float16" else torch.bfloat16)
