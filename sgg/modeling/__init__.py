"""Models: backbones, RPN, box head, relation heads and the meta-architectures that join them."""
from .detector import build_detection_model
from .device import resolve_device

__all__ = ["build_detection_model", "resolve_device"]
