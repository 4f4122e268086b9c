"""``MODEL.DEVICE`` -> a ``torch.device``, with a clear error when the device does not exist on this machine."""
from __future__ import annotations

import os
from typing import Optional

import torch

from sgg.config.sgg_config import ConfigError


def resolve_device(cfg, local_rank: Optional[int] = None) -> torch.device:
    """The device the model and batches go to.

    ``MODEL.DEVICE`` is ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. Under ``torchrun`` a bare ``"cuda"`` becomes
    ``cuda:<LOCAL_RANK>`` (``local_rank`` if given, else the ``LOCAL_RANK`` environment variable), so every process
    gets its own GPU. Raises ``RuntimeError`` naming the key when CUDA or the GPU index is not available.
    """
    name = str(cfg.MODEL.DEVICE).strip()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"MODEL.DEVICE {name!r} is not a device name; use 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"MODEL.DEVICE {name!r}: only 'cpu' and 'cuda[:N]' are supported")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(
            f"MODEL.DEVICE is {name!r} but no CUDA GPU is available (torch {torch.__version__}, {build}; "
            "torch.cuda.is_available() is False). Run with MODEL.DEVICE cpu, or install a CUDA build of PyTorch "
            "on a machine with an NVIDIA GPU.")
    index = device.index
    if index is None:
        if local_rank is None and "LOCAL_RANK" in os.environ:
            local_rank = int(os.environ["LOCAL_RANK"])
        index = local_rank if local_rank is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"MODEL.DEVICE {name!r} asks for GPU {index} but only {count} GPU(s) are visible "
                          "(check CUDA_VISIBLE_DEVICES and --nproc_per_node)")
    return torch.device("cuda", index)
