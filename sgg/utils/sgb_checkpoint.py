"""Scene-Graph-Benchmark.pytorch (maskrcnn-benchmark) Faster R-CNN state dicts onto this framework's detector.

SGB's ResNe(X)t-FPN detector and ours (torchvision parts) hold the same tensors under other names:

    SGB                                               here
    backbone.body.stem.conv1 / stem.bn1               backbone.body.conv1 / bn1
    backbone.body.layerN.i.{conv,bn}K, downsample.J   the same
    backbone.fpn.fpn_inner{i} / fpn_layer{i}          backbone.fpn.inner_blocks.{i-1}.0 / layer_blocks.{i-1}.0
    rpn.head.conv                                     rpn.head.conv.0.0
    rpn.head.cls_logits / bbox_pred                   the same
    roi_heads.box.feature_extractor.fc6 / fc7         roi_heads.box_head.fc6 / fc7
    roi_heads.box.predictor.cls_score / bbox_pred     roi_heads.box_predictor.cls_score / bbox_pred

``rpn.anchor_generator.cell_anchors.*`` are buffers computed from the config; they are checked against
``MODEL.RPN.ANCHOR_STRIDE`` / ``ASPECT_RATIOS`` and not copied. SGB's relation and attribute heads
(``roi_heads.relation.*``, ``roi_heads.attribute.*``) are different implementations and are reported, not copied.
"""
from __future__ import annotations

import re
from typing import Dict, List, Tuple

import torch

from sgg.utils.errors import CheckpointError
SKIPPED_PREFIXES = {
    "roi_heads.relation.": "SGB's relation head (this framework has its own relation heads)",
    "roi_heads.attribute.": "SGB's attribute head (not implemented here)",
}

_RULES: List[Tuple[re.Pattern, str]] = [
    (re.compile(r"^backbone\.body\.stem\.(conv1|bn1)\.(.+)$"), r"backbone.body.\1.\2"),
    (re.compile(r"^backbone\.body\.(layer[1-4]\.\d+\.(?:conv[1-3]|bn[1-3]|downsample\.[01])\.[a-z_]+)$"),
     r"backbone.body.\1"),
    (re.compile(r"^rpn\.head\.conv\.(weight|bias)$"), r"rpn.head.conv.0.0.\1"),
    (re.compile(r"^rpn\.head\.(cls_logits|bbox_pred)\.(weight|bias)$"), r"rpn.head.\1.\2"),
    (re.compile(r"^roi_heads\.box\.feature_extractor\.(fc6|fc7)\.(weight|bias)$"), r"roi_heads.box_head.\1.\2"),
    (re.compile(r"^roi_heads\.box\.predictor\.(cls_score|bbox_pred)\.(weight|bias)$"),
     r"roi_heads.box_predictor.\1.\2"),
]
_FPN = re.compile(r"^backbone\.fpn\.fpn_(inner|layer)(\d+)\.(weight|bias)$")
ANCHORS = re.compile(r"^rpn\.anchor_generator\.cell_anchors\.(\d+)$")


def map_sgb_key(key: str):
    """Our name for an SGB key, or None when no rule covers it."""
    match = _FPN.match(key)
    if match:
        kind, index, leaf = match.groups()
        return f"backbone.fpn.{kind}_blocks.{int(index) - 1}.0.{leaf}"
    for pattern, replacement in _RULES:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return None


def sgb_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """The model state dict of an SGB checkpoint (``{"model": ...}`` or a bare state dict), without ``module.``."""
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("not an SGB checkpoint: expected {'model': state dict} or a state dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def convert_sgb_state_dict(state: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor], num_anchor_levels: int,
                           anchors_per_location: int) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """SGB ``state`` -> a state dict with ``target``'s keys (our detector's). Returns it and the skipped SGB keys
    with the reason. Raises ValueError for an SGB key no rule covers, a shape that differs, a key of ours that the
    checkpoint does not provide, or anchors that do not match the config."""
    converted, skipped, unknown = {}, {}, []
    # the anchors first: a different anchor set also changes the RPN head's shapes, and this says why
    anchor_levels = [tuple(v.shape) for k, v in state.items() if ANCHORS.match(k)]
    if anchor_levels:
        wrong = [s for s in anchor_levels if s != (anchors_per_location, 4)]
        if len(anchor_levels) != num_anchor_levels or wrong:
            raise CheckpointError(f"the checkpoint's anchors ({len(anchor_levels)} levels of {anchor_levels[0]}) do "
                                  f"not match the config ({num_anchor_levels} levels of ({anchors_per_location}, 4)): "
                                  f"set MODEL.RPN.ANCHOR_STRIDE / ANCHOR_SIZES / ASPECT_RATIOS as in the SGB yaml")
    for key, value in state.items():
        reason = next((why for prefix, why in SKIPPED_PREFIXES.items() if key.startswith(prefix)), None)
        if reason:
            skipped[key] = reason
            continue
        if ANCHORS.match(key):
            skipped[key] = "anchors are computed from MODEL.RPN.* (checked)"
            continue
        ours = map_sgb_key(key)
        if ours is None or ours not in target:
            unknown.append(key if ours is None else f"{key} (-> {ours}, not in this detector)")
            continue
        if tuple(value.shape) != tuple(target[ours].shape):
            raise CheckpointError(f"SGB key {key}: shape {tuple(value.shape)}, but this detector's {ours} is "
                                  f"{tuple(target[ours].shape)} (check MODEL.BACKBONE.CONV_BODY, "
                                  f"ROI_BOX_HEAD.NUM_CLASSES, MLP_HEAD_DIM and the anchors of the config)")
        converted[ours] = value.detach().clone()
    if unknown:
        raise CheckpointError(f"{len(unknown)} SGB keys have no counterpart here, e.g. {unknown[:4]}")
    missing = [k for k in target if k not in converted]
    if missing:
        raise CheckpointError(f"the checkpoint does not provide {len(missing)} tensors of this detector, e.g. "
                              f"{missing[:4]}")
    return converted, skipped


__all__ = ["map_sgb_key", "sgb_state_dict", "convert_sgb_state_dict", "SKIPPED_PREFIXES"]
