"""``build_detection_model(cfg)``: the registered meta-architecture named by ``MODEL.META_ARCHITECTURE``."""
from __future__ import annotations

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


def build_detection_model(cfg) -> nn.Module:
    """Build the model on the CPU (the caller moves it to ``resolve_device(cfg)``).

    ``MODEL.DEVICE`` is checked first, so a machine without the configured device fails before any weights load.
    The scene graph model reads the training statistics (``get_dataset_statistics``) for its class counts and
    frequency bias.
    """
    resolve_device(cfg)
    meta_arch = META_ARCHITECTURES.get(meta_architecture_name(cfg))
    if hasattr(meta_arch, "from_config"):
        return meta_arch.from_config(cfg)
    return meta_arch(cfg)
