"""Process-group helpers that also work when torch.distributed is not initialised (one process)."""
from __future__ import annotations

import torch.distributed as dist

from .errors import RunError


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    if is_dist() and get_world_size() > 1:
        dist.barrier()


def all_gather(data):
    """Gather any picklable object from every process; a one-element list without a process group."""
    if get_world_size() == 1:
        return [data]
    out = [None] * get_world_size()
    dist.all_gather_object(out, data)
    return out


def get_local_rank() -> int:
    """The process's index on its machine (``LOCAL_RANK`` set by torchrun; 0 otherwise)."""
    import os

    return int(os.environ.get("LOCAL_RANK", "0"))


def init_distributed_from_env(device_type: str = "cpu", timeout_minutes: float = 30.0) -> bool:
    """Join the process group that ``torchrun`` describes in the environment (env:// rendezvous).

    NCCL when training on CUDA, gloo on the CPU. Returns True when more than one process takes part. A single process
    (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) creates no group, so single-process runs need no launcher.
    """
    import datetime
    import os

    import torch

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return False
    if is_dist():
        return True
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RunError(f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: launch multi-process runs with "
                       "`torchrun --nproc_per_node N tools/<tool>.py ...`")
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(get_local_rank())
    dist.init_process_group(backend=backend, init_method="env://",
                            timeout=datetime.timedelta(minutes=timeout_minutes))
    synchronize()
    # Tear the group down before the interpreter exits: a gloo group left alive at exit can abort the process
    # ("terminate called without an active exception") after all the work is done.
    import atexit

    atexit.register(shutdown_distributed)
    return True


def shutdown_distributed() -> None:
    """Wait for every process, then destroy the process group (no-op without one)."""
    if is_dist():
        try:
            synchronize()
        finally:
            dist.destroy_process_group()


def reduce_dict(values: dict, average: bool = True) -> dict:
    """All-reduce a dict of scalar tensors (same keys on every process); the mean over processes when ``average``."""
    import torch

    if get_world_size() == 1 or not values:
        return dict(values)
    names = sorted(values)
    stacked = torch.stack([values[k].detach().reshape(()).float() for k in names])
    dist.all_reduce(stacked)
    if average:
        stacked /= get_world_size()
    return {k: v for k, v in zip(names, stacked)}


def broadcast_object(obj, src: int = 0):
    """``obj`` as process ``src`` has it, on every process."""
    if get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
