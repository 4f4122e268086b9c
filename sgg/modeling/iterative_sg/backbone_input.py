"""The backbone side that DETR (detr.py) and IterativeSG (model.py) share: padded image batches, DETR's padding
mask, the feature map the transformer reads, and loading the backbone of a pretrained detector checkpoint."""
from __future__ import annotations

import logging
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.structures import ImageList, to_image_list
from sgg.utils.checkpoint import compare_state_dicts, load_checkpoint_file
from sgg.utils.errors import CheckpointError

logger = logging.getLogger(__name__)

SIZE_DIVISIBILITY = 32
BACKBONE_PREFIXES = ("backbone.", "detector.backbone.")  # a detector checkpoint, or a SceneGraphRCNN one


class FeatureReader(nn.Module):
    """Reads the transformer's input map from the backbone outputs: the map of stride ``source_stride``, average-pooled
    to ``stride`` when the two differ (MODEL.DETR.SOURCE_FEATURE_STRIDE; see docs/iterative_sg.md)."""

    def __init__(self, name: str, pool: int):
        super().__init__()
        self.name, self.pool = name, pool

    @classmethod
    def from_config(cls, backbone: nn.Module, detr_cfg, body_name: str) -> "FeatureReader":
        stride = detr_cfg.FEATURE_STRIDE
        source = detr_cfg.SOURCE_FEATURE_STRIDE or stride
        if source > stride or stride % source:
            raise ConfigError(f"MODEL.DETR.SOURCE_FEATURE_STRIDE {source} must divide MODEL.DETR.FEATURE_STRIDE "
                              f"{stride} (the map is average-pooled by their ratio); 0 reads FEATURE_STRIDE directly")
        name = next((n for n, s in backbone.feature_strides.items() if s == source), None)
        if name is None:
            key = "SOURCE_FEATURE_STRIDE" if detr_cfg.SOURCE_FEATURE_STRIDE else "FEATURE_STRIDE"
            raise ConfigError(f"MODEL.DETR.{key} {source}: backbone {body_name} has no feature map of that stride "
                              f"(its strides: {sorted(set(backbone.feature_strides.values()))})")
        return cls(name, stride // source)

    def forward(self, backbone_outputs) -> torch.Tensor:
        features = backbone_outputs[self.name]
        return F.avg_pool2d(features, self.pool, ceil_mode=True) if self.pool > 1 else features


def load_backbone_weights(backbone: nn.Module, path: str, body_name: str, state: Optional[Dict] = None) -> None:
    """Load ``backbone.*`` (or ``detector.backbone.*``) of the checkpoint ``path`` into ``backbone``; it must fit
    exactly, otherwise the error names the file and the mismatched keys. ``state``: the file's model dict, if read."""
    if state is None:
        state = load_checkpoint_file(path, key="MODEL.PRETRAINED_DETECTOR_CKPT")["model"]
    backbone_state = {}
    for prefix in BACKBONE_PREFIXES:
        backbone_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if backbone_state:
            break
    if not backbone_state:
        raise CheckpointError(f"MODEL.PRETRAINED_DETECTOR_CKPT {path} holds no backbone weights (no key starts with "
                              f"{' or '.join(BACKBONE_PREFIXES)}; it has e.g. {sorted(state)[:5]})")
    missing, unexpected, mismatched = compare_state_dicts(backbone.state_dict(), backbone_state)
    if missing or unexpected or mismatched:
        problems = []
        if mismatched:
            problems.append(f"{len(mismatched)} tensors with other shapes, e.g. {mismatched[:3]}")
        if missing:
            problems.append(f"{len(missing)} backbone keys missing from it, e.g. {missing[:3]}")
        if unexpected:
            problems.append(f"{len(unexpected)} keys the backbone does not have, e.g. {unexpected[:3]}")
        raise CheckpointError(f"MODEL.PRETRAINED_DETECTOR_CKPT {path}: its backbone does not fit MODEL.BACKBONE "
                              f"{body_name!r} of this config (check MODEL.BACKBONE.CONV_BODY, OUT_CHANNELS, "
                              f"MODEL.TINY_BACKBONE / MODEL.RESNETS against the detector's config): "
                              + "; ".join(problems))
    backbone.load_state_dict(backbone_state)
    logger.info("backbone loaded from the detector checkpoint %s (%d tensors)", path, len(backbone_state))


def prepare_images(images) -> ImageList:
    """An ImageList padded to a multiple of SIZE_DIVISIBILITY (from a 4-d tensor, a list of images or an ImageList)."""
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        images = ImageList(images, [tuple(images.shape[-2:])] * images.shape[0])
    elif not hasattr(images, "tensors"):
        images = to_image_list(list(images), SIZE_DIVISIBILITY)
    tensors = images.tensors
    pad_h, pad_w = -tensors.shape[-2] % SIZE_DIVISIBILITY, -tensors.shape[-1] % SIZE_DIVISIBILITY
    if pad_h or pad_w:
        images = ImageList(F.pad(tensors, (0, pad_w, 0, pad_h)), images.image_sizes)
    return images


def padding_mask(images: ImageList, feature_size) -> torch.Tensor:
    """(B, h, w) True where the feature cell lies on padding (DETR's mask, nearest-resized)."""
    batch, _, height, width = images.tensors.shape
    mask = torch.ones((batch, height, width), dtype=torch.bool, device=images.tensors.device)
    for index, (h, w) in enumerate(images.image_sizes):
        mask[index, :h, :w] = False
    return F.interpolate(mask[None].float(), size=tuple(feature_size)).bool()[0]
