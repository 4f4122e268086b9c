"""The detector's box head (pooler, 2-layer MLP, predictor, SGB post-processing) on torchvision's RoIHeads."""
from .box_head import BoxHead
from .inference import BoxPostProcessor
from .predictor import BoxPredictor

__all__ = ["BoxHead", "BoxPostProcessor", "BoxPredictor"]
