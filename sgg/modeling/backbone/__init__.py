"""Backbones (registered in ``sgg.modeling.registry.BACKBONES`` by their ``MODEL.BACKBONE.CONV_BODY`` name)."""
from . import resnet_fpn, tiny_fpn, vgg  # noqa: F401  (registration)
from .build import build_backbone
from .weights import BackboneWeightsError

__all__ = ["build_backbone", "BackboneWeightsError"]
