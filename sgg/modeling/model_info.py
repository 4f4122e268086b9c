"""What a published model table says about a model: encoder (backbone + detector) and decoder (relation head)
names, parameter counts and the most triplets it can rank per image. ``sgg.engine.trainer.write_model_info`` writes
them to ``model_info.json``."""
from __future__ import annotations

from typing import Dict

from torch import nn

from sgg.modeling.roi_heads.relation_head.layers.spl import spl_enabled


def parameter_summary(model: nn.Module) -> Dict[str, int]:
    """Parameter counts of the model as it trains (after freezing): the numbers papers report in model tables."""
    params = list(model.named_parameters())
    return {"total_parameters": sum(p.numel() for _, p in params),
            "trainable_parameters": sum(p.numel() for _, p in params if p.requires_grad),
            "backbone_parameters": sum(p.numel() for name, p in params if ".backbone." in f".{name}")}


# What the model table calls each meta-architecture's detector (its encoder) and relation decoder.
_DETECTOR_NAMES = {"GeneralizedRCNN": "Faster R-CNN", "IterativeSceneGraph": "DETR"}
_FIXED_DECODERS = {"IterativeSceneGraph": "IterativeSG decoders"}


def describe_model(cfg) -> Dict[str, str]:
    """The encoder (backbone + detector) and decoder (relation head) names of a published model table."""
    meta, body = cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.BACKBONE.CONV_BODY
    groups, width = cfg.MODEL.RESNETS.NUM_GROUPS, cfg.MODEL.RESNETS.WIDTH_PER_GROUP
    if body.startswith("R-") and groups > 1:  # SGB names its ResNeXt "R-101-FPN" with 32 groups of width 8
        parts = body.split("-")
        parts[0], parts[1] = "X", f"{parts[1]}-{groups}x{width}d"
        body = "-".join(parts)
    encoder = f"{body} {_DETECTOR_NAMES.get(meta, meta)}"
    if not cfg.MODEL.RELATION_ON and meta not in _FIXED_DECODERS:
        return {"encoder": encoder, "decoder": "-"}
    decoder = _FIXED_DECODERS.get(meta)
    if decoder is None:
        decoder = cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR + (" + SPL" if spl_enabled(cfg) else "")
    return {"encoder": encoder, "decoder": decoder}


def triplet_cap(cfg):
    """The most triplets the model ranks per image when that is fewer than its candidate pairs: IterativeSG gives one
    triplet per relation query, so R@K for K above NUM_RELATION_QUERIES equals R@NUM_RELATION_QUERIES. None for the
    two-stage heads, which rank every candidate pair."""
    if cfg.MODEL.META_ARCHITECTURE == "IterativeSceneGraph":
        return int(cfg.MODEL.DETR.NUM_RELATION_QUERIES)
    return None
