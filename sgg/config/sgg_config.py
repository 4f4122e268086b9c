"""A yacs ``CfgNode`` that rejects unknown keys with suggestions and checks value types with readable messages."""
from __future__ import annotations

import difflib
import logging
import os
from ast import literal_eval
from typing import Any, Dict, Iterable, List

import yaml
from yacs.config import CfgNode

from sgg.utils.errors import SggError, one_line

logger = logging.getLogger(__name__)

# SGB keys that name something this framework does under another key: using one is an error that says which key.
RENAMED_KEYS: Dict[str, str] = {
    "MODEL.BACKBONE.BACKBONE_OUT_CHANNELS": "MODEL.BACKBONE.OUT_CHANNELS",
    "SOLVER.SCHEDULE.MAX_DECAY_STEPS": "SOLVER.SCHEDULE.MAX_DECAY_STEP",
    # IterativeSG (detectron2) loads a DETR checkpoint here; ours takes a checkpoint of this framework's model
    "MODEL.WEIGHTS": "MODEL.WEIGHT (a checkpoint of this framework; docs/iterative_sg.md maps the reference command)",
}
# Other codebases' names for exactly our key (IterativeSG's detectron2 solver keys): accepted and set on ours.
ALIASED_KEYS: Dict[str, str] = {
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": "SOLVER.GRAD_NORM_CLIP",  # with CLIP_TYPE full_model, NORM_TYPE 2
    "SOLVER.BACKBONE_MULTIPLIER": "SOLVER.BACKBONE_LR_FACTOR",
}
# SGB keys that have no effect here (the behaviour is implied by another choice); accepted with a warning so that
# SGB's yamls and command lines load unchanged.
IGNORED_SGB_KEYS: Dict[str, str] = {
    "MODEL.RPN.USE_FPN": "FPN use follows MODEL.BACKBONE.CONV_BODY",
    "MODEL.ROI_HEADS.USE_FPN": "FPN use follows MODEL.BACKBONE.CONV_BODY",
    "MODEL.RPN_ONLY": "the detector always runs the box head",
    "MODEL.MASK_ON": "there is no mask head",
    "MODEL.KEYPOINT_ON": "there is no keypoint head",
    "MODEL.RETINANET_ON": "there is no RetinaNet",
    "DATALOADER.SAMPLER": "samplers follow DATALOADER.ASPECT_RATIO_GROUPING",
}
# Whole SGB groups for components this framework does not have.
IGNORED_SGB_PREFIXES: Dict[str, str] = {
    "MODEL.ROI_ATTRIBUTE_HEAD.": "the attribute head is not implemented",
    "MODEL.ROI_MASK_HEAD.": "there is no mask head",
    "MODEL.ROI_KEYPOINT_HEAD.": "there is no keypoint head",
    "MODEL.RETINANET.": "there is no RetinaNet",
    "TEST.BBOX_AUG.": "test-time box augmentation is not implemented",
}


def ignored_reason(key: str):
    if key in IGNORED_SGB_KEYS:
        return IGNORED_SGB_KEYS[key]
    for prefix, reason in IGNORED_SGB_PREFIXES.items():
        if key.startswith(prefix):
            return reason
    return None


class ConfigError(SggError, KeyError):
    """An unknown, renamed or badly typed config key, keys that contradict each other, or a bad command-line argument
    of a tool. A KeyError so callers that catch yacs errors still work."""


def _flatten(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, full + "."))
        else:
            flat[full] = value
    return flat


def _decode(value: Any) -> Any:
    """Command-line strings become Python literals where they parse ("0.1" -> 0.1, "(1, 2)" -> (1, 2))."""
    if not isinstance(value, str):
        return value
    try:
        return literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    """Make ``value`` the type of ``default`` where the conversion is lossless, else raise a ConfigError."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
        if value is None:
            return ""
    elif isinstance(default, (tuple, list)):
        if isinstance(value, (list, tuple)):
            return tuple(value) if isinstance(default, tuple) else list(value)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return (value,) if isinstance(default, tuple) else [value]
    raise ConfigError(
        f"{source}: config key {key} expects a value of type {type(default).__name__} "
        f"(default {default!r}), got {value!r} of type {type(value).__name__}")


class SGGConfig(CfgNode):
    """yacs config with strict, helpful merging. Keys can only be added in ``defaults.py``."""

    def all_keys(self) -> List[str]:
        return sorted(_flatten(self))

    def _suggest(self, key: str) -> str:
        close = difflib.get_close_matches(key, self.all_keys(), n=3, cutoff=0.6)
        if not close:  # a key in the wrong group: match the last component
            leaf = key.rsplit(".", 1)[-1]
            close = [k for k in self.all_keys() if k.rsplit(".", 1)[-1] == leaf][:3]
        return f" Did you mean: {', '.join(close)}?" if close else ""

    @staticmethod
    def _ignore(key: str, source: str) -> bool:
        """True (with a warning) for an SGB key that exists there but has no effect here."""
        reason = ignored_reason(key)
        if reason is not None:
            logger.warning("%s: ignoring SGB config key %s (%s)", source, key, reason)
        return reason is not None

    def _set_flat(self, key: str, value: Any, source: str) -> None:
        if key in ALIASED_KEYS:
            logger.info("%s: %s is read as %s", source, key, ALIASED_KEYS[key])
            key = ALIASED_KEYS[key]
        if key in RENAMED_KEYS:
            raise ConfigError(f"{source}: config key {key} is another codebase's name (SGB, detectron2); use {RENAMED_KEYS[key]} instead")
        node = self
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, CfgNode) else None
            if not isinstance(child, CfgNode):
                if self._ignore(key, source):
                    return
                raise ConfigError(f"{source}: unknown config key {key}.{self._suggest(key)}")
            node = child
        leaf = parts[-1]
        if leaf not in node or isinstance(node[leaf], CfgNode):
            if self._ignore(key, source):
                return
            raise ConfigError(f"{source}: unknown config key {key}.{self._suggest(key)}")
        coerced = _coerce(key, _decode(value), node[leaf], source)
        if node.is_frozen():
            raise ConfigError(f"{source}: cannot set {key}: the config is frozen")
        dict.__setitem__(node, leaf, coerced)

    def merge_from_dict(self, tree: Dict[str, Any], source: str = "config") -> None:
        if tree is None:
            return
        if not isinstance(tree, dict):
            raise ConfigError(f"{source}: expected a mapping of config keys at the top level, got {type(tree).__name__}")
        for key, value in _flatten(tree).items():
            self._set_flat(key, value, source)

    def merge_from_file(self, cfg_filename: str, _chain: tuple = ()) -> None:
        """Merge a yaml file; ``_BASE_`` (relative to the file) is merged first. ``_chain`` holds the files that
        include this one, so that a cycle is reported with its files instead of a RecursionError."""
        here = os.path.realpath(cfg_filename)
        if here in (os.path.realpath(f) for f in _chain):
            loop = " -> ".join(list(_chain) + [cfg_filename])
            raise ConfigError(f"{_chain[0]}: _BASE_ files form a cycle: {loop}; remove the _BASE_ that leads back")
        try:
            with open(cfg_filename, "r") as f:
                tree = yaml.safe_load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"config file {cfg_filename} does not exist") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{cfg_filename}: not valid YAML: {one_line(err)}") from None
        if isinstance(tree, dict) and "_BASE_" in tree:
            # detectron2-style inheritance: the base file (relative to this one) is merged first.
            base = tree.pop("_BASE_")
            if not os.path.isabs(base):
                base = os.path.join(os.path.dirname(os.path.abspath(cfg_filename)), base)
            self.merge_from_file(base, _chain=(*_chain, cfg_filename))
        self.merge_from_dict(tree, source=str(cfg_filename))

    def merge_from_list(self, cfg_list: Iterable[Any]) -> None:
        cfg_list = list(cfg_list)
        if len(cfg_list) % 2 != 0:
            raise ConfigError(
                f"command line: config overrides must be KEY VALUE pairs, got an odd number of items: {cfg_list}")
        for key, value in zip(cfg_list[0::2], cfg_list[1::2]):
            self._set_flat(str(key), value, "command line")
