"""``build_detection_model(cfg)``: the registered meta-architecture named by ``MODEL.META_ARCHITECTURE``."""
from __future__ import annotations

from torch import nn

from sgg.modeling.device import resolve_device
from sgg.modeling.registry import META_ARCHITECTURES

from . import generalized_rcnn  # noqa: F401  (registration)


def build_detection_model(cfg) -> nn.Module:
    """Build the model on the CPU (the caller moves it to ``resolve_device(cfg)``).

    ``MODEL.DEVICE`` is checked first, so a machine without the configured device fails before any weights load.
    """
    resolve_device(cfg)
    meta_arch = META_ARCHITECTURES.get(cfg.MODEL.META_ARCHITECTURE)
    if hasattr(meta_arch, "from_config"):
        return meta_arch.from_config(cfg)
    return meta_arch(cfg)
