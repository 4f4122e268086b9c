from .build import build_transforms
from .transforms import (ColorJitter, Compose, Normalize, RandomHorizontalFlip, Resize, ToTensor,
                         resized_shape)

__all__ = ["build_transforms", "Compose", "Resize", "RandomHorizontalFlip", "ColorJitter", "ToTensor", "Normalize",
           "resized_shape"]
