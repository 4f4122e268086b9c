"""Self-contained checkpoints: save, resume exactly, or load weights only, with errors that say what does not fit.

A checkpoint file (``model_{iter:07d}.pth``, ``model_final.pth``, ``model_best.pth`` in ``OUTPUT_DIR``) is a dict::

    model, optimizer, scheduler, scaler   state dicts (the last three absent when not used)
    iteration                              iterations completed
    config                                 the resolved config as yaml text
    label_names                            whatever the caller passed (e.g. {"classes": [...], "predicates": [...]})
    rng_states                             python / numpy / torch RNG states of every process (for exact resume)

Files are written to a temporary name and renamed, so a crash never leaves a half-written checkpoint, and the file
``last_checkpoint`` names the latest one by a path relative to ``OUTPUT_DIR`` so a moved or downloaded output folder
still resumes (SGB wrote absolute paths; PROTOCOL.md section 6, FAQ 1). Everything stored is plain tensors, numbers,
strings and containers, so loading uses ``torch.load(weights_only=True)`` and never runs pickled code.
"""
from __future__ import annotations

import logging
import os
import random
import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from sgg.utils import comm
from sgg.utils.errors import CheckpointError, one_line

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last_checkpoint"


class CheckpointMissingError(CheckpointError, FileNotFoundError):
    """A checkpoint file (or the one ``last_checkpoint`` names) does not exist; still a FileNotFoundError."""


class CheckpointUnreadableError(CheckpointError, RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; still a RuntimeError, as it was."""

_SHOW = 10  # keys listed in an error or warning before "... and N more"


# ----------------------------------------------------------------------------------------------------------- RNG
def capture_rng_state() -> Dict[str, Any]:
    """This process's RNG states in a form ``torch.load(weights_only=True)`` accepts."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------------- file access
def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` to ``path.tmp.<pid>``, then rename: a crash never leaves a half-written ``path``. A failed
    write (disk full, read-only folder) is a CheckpointError naming ``path``; ``path`` is then unchanged."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch reports write failures as RuntimeError
        raise CheckpointError(f"cannot write checkpoint {path}: {type(err).__name__}: {err}. Is the disk full or the "
                              "folder read-only? The previous checkpoints are unchanged") from err
    finally:
        _remove_quietly(tmp)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:  # already renamed, or never written
        pass


_TEMPORARY = re.compile(r"\.tmp\.(\d+)$")  # atomic writes' temporary names end in .tmp.<pid of the writer>


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():  # this process is not writing yet: a file of ours is left from an earlier save
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to another user, or signals are unsupported: assume it is writing
        return True
    return True


def remove_orphan_temporaries(folder: str) -> List[str]:
    """Delete the ``*.tmp.<pid>`` files that a killed save left in ``folder`` (a kill between ``torch.save`` and the
    rename); only those whose writer is no longer running here, so that a live save of another process is never
    touched. Returns the removed names."""
    removed = []
    for name in sorted(os.listdir(folder)) if folder and os.path.isdir(folder) else []:
        match = _TEMPORARY.search(name)
        if match and not _process_alive(int(match.group(1))):
            _remove_quietly(os.path.join(folder, name))
            removed.append(name)
    if removed:
        logger.info("Removed %d temporary files left by an interrupted save in %s: %s", len(removed), folder,
                    ", ".join(removed))
    return removed


def load_checkpoint_file(path: str, key: str = "checkpoint") -> Dict[str, Any]:
    """Read a checkpoint (ours, SGB's ``{"model": ...}`` or a bare state dict) as a dict with a ``"model"`` entry.

    ``key`` names where the path came from (``MODEL.WEIGHT``, ``last_checkpoint`` ...) for the error messages.
    """
    if not path:
        raise CheckpointMissingError(f"{key} is empty: give the path of a checkpoint file")
    if not os.path.isfile(path):
        raise CheckpointMissingError(f"{key}: checkpoint file {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise CheckpointUnreadableError(
            f"{key}: cannot read checkpoint file {path}: {type(err).__name__}: {one_line(err)}. It must be a file "
            "written by torch.save holding a state dict or a dict with a 'model' entry (only tensors, numbers and "
            "strings are loaded)") from None
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        checkpoint = dict(data)
    elif isinstance(data, dict) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
        checkpoint = {"model": data}
    else:
        raise CheckpointUnreadableError(
            f"{key}: checkpoint file {path} holds neither a state dict nor a dict with a 'model' state dict (found "
            f"{type(data).__name__} with keys {sorted(data)[:_SHOW] if isinstance(data, dict) else '-'})")
    checkpoint["model"] = _strip_prefix(checkpoint["model"], "module.")
    return checkpoint


def _strip_prefix(state_dict: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """Drop the ``module.`` that (Distributed)DataParallel puts in front of every key (SGB saved it so)."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


def _listing(keys: List[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f" ... and {len(keys) - _SHOW} more" if len(keys) > _SHOW else "")


def compare_state_dicts(model_sd, loaded_sd) -> Tuple[List[str], List[str], List[str]]:
    """(missing keys, unexpected keys, "key: checkpoint shape vs model shape" for keys whose shapes differ)."""
    missing = sorted(k for k in model_sd if k not in loaded_sd)
    unexpected = sorted(k for k in loaded_sd if k not in model_sd)
    mismatched = sorted(f"{k}: checkpoint {tuple(loaded_sd[k].shape)} vs model {tuple(model_sd[k].shape)}"
                        for k in model_sd if k in loaded_sd and tuple(loaded_sd[k].shape) != tuple(model_sd[k].shape))
    return missing, unexpected, mismatched


def _architecture_note(checkpoint: Dict[str, Any], cfg) -> str:
    """Which backbone / meta-architecture the checkpoint was trained with versus the current config."""
    text = checkpoint.get("config")
    if not isinstance(text, str) or cfg is None:
        return ""
    try:
        import yaml

        saved = yaml.safe_load(text)["MODEL"]
        parts = []
        for group, leaf in (("", "META_ARCHITECTURE"), ("BACKBONE", "CONV_BODY")):
            theirs = saved.get(group, {}).get(leaf) if group else saved.get(leaf)
            ours = getattr(cfg.MODEL, group)[leaf] if group else cfg.MODEL[leaf]
            if theirs is not None and theirs != ours:
                name = f"MODEL.{group + '.' if group else ''}{leaf}"
                parts.append(f"{name} is {theirs!r} in the checkpoint but {ours!r} in the config")
        return (" (" + "; ".join(parts) + ")") if parts else ""
    except Exception:  # a foreign or damaged config text only loses the hint
        return ""


def _foreign_predictor(checkpoint: Dict[str, Any], model_sd, cfg) -> str:
    """An error text when a relation checkpoint holds another relation predictor than the config's (e.g. a Motif CE
    checkpoint as MODEL.WEIGHT for LinkNet fine-tuning): its predictor weights would be silently dropped."""
    prefix = "relation_head.predictor."
    theirs_keys = {k for k in checkpoint["model"] if k.startswith(prefix)}
    text = checkpoint.get("config")
    if cfg is None or not theirs_keys or not isinstance(text, str) or not any(k.startswith(prefix) for k in model_sd):
        return ""
    try:
        import yaml

        theirs = yaml.safe_load(text)["MODEL"]["ROI_RELATION_HEAD"]["PREDICTOR"]
    except Exception:  # a foreign or damaged config text: the key comparison still reports what does not fit
        return ""
    ours = cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR
    if theirs == ours or not theirs_keys - set(model_sd):
        return ""
    return (f"its relation predictor is {theirs!r} (MODEL.ROI_RELATION_HEAD.PREDICTOR in the checkpoint's config) but "
            f"this model's is {ours!r}: start from a checkpoint of the same predictor (e.g. a CE-trained {ours} run), "
            f"or use MODEL.PRETRAINED_DETECTOR_CKPT to take only the detector")


# ---------------------------------------------------------------------------------------------------- checkpointer
class Checkpointer:
    """Saves and restores the training state in ``save_dir``; only the process with ``save_to_disk`` writes.

    ``save`` must be called on every process of a distributed run (it gathers each process's RNG state).
    """

    def __init__(self, model: torch.nn.Module, optimizer=None, scheduler=None, scaler=None, save_dir: str = "",
                 save_to_disk: Optional[bool] = None, cfg=None, label_names: Any = None):
        self.model = model.module if hasattr(model, "module") else model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
        self.save_dir = save_dir
        self.save_to_disk = comm.is_main_process() if save_to_disk is None else save_to_disk
        self.cfg = cfg
        self.label_names = label_names
        self.extra_state: Dict[str, Any] = {}  # the trainer's hook state (best metric ...), saved as trainer_state
        self.last_saved_iteration: Optional[int] = None  # of the latest save tagged in last_checkpoint

    # ------------------------------------------------------------------------------------------------- save
    def save(self, name: str, iteration: int, tag_last: bool = True, **extra) -> Optional[str]:
        """Write ``save_dir/name.pth``; ``tag_last`` makes it the one a resume starts from. Returns the path."""
        self._check_finite(name, iteration)  # on every process, so that all of them stop together
        rng_states = comm.all_gather(capture_rng_state())
        if tag_last:
            self.last_saved_iteration = int(iteration)
        if not (self.save_to_disk and self.save_dir):
            return None
        data = {"model": self.model.state_dict(), "iteration": int(iteration), "rng_states": rng_states,
                "world_size": comm.get_world_size(), "label_names": self.label_names,
                "trainer_state": dict(self.extra_state)}
        if self.cfg is not None:
            data["config"] = self.cfg.dump()
        for key, obj in (("optimizer", self.optimizer), ("scheduler", self.scheduler), ("scaler", self.scaler)):
            if obj is not None:
                data[key] = obj.state_dict()
        data.update(extra)
        path = os.path.join(self.save_dir, f"{name}.pth")
        try:
            os.makedirs(self.save_dir, exist_ok=True)
        except OSError as err:
            raise CheckpointError(f"cannot write checkpoint {path}: cannot create its folder: {err}") from err
        atomic_torch_save(data, path)
        if tag_last:
            self._tag_last_checkpoint(os.path.basename(path))
        logger.info("Saved checkpoint %s (iteration %d)", path, iteration)
        return path

    def _check_finite(self, name: str, iteration: int) -> None:
        bad = [k for k, v in self.model.state_dict().items()
               if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
        if bad:
            raise FloatingPointError(f"not saving checkpoint {name} at iteration {iteration}: non-finite values in "
                                     f"{len(bad)} tensors: {_listing(bad)}")

    def _tag_last_checkpoint(self, relative_name: str) -> None:
        path = os.path.join(self.save_dir, LAST_CHECKPOINT)
        tmp = f"{path}.tmp.{os.getpid()}"
        try:
            with open(tmp, "w") as f:
                f.write(relative_name)
            os.replace(tmp, path)
        except OSError as err:
            _remove_quietly(tmp)
            raise CheckpointError(f"cannot write {path} (naming {relative_name}, which was saved): {err}") from err

    # ------------------------------------------------------------------------------------------------- resume
    def has_checkpoint(self) -> bool:
        return bool(self.save_dir) and os.path.exists(os.path.join(self.save_dir, LAST_CHECKPOINT))

    def get_checkpoint_file(self) -> str:
        """The file ``last_checkpoint`` names: relative to ``save_dir``; an absolute path from another machine falls
        back to the same file name in ``save_dir``."""
        tag = os.path.join(self.save_dir, LAST_CHECKPOINT)
        with open(tag) as f:
            name = f.read().strip()
        if not name:
            raise CheckpointUnreadableError(f"{tag} is empty: delete it to start afresh, or write the checkpoint file "
                                            "name in it")
        path = name if os.path.isabs(name) else os.path.join(self.save_dir, name)
        if not os.path.isfile(path) and os.path.isabs(name):
            local = os.path.join(self.save_dir, os.path.basename(name))
            if os.path.isfile(local):
                return local
        if not os.path.isfile(path):
            raise CheckpointMissingError(f"{tag} names checkpoint {name}, but {path} does not exist: restore the "
                                         f"file, or delete {tag} to start afresh")
        return path

    def read_last(self) -> Tuple[str, Dict[str, Any]]:
        """(path, checkpoint dict) of the file ``last_checkpoint`` names."""
        path = self.get_checkpoint_file()
        return path, load_checkpoint_file(path, key=os.path.join(self.save_dir, LAST_CHECKPOINT))

    def resume(self, last: Optional[Tuple[str, Dict[str, Any]]] = None) -> Dict[str, Any]:
        """Restore model, optimizer, scheduler, scaler from ``last_checkpoint`` (or ``last``, what ``read_last``
        returned); returns the checkpoint dict.

        The RNG states are not applied here: the caller restores them (``restore_rng``) once the data loader exists,
        because creating a loader iterator draws from the torch RNG.
        """
        path, checkpoint = last or self.read_last()
        self._load_model(checkpoint, path, strict=True, source="resume")
        for key, obj in (("optimizer", self.optimizer), ("scheduler", self.scheduler), ("scaler", self.scaler)):
            if obj is None:
                continue
            if key in checkpoint:
                obj.load_state_dict(checkpoint[key])
            else:
                logger.warning("Resume: %s has no %s state; it starts fresh", path, key)
        logger.info("Resumed from %s at iteration %d", path, checkpoint.get("iteration", 0))
        return checkpoint

    def keep_final_under_iteration_name(self) -> Optional[str]:
        """Before a finished run is extended: rename the ``model_final.pth`` that ``last_checkpoint`` names to
        ``model_{iteration:07d}.pth`` and point ``last_checkpoint`` at it, so that the extended run's own final
        checkpoint never overwrites it. Returns the new path (None when the last checkpoint is not a final one)."""
        if not self.save_to_disk:  # the writing process renames; the others never read the file again
            return None
        path = self.get_checkpoint_file()
        if os.path.basename(path) != "model_final.pth":
            return None
        iteration = int(load_checkpoint_file(path).get("iteration", 0))
        kept = os.path.join(self.save_dir, f"model_{iteration:07d}.pth")
        if os.path.exists(kept):
            raise CheckpointError(f"cannot keep the finished run's {path} under its iteration name: {kept} exists "
                                  "already; move one of them away")
        os.replace(path, kept)
        self._tag_last_checkpoint(os.path.basename(kept))
        logger.info("The finished run's model_final.pth (iteration %d) is kept as %s", iteration, kept)
        return kept

    @staticmethod
    def restore_rng(checkpoint: Dict[str, Any]) -> bool:
        """Apply this process's saved RNG state; False (with a warning) when the checkpoint has none for it."""
        states = checkpoint.get("rng_states")
        rank, world = comm.get_rank(), comm.get_world_size()
        if not states or len(states) != world:
            logger.warning("Checkpoint has RNG states for %s processes, this run has %d: random numbers after the "
                           "resume will differ from an uninterrupted run", len(states) if states else "no", world)
            return False
        restore_rng_state(states[rank])
        return True

    # -------------------------------------------------------------------------------------------- weights only
    def load_weights(self, path: str, key: str = "MODEL.WEIGHT", strict: bool = False) -> Dict[str, List[str]]:
        """Load model weights only (no optimizer, no iteration). Keys the model lacks or the file lacks are logged
        (an error with ``strict``, as for testing a trained model); a file for another architecture (shapes differ,
        or no key in common) is an error listing the keys."""
        checkpoint = load_checkpoint_file(path, key=key)
        return self._load_model(checkpoint, path, strict=strict, source=key)

    def _load_model(self, checkpoint, path: str, strict: bool, source: str) -> Dict[str, List[str]]:
        model_sd = self.model.state_dict()
        loaded = checkpoint["model"]
        missing, unexpected, mismatched = compare_state_dicts(model_sd, loaded)
        foreign = _foreign_predictor(checkpoint, model_sd, self.cfg)
        if foreign:
            raise CheckpointError(f"{source}: checkpoint {path} does not fit this model: {foreign}")
        common = len(model_sd) - len(missing)
        incompatible = mismatched or common == 0 or (strict and (missing or unexpected))
        if incompatible:
            lines = [f"{source}: checkpoint {path} does not fit this model"
                     f"{_architecture_note(checkpoint, self.cfg)}; is it for another architecture?"]
            if mismatched:
                lines.append(f"  {len(mismatched)} tensors with other shapes: {_listing(mismatched)}")
            if common == 0:
                lines.append(f"  none of its {len(loaded)} keys is a model key")
            if missing:
                lines.append(f"  {len(missing)} model keys missing from the checkpoint: {_listing(missing)}")
            if unexpected:
                lines.append(f"  {len(unexpected)} checkpoint keys the model does not have: {_listing(unexpected)}")
            raise CheckpointUnreadableError("\n".join(lines))
        if missing:
            logger.warning("%s: %d model keys not in %s (they keep their initial values): %s", source, len(missing),
                           path, _listing(missing))
        if unexpected:
            logger.warning("%s: %d keys in %s that the model does not have (ignored): %s", source, len(unexpected),
                           path, _listing(unexpected))
        self.model.load_state_dict({k: v for k, v in loaded.items() if k in model_sd}, strict=False)
        logger.info("Loaded model weights from %s (%d of %d model tensors)", path, common, len(model_sd))
        return {"missing": missing, "unexpected": unexpected}
