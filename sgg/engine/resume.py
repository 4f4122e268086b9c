"""When a run in ``OUTPUT_DIR`` is resumed, and when it is refused; one training process per ``OUTPUT_DIR``.

A resume continues the run its checkpoint belongs to, so the config must agree with the checkpoint's own (resolved)
config on every key that defines the run: protocol, predictor, model shape, datasets, input, optimizer, learning rate
and schedule, precision. Only the keys below may differ: where files are, how often to log and save, test-time
settings, and the initial weights (the checkpoint's replace them). ``SEED`` is compared: it seeds the shuffle that a
resumed run replays. ``SOLVER.MAX_ITER`` may change only with ``SOLVER.EXTEND_RUN True``.
"""
from __future__ import annotations

import logging
import os
import socket
from typing import Any, Dict, List, Tuple

import yaml

from sgg.config import save_config
from sgg.config.sgg_config import _flatten
from sgg.utils.errors import RunError

logger = logging.getLogger(__name__)

MAY_DIFFER_KEYS = frozenset({
    "OUTPUT_DIR", "MODEL.DEVICE", "MODEL.WEIGHT", "MODEL.PRETRAINED_DETECTOR_CKPT", "MODEL.PRETRAINED_MODEL_CKPT",
    "GLOVE_DIR", "DETECTED_SGG_DIR", "PATHS_CATALOG", "DETERMINISTIC", "AMP_VERBOSE",
    "DATASETS.DATA_DIR", "DATASETS.CHECK_IMAGES", "DATASETS.TEST", "DATASETS.TO_TEST", "DATALOADER.NUM_WORKERS",
    "SOLVER.CHECKPOINT_PERIOD", "SOLVER.LOG_PERIOD", "SOLVER.PRINT_GRAD_FREQ", "SOLVER.PRE_VAL",
    "SOLVER.EXTEND_RUN", "SOLVER.MAX_ITER",  # MAX_ITER: checked on its own
})
MAY_DIFFER_PREFIXES = ("TEST.",)
_SHOW = 12  # differing keys listed before "... and N more"


def _flat_config(text: str) -> Dict[str, Any]:
    return _flatten(yaml.safe_load(text) or {})


def defining_differences(saved_text: str, cfg) -> List[Tuple[str, Any, Any]]:
    """(key, the run's value, the value now) for every run-defining key that differs. Keys only one side knows (a
    key added or removed between versions of the framework) are not compared."""
    saved, now = _flat_config(saved_text), _flat_config(cfg.dump())
    return [(key, saved[key], now[key]) for key in sorted(saved.keys() & now.keys())
            if saved[key] != now[key] and key not in MAY_DIFFER_KEYS and not key.startswith(MAY_DIFFER_PREFIXES)]


def check_resume(cfg, checkpoint: Dict[str, Any], path: str) -> None:
    """Raise a RunError when the checkpoint at ``path`` cannot be continued under ``cfg`` (module docstring)."""
    text = checkpoint.get("config")
    where = f"{os.path.join(cfg.OUTPUT_DIR, 'last_checkpoint')} -> {os.path.basename(path)}"
    if not isinstance(text, str):
        logger.warning("Resume from %s: the checkpoint holds no config, so nothing checks that this config "
                       "continues the same run", path)
        return
    iteration = int(checkpoint.get("iteration", 0))
    differences = defining_differences(text, cfg)
    if differences:
        shown = "\n".join(f"  {key}: {theirs!r} in the run, {ours!r} now" for key, theirs, ours in
                          differences[:_SHOW])
        more = f"\n  ... and {len(differences) - _SHOW} more" if len(differences) > _SHOW else ""
        raise RunError(f"{cfg.OUTPUT_DIR} holds a run at iteration {iteration} ({where}) whose config differs in "
                       f"{len(differences)} key(s) that define the run:\n{shown}{more}\nTrain into a new OUTPUT_DIR, "
                       f"or resume with the run's values (its config is stored in {path})")
    saved_max = _flat_config(text).get("SOLVER.MAX_ITER", cfg.SOLVER.MAX_ITER)
    new_max = cfg.SOLVER.MAX_ITER
    if new_max == saved_max:
        return
    if new_max < iteration:
        raise RunError(f"SOLVER.MAX_ITER {new_max} is below the iteration of the run's checkpoint ({iteration}, "
                       f"{where}): a run cannot be shortened below what it trained; train into a new OUTPUT_DIR")
    if not cfg.SOLVER.EXTEND_RUN:
        finished = " (finished)" if iteration >= saved_max else ""
        raise RunError(f"SOLVER.MAX_ITER is {new_max} but the run in {cfg.OUTPUT_DIR} was set to {saved_max} "
                       f"and is at iteration {iteration}{finished} ({where}). Set SOLVER.EXTEND_RUN True to "
                       f"continue it to {new_max} iterations, use SOLVER.MAX_ITER {saved_max} to resume it "
                       "unchanged, or train into a new OUTPUT_DIR")
    logger.info("SOLVER.EXTEND_RUN: the run's SOLVER.MAX_ITER changes from %d to %d (checkpoint at iteration %d)",
                saved_max, new_max, iteration)


def check_fresh_start(output_dir: str) -> None:
    """A run that starts afresh writes model_*.pth: refuse when ``output_dir`` holds some but no ``last_checkpoint``
    (deleted or lost), instead of overwriting another run's checkpoints."""
    names = sorted(n for n in os.listdir(output_dir) if n.startswith("model_") and n.endswith(".pth")) \
        if output_dir and os.path.isdir(output_dir) else []
    if names:
        shown = ", ".join(names[:_SHOW]) + (f" ... and {len(names) - _SHOW} more" if len(names) > _SHOW else "")
        raise RunError(f"{output_dir} holds checkpoints ({shown}) but no last_checkpoint, so this run would start "
                       f"afresh and overwrite them: to resume, write the name of the checkpoint to resume from into "
                       f"{os.path.join(output_dir, 'last_checkpoint')}; otherwise move them away or train into a new "
                       "OUTPUT_DIR")


LOCK_NAME = ".training.lock"


def lock_output_dir(output_dir: str):
    """Hold an exclusive lock on ``OUTPUT_DIR/.training.lock`` while the returned file stays open, so that a second
    process started on the same folder (a queue that reached a stage another process is still training, a run
    started twice) is refused instead of interleaving its checkpoints with the first's. The operating system
    releases the lock when the process ends, however it ends, so a killed run never leaves a stale lock. Returns
    None where ``fcntl`` is missing (Windows): no lock there."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, LOCK_NAME)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip() or "its pid is not recorded"
        handle.close()
        raise RunError(f"{output_dir} is in use: another process is training into it ({owner}; it holds {path}). "
                       "Wait for it to finish, or train into another OUTPUT_DIR") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle


def write_run_config(cfg, start_iter: int) -> str:
    """``OUTPUT_DIR/config.yaml`` once the run has started; a different earlier one is kept as
    ``config_until_{start_iter:07d}.yaml`` (the config the run had until that iteration). Returns the path."""
    path = os.path.join(cfg.OUTPUT_DIR, "config.yaml")
    if os.path.isfile(path):
        with open(path) as f:
            if f.read() == cfg.dump():
                return path
        kept = _free_name(os.path.join(cfg.OUTPUT_DIR, f"config_until_{start_iter:07d}"), ".yaml")
        os.replace(path, kept)
        logger.info("The previous %s is kept as %s", path, kept)
    return save_config(cfg, path)


def _free_name(stem: str, suffix: str) -> str:
    candidate, number = stem + suffix, 1
    while os.path.exists(candidate):
        candidate, number = f"{stem}.{number}{suffix}", number + 1
    return candidate
