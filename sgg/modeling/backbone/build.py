"""``MODEL.BACKBONE.CONV_BODY`` -> a registered backbone.

Every backbone is an ``nn.Module`` whose ``forward(images)`` returns an ``OrderedDict`` of feature maps and which
carries three attributes the rest of the detector is built from:

* ``out_channels``: channels of every returned map;
* ``feature_strides``: ``OrderedDict`` name -> stride in pixels, in the order of the returned maps (the RPN uses all
  of them);
* ``box_featmap_names``: the maps the box head (and later the relation head) pool RoIs from.
"""
from __future__ import annotations

from sgg.modeling.registry import BACKBONES


def build_backbone(cfg):
    builder = BACKBONES.get(cfg.MODEL.BACKBONE.CONV_BODY)
    backbone = builder(cfg)
    for attr in ("out_channels", "feature_strides", "box_featmap_names"):
        if not hasattr(backbone, attr):
            raise TypeError(f"backbone {cfg.MODEL.BACKBONE.CONV_BODY} does not set the attribute {attr!r}")
    return backbone
