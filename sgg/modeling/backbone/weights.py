"""ImageNet weights for the backbone trunks, offline only, and stage freezing.

Where the weights come from, in order:

1. ``MODEL.PRETRAINED_BACKBONE_PATH``: a torchvision state dict file of the trunk (``resnet50-*.pth`` ...). A path that
   does not exist is an error even when random initialisation is allowed: a named file must be found.
2. ``MODEL.RANDOM_INIT_BACKBONE True``: random weights (tests, the synthetic quick start, tiny-FPN).
3. torchvision's own cache (``$TORCH_HOME/hub/checkpoints/<file>``) when the file of the matching torchvision weight
   name is already there. Nothing is ever downloaded.
4. Otherwise: an error naming both keys and the URL of the file to fetch.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Iterable, Optional, Sequence, Tuple

import torch
from torch import nn

from sgg.utils.errors import CheckpointError, one_line

logger = logging.getLogger(__name__)


class BackboneWeightsError(CheckpointError, RuntimeError):
    """ImageNet weights asked for but not available, or a weights file that does not fit the trunk (a CheckpointError
    the tools print as one line; still a RuntimeError for code written against the older contract)."""


def torchvision_weights(enum_name: Optional[str]):
    """A torchvision weight entry by name, e.g. ``"ResNet50_Weights.IMAGENET1K_V1"``; None if unknown."""
    if not enum_name:
        return None
    import torchvision.models as tvm

    group, _, member = enum_name.partition(".")
    enum = getattr(tvm, group, None)
    return getattr(enum, member, None) if enum is not None else None


def cached_weights_file(enum_name: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """(path in torch hub's cache, download URL) of a torchvision weight name; the path only if the file exists."""
    weights = torchvision_weights(enum_name)
    if weights is None:
        return None, None
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    return (path if os.path.isfile(path) else None), weights.url


def resolve_weights_file(cfg, body_name: str, enum_name: Optional[str]) -> Optional[str]:
    """The weights file to load into the trunk, or None for random initialisation (see the module docstring)."""
    path = cfg.MODEL.PRETRAINED_BACKBONE_PATH
    if path:
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            raise BackboneWeightsError(
                f"MODEL.PRETRAINED_BACKBONE_PATH {path!r} does not exist (backbone {body_name}). Point it at a "
                f"torchvision ImageNet state dict{_url_hint(enum_name)}, or set it to \"\" and "
                "MODEL.RANDOM_INIT_BACKBONE True to start from random weights.")
        return path
    if cfg.MODEL.RANDOM_INIT_BACKBONE:
        logger.info("backbone %s starts from random weights (MODEL.RANDOM_INIT_BACKBONE True)", body_name)
        return None
    cached, url = cached_weights_file(enum_name)
    if cached is not None:
        logger.info("backbone %s: ImageNet weights from torchvision's cache %s", body_name, cached)
        return cached
    weight = cfg.MODEL.WEIGHT
    catalog = (f" MODEL.WEIGHT {weight!r} is an SGB catalog name that is never downloaded here."
               if str(weight).startswith("catalog://") else "")
    if url is None:
        raise BackboneWeightsError(
            f"backbone {body_name} has no ImageNet weights to load: MODEL.PRETRAINED_BACKBONE_PATH is empty and "
            f"MODEL.RANDOM_INIT_BACKBONE is False.{catalog} Set MODEL.RANDOM_INIT_BACKBONE True to train it from "
            "random weights, or MODEL.PRETRAINED_BACKBONE_PATH to a state dict of its trunk.")
    raise BackboneWeightsError(
        f"backbone {body_name} needs ImageNet weights: MODEL.PRETRAINED_BACKBONE_PATH is empty and "
        f"MODEL.RANDOM_INIT_BACKBONE is False.{catalog} Download torchvision's {enum_name} file ({url}) and set "
        "MODEL.PRETRAINED_BACKBONE_PATH to it (or place it in "
        f"{os.path.join(torch.hub.get_dir(), 'checkpoints')}), or set MODEL.RANDOM_INIT_BACKBONE True to start from "
        "random weights. Nothing is downloaded at run time.")


def _url_hint(enum_name: Optional[str]) -> str:
    _, url = cached_weights_file(enum_name)
    return f" (e.g. torchvision's {enum_name}: {url})" if url else ""


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """A state dict from a file: a plain one, or one wrapped under ``state_dict``/``model``; ``module.`` stripped."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same message
        raise BackboneWeightsError(f"MODEL.PRETRAINED_BACKBONE_PATH {path!r} is not a readable torch state dict "
                                   f"file: {one_line(err)}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise BackboneWeightsError(f"MODEL.PRETRAINED_BACKBONE_PATH {path!r} holds a {type(state).__name__}, "
                                   "not a state dict")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def load_trunk_weights(model: nn.Module, path: str, body_name: str, ignore_prefixes: Sequence[str] = ()) -> None:
    """Load a torchvision classification state dict into ``model``; keys under ``ignore_prefixes`` (the classifier)
    may be missing or extra. Any other missing/unexpected key or shape mismatch is an error naming the file."""
    state = read_state_dict(path)

    def ignored(key: str) -> bool:
        return any(key.startswith(p) for p in ignore_prefixes)

    own = model.state_dict()
    shape_errors = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                    for k, v in state.items() if k in own and own[k].shape != v.shape]
    if shape_errors:
        raise BackboneWeightsError(f"MODEL.PRETRAINED_BACKBONE_PATH {path!r} does not fit backbone {body_name}: "
                                   f"shape mismatches {_short(shape_errors)}")
    result = model.load_state_dict({k: v for k, v in state.items() if not ignored(k)}, strict=False)
    missing = [k for k in result.missing_keys if not ignored(k)]
    unexpected = [k for k in result.unexpected_keys if not ignored(k)]
    if missing or unexpected:
        raise BackboneWeightsError(
            f"MODEL.PRETRAINED_BACKBONE_PATH {path!r} is not a state dict of backbone {body_name}'s torchvision trunk: "
            f"missing keys {_short(missing)}, unexpected keys {_short(unexpected)}")
    logger.info("backbone %s: loaded ImageNet weights from %s", body_name, path)


def _short(keys: Sequence[str], limit: int = 6) -> str:
    keys = list(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return "[" + ", ".join(keys[:limit]) + more + "]"


def freeze_stages(stages: Iterable[nn.Module], freeze_at: int) -> None:
    """SGB's ``FREEZE_CONV_BODY_AT``: stage 0 is the stem; stages 0 .. freeze_at-1 stop receiving gradients."""
    for index, stage in enumerate(stages):
        if index >= freeze_at:
            break
        for param in stage.parameters():
            param.requires_grad_(False)
