"""``build_detection_model(cfg)``: the registered meta-architecture named by ``MODEL.META_ARCHITECTURE``."""
from __future__ import annotations

from typing import Dict, Optional

from torch import nn

from sgg.modeling.device import resolve_device
from sgg.modeling.registry import META_ARCHITECTURES

from . import generalized_rcnn, scene_graph_rcnn  # noqa: F401  (registration)
from sgg.modeling import iterative_sg  # noqa: F401,E402  (registration: "IterativeSceneGraph")


def meta_architecture_name(cfg) -> str:
    """SGB builds the scene graph model as ``GeneralizedRCNN`` with ``MODEL.RELATION_ON True``; here that is the
    ``SceneGraphRCNN`` meta-architecture (the detector as a sub-module plus a relation head)."""
    name = cfg.MODEL.META_ARCHITECTURE
    if name == "GeneralizedRCNN" and cfg.MODEL.RELATION_ON:
        return "SceneGraphRCNN"
    return name


def build_detection_model(cfg, statistics: Optional[Dict] = None) -> nn.Module:
    """Build the model on the CPU (the caller moves it to ``resolve_device(cfg)``).

    ``MODEL.DEVICE`` is checked first, so a machine without the configured device fails before any weights load.
    A scene graph model needs ``statistics``, the training statistics (``sgg.data.get_dataset_statistics(cfg)``)
    that give its class counts and frequency bias; the builder passes them so that modeling never reads data.
    """
    resolve_device(cfg)
    meta_arch = META_ARCHITECTURES.get(meta_architecture_name(cfg))
    if statistics is not None:
        return meta_arch.from_config(cfg, statistics)
    if hasattr(meta_arch, "from_config"):
        return meta_arch.from_config(cfg)
    return meta_arch(cfg)
