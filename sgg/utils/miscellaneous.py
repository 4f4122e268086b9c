"""Small process-level helpers: directories, seeds, deterministic mode, memory, environment report."""
from __future__ import annotations

import logging
import os
import random
import sys
from typing import Optional

import numpy as np
import torch

logger = logging.getLogger(__name__)


def mkdir(path: str) -> str:
    if path:
        os.makedirs(path, exist_ok=True)
    return path


def seed_everything(seed: int, rank_offset: int = 0) -> int:
    """Seed python, numpy and torch (all devices). A negative ``seed`` draws one from the OS and logs it.

    ``rank_offset`` is added so that processes of a distributed run draw different random numbers (dropout,
    sampling) while the run as a whole stays reproducible. Returns the seed used before the offset.
    """
    if seed is None or seed < 0:
        seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        logger.info("SEED < 0: drew seed %d (set SEED %d to repeat this run)", seed, seed)
    value = (seed + rank_offset) % 2**32
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
    return seed


def set_deterministic(enabled: bool) -> None:
    """``DETERMINISTIC True``: deterministic kernels where PyTorch has them, a warning where it has none."""
    if not enabled:
        return
    # cuBLAS needs a fixed workspace to be reproducible (PyTorch's reproducibility notes).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def max_memory_mb(device: Optional[torch.device] = None) -> float:
    """Peak memory: CUDA allocator peak on a GPU, else the process's peak resident set size."""
    if device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
    except (ImportError, OSError):  # pragma: no cover - Windows
        return float("nan")


def collect_env_info() -> str:
    """Versions a bug report needs: python, torch (+CUDA), torchvision, numpy, the devices."""
    lines = [f"python: {sys.version.split()[0]}", f"torch: {torch.__version__}"]
    try:
        import torchvision

        lines.append(f"torchvision: {torchvision.__version__}")
    except ImportError:  # pragma: no cover
        lines.append("torchvision: not installed")
    lines.append(f"numpy: {np.__version__}")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        lines.append(f"CUDA: {torch.version.cuda}, devices: {names}")
    else:
        lines.append("CUDA: not available")
    lines.append(f"CPU threads: {torch.get_num_threads()}")
    return "\n".join(lines)
