"""Image-level context: the global average of the backbone maps per image (LinkNet's global context encoding,
the Ranker's image feature), with the padding arithmetic that tells which map cells cover each image."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch

from sgg.config.sgg_config import ConfigError

GLOBAL_POOLING_REGIONS = ("padded", "image")
VGG_CHANNELS = 512  # the VGG-16 conv5 map ignores MODEL.BACKBONE.OUT_CHANNELS
DETECTOR_SIZE_DIVISIBILITY = 32  # = GeneralizedRCNN.SIZE_DIVISIBILITY (tests/modeling/test_linknet.py checks it)


def backbone_channels(cfg) -> int:
    """Channels of the backbone maps in ``RelationBatch.features``."""
    if str(cfg.MODEL.BACKBONE.CONV_BODY).upper().startswith("VGG"):
        return VGG_CHANNELS
    return int(cfg.MODEL.BACKBONE.OUT_CHANNELS)


def padded_length(length: int, multiples: Sequence[int]) -> int:
    """``length`` rounded up to each positive multiple in turn (the data loader's, then the detector's padding)."""
    for multiple in multiples:
        if multiple > 1:
            length = -(-int(length) // int(multiple)) * int(multiple)
    return int(length)


def global_image_features(features: Optional[Dict[str, torch.Tensor]],
                          image_sizes: Optional[Sequence[Tuple[int, int]]], map_names: Sequence[str] = (),
                          key: str = "GLOBAL_FEATURE_MAPS", region: str = "image",
                          size_divisibility: Sequence[int] = (DETECTOR_SIZE_DIVISIBILITY,)) -> torch.Tensor:
    """(B, D) per-image global average of the backbone maps, then averaged over maps.

    ``region`` "padded" averages each whole map, batch padding included (the reference's ``AdaptiveAvgPool2d`` on
    neural-motifs' 592 x 592 padded images). "image" averages only the cells that cover the image: the batch tensor is
    the largest image padded to ``size_divisibility`` (loader, then detector), so a map of height H covers
    ``padded / H`` pixels per cell and an image of height h the first ``ceil(h * H / padded)`` rows."""
    if region not in GLOBAL_POOLING_REGIONS:
        raise ConfigError(f"MODEL.ROI_RELATION_HEAD.LINKNET.GLOBAL_POOLING must be one of {GLOBAL_POOLING_REGIONS}, "
                          f"got {region!r}")
    if not features:
        raise ValueError("the global image feature needs the backbone feature maps (RelationBatch.features is empty)")
    if not image_sizes:
        raise ValueError("the global image feature needs RelationBatch.image_sizes (the (h, w) of every image)")
    names = list(map_names) or list(features)
    unknown = [n for n in names if n not in features]
    if unknown:
        raise ConfigError(f"{key}: feature map(s) {unknown} do not exist; the backbone returns {list(features)}")
    padded_h = padded_length(max(h for h, _ in image_sizes), size_divisibility)
    padded_w = padded_length(max(w for _, w in image_sizes), size_divisibility)
    pooled = []
    for name in names:
        fmap = features[name]
        if region == "padded":
            pooled.append(fmap.mean(dim=(-2, -1)))
            continue
        rows = []
        for index, (h, w) in enumerate(image_sizes):
            valid_h = max(1, min(fmap.shape[-2], -(-int(h) * fmap.shape[-2] // padded_h)))
            valid_w = max(1, min(fmap.shape[-1], -(-int(w) * fmap.shape[-1] // padded_w)))
            rows.append(fmap[index, :, :valid_h, :valid_w].mean(dim=(-2, -1)))
        pooled.append(torch.stack(rows))
    return torch.stack(pooled).mean(dim=0)


def batch_size_divisibility(cfg) -> Tuple[int, int]:
    """The multiples a batch is padded to: the data loader's, then the detector's (GeneralizedRCNN)."""
    return int(cfg.DATALOADER.SIZE_DIVISIBILITY), DETECTOR_SIZE_DIVISIBILITY
