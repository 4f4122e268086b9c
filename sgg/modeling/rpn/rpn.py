"""torchvision's ``AnchorGenerator`` + ``RPNHead`` + ``RegionProposalNetwork`` from ``MODEL.RPN.*``.

Mapping of SGB's keys (PROTOCOL.md section 3):

* ``ANCHOR_SIZES``: one size per feature level of an FPN backbone; with a single-level backbone (VGG-16) all sizes
  sit on that level. ``ASPECT_RATIOS`` (height / width, the same convention in both code bases) apply at every level.
  ``ANCHOR_STRIDE`` is not needed: torchvision takes the strides from the feature map sizes.
* ``PRE_NMS_TOP_N_*``: kept per level before NMS, as SGB.
* proposals kept per image after NMS: ``FPN_POST_NMS_TOP_N_*`` with an FPN backbone, ``POST_NMS_TOP_N_*`` without.
  torchvision runs NMS per level and then keeps the top ones over all levels; SGB's extra per-level cap
  (``POST_NMS_TOP_N_*`` with FPN) is not applied, and proposals are always counted per image
  (``FPN_POST_NMS_PER_BATCH`` False, the SGB VG yaml's value).
* ``RPN_MID_CHANNEL``: channels of the RPN head's 3x3 conv.
"""
from __future__ import annotations

from typing import Dict

from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

from sgg.config.sgg_config import ConfigError


class RPNHeadWithMidChannels(RPNHead):
    """torchvision's RPN head whose shared 3x3 conv maps ``in_channels`` to ``mid_channels`` (SGB's
    ``RPN_MID_CHANNEL``); identical to ``RPNHead`` when the two are equal."""

    def __init__(self, in_channels: int, mid_channels: int, num_anchors: int):
        super().__init__(mid_channels, num_anchors)
        if in_channels != mid_channels:
            conv = nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1)
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, 0)
            self.conv = nn.Sequential(nn.Sequential(conv, nn.ReLU(inplace=True)))
        self.num_anchors = num_anchors


def build_anchor_generator(cfg, num_levels: int) -> AnchorGenerator:
    sizes = tuple(float(s) for s in cfg.MODEL.RPN.ANCHOR_SIZES)
    ratios = tuple(float(r) for r in cfg.MODEL.RPN.ASPECT_RATIOS)
    if not sizes or not ratios or min(sizes) <= 0 or min(ratios) <= 0:
        raise ConfigError(f"MODEL.RPN.ANCHOR_SIZES {sizes} and MODEL.RPN.ASPECT_RATIOS {ratios} must be non-empty "
                          "and positive")
    if num_levels == 1:
        per_level = (sizes,)
    elif len(sizes) == num_levels:
        per_level = tuple((s,) for s in sizes)
    else:
        raise ConfigError(f"MODEL.RPN.ANCHOR_SIZES has {len(sizes)} sizes but the backbone "
                          f"{cfg.MODEL.BACKBONE.CONV_BODY} has {num_levels} feature levels: give one size per level")
    if cfg.MODEL.RPN.LEGACY_ANCHORS:
        from sgg.modeling.sgb_conventions import DetectronAnchorGenerator

        strides = tuple(cfg.MODEL.RPN.ANCHOR_STRIDE)
        return DetectronAnchorGenerator(per_level, (ratios,) * len(per_level), strides)
    return AnchorGenerator(sizes=per_level, aspect_ratios=(ratios,) * len(per_level))


def _top_n(train: int, test: int) -> Dict[str, int]:
    return {"training": int(train), "testing": int(test)}


def build_rpn(cfg, backbone) -> RegionProposalNetwork:
    rpn_cfg = cfg.MODEL.RPN
    num_levels = len(backbone.feature_strides)
    anchor_generator = build_anchor_generator(cfg, num_levels)
    num_anchors = anchor_generator.num_anchors_per_location()
    if len(set(num_anchors)) != 1:
        raise ValueError(f"the RPN head shares its layers over levels and needs the same anchor count per level, got "
                         f"{num_anchors} from MODEL.RPN.ANCHOR_SIZES / ASPECT_RATIOS")
    head = RPNHeadWithMidChannels(backbone.out_channels, rpn_cfg.RPN_MID_CHANNEL, num_anchors[0])
    if num_levels > 1:
        post_nms = _top_n(rpn_cfg.FPN_POST_NMS_TOP_N_TRAIN, rpn_cfg.FPN_POST_NMS_TOP_N_TEST)
    else:
        post_nms = _top_n(rpn_cfg.POST_NMS_TOP_N_TRAIN, rpn_cfg.POST_NMS_TOP_N_TEST)
    rpn = RegionProposalNetwork(
        anchor_generator, head,
        fg_iou_thresh=rpn_cfg.FG_IOU_THRESHOLD, bg_iou_thresh=rpn_cfg.BG_IOU_THRESHOLD,
        batch_size_per_image=rpn_cfg.BATCH_SIZE_PER_IMAGE, positive_fraction=rpn_cfg.POSITIVE_FRACTION,
        pre_nms_top_n=_top_n(rpn_cfg.PRE_NMS_TOP_N_TRAIN, rpn_cfg.PRE_NMS_TOP_N_TEST),
        post_nms_top_n=post_nms, nms_thresh=rpn_cfg.NMS_THRESH,
    )
    if cfg.MODEL.BOX_CODER_PLUS_ONE:
        from sgg.modeling.sgb_conventions import PlusOneBoxCoder

        rpn.box_coder = PlusOneBoxCoder(rpn.box_coder.weights, rpn.box_coder.bbox_xform_clip)
    if rpn_cfg.MIN_SIZE > 0:  # SGB's 0 keeps torchvision's 1e-3 (drops only degenerate boxes)
        rpn.min_size = float(rpn_cfg.MIN_SIZE)
    return rpn
