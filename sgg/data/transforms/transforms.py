"""Image + target transforms. Each takes and returns ``(image, target)`` so boxes always move with the pixels."""
from __future__ import annotations

import random
from typing import Sequence, Tuple

import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import ColorJitter as _ColorJitter

from sgg.structures import FLIP_LEFT_RIGHT


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image, target=None):
        for t in self.transforms:
            image, target = t(image, target)
        return image, target

    def __repr__(self) -> str:
        inner = "\n".join(f"    {t}" for t in self.transforms)
        return f"Compose(\n{inner}\n)"


def resized_shape(width: int, height: int, min_sizes: Sequence[int], max_size: int) -> Tuple[int, int]:
    """(height, width) after scaling the shorter side to a random ``min_sizes`` entry, longer side <= ``max_size``."""
    size = random.choice(tuple(min_sizes))
    short, long = float(min(width, height)), float(max(width, height))
    if max_size > 0 and long / short * size > max_size:
        size = int(round(max_size * short / long))
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


class Resize:
    def __init__(self, min_size, max_size: int):
        self.min_size = (min_size,) if isinstance(min_size, int) else tuple(min_size)
        self.max_size = max_size

    def __call__(self, image, target=None):
        height, width = resized_shape(image.width, image.height, self.min_size, self.max_size)
        image = TF.resize(image, [height, width])
        if target is not None:
            target = target.resize((image.width, image.height))
        return image, target

    def __repr__(self) -> str:
        return f"Resize(min_size={self.min_size}, max_size={self.max_size})"


class RandomHorizontalFlip:
    """Flip image and boxes together (x1' = W - x2 - 1). Relation geometry is derived from the flipped boxes."""

    def __init__(self, prob: float = 0.5):
        self.prob = prob

    def __call__(self, image, target=None):
        if self.prob > 0 and random.random() < self.prob:
            image = TF.hflip(image)
            if target is not None:
                target = target.transpose(FLIP_LEFT_RIGHT)
        return image, target

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(prob={self.prob})"


class ColorJitter:
    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0):
        self.jitter = _ColorJitter(brightness, contrast, saturation, hue)
        self.active = any(v > 0 for v in (brightness, contrast, saturation, hue))

    def __call__(self, image, target=None):
        return (self.jitter(image) if self.active else image), target


class ToTensor:
    def __call__(self, image, target=None):
        return TF.to_tensor(image), target


class Normalize:
    """Subtract ``mean`` and divide by ``std``; with ``to_bgr255`` the input is first made BGR in 0..255 (Caffe)."""

    def __init__(self, mean, std, to_bgr255: bool = True):
        self.mean = list(mean)
        self.std = list(std)
        self.to_bgr255 = to_bgr255

    def __call__(self, image: torch.Tensor, target=None):
        if self.to_bgr255:
            image = image[[2, 1, 0]] * 255
        return TF.normalize(image, mean=self.mean, std=self.std), target
