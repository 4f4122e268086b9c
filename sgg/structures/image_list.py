"""A padded batch of images of different sizes, remembering each image's own size."""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch


class ImageList:
    """``tensors`` (B, C, H, W) zero-padded, ``image_sizes`` the (height, width) of each image before padding."""

    def __init__(self, tensors: torch.Tensor, image_sizes: List[Tuple[int, int]]):
        self.tensors = tensors
        self.image_sizes = image_sizes

    def to(self, device) -> "ImageList":
        return ImageList(self.tensors.to(device), self.image_sizes)

    def __len__(self) -> int:
        return len(self.image_sizes)


def to_image_list(images: Sequence[torch.Tensor], size_divisible: int = 0) -> ImageList:
    """Pad (C, H, W) images to a common size, rounded up to a multiple of ``size_divisible`` when positive."""
    if isinstance(images, ImageList):
        return images
    if isinstance(images, torch.Tensor) and images.ndim == 3:
        images = [images]
    if len(images) == 0:
        raise ValueError("to_image_list: no images in the batch")
    channels = images[0].shape[0]
    max_h = max(int(img.shape[1]) for img in images)
    max_w = max(int(img.shape[2]) for img in images)
    if size_divisible > 0:
        max_h = int(math.ceil(max_h / size_divisible) * size_divisible)
        max_w = int(math.ceil(max_w / size_divisible) * size_divisible)
    batch = images[0].new_zeros((len(images), channels, max_h, max_w))
    for img, slot in zip(images, batch):
        slot[:, : img.shape[1], : img.shape[2]].copy_(img)
    return ImageList(batch, [(int(img.shape[1]), int(img.shape[2])) for img in images])
