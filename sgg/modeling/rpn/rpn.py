"""torchvision's ``AnchorGenerator`` + ``RPNHead`` + ``RegionProposalNetwork`` from ``MODEL.RPN.*``.

Mapping of SGB's keys (PROTOCOL.md section 3):

* ``ANCHOR_SIZES``: one size per feature level of an FPN backbone; with a single-level backbone (VGG-16) all sizes
  sit on that level. ``ASPECT_RATIOS`` (height / width, the same convention in both code bases) apply at every level.
  ``ANCHOR_STRIDE``: used with ``LEGACY_ANCHORS`` (SGB's anchors; it must equal the backbone's feature strides);
  otherwise torchvision takes each level's stride as padded image size // feature map size (not 64 on P6).
* ``PRE_NMS_TOP_N_*``: kept per level before NMS, as SGB.
* proposals kept per image after NMS: ``FPN_POST_NMS_TOP_N_*`` with an FPN backbone, ``POST_NMS_TOP_N_*`` without.
  torchvision runs NMS per level and then keeps the top ones over all levels; SGB's extra per-level cap
  (``POST_NMS_TOP_N_*`` with FPN) is applied with ``FPN_POST_NMS_PER_LEVEL_CAP``. Proposals are always counted per
  image (``FPN_POST_NMS_PER_BATCH`` False, the SGB VG yaml's value).
* ``RPN_MID_CHANNEL``: channels of the RPN head's 3x3 conv.
* SGB's conventions ``MODEL.NMS_PLUS_ONE``, ``MODEL.CLIP_TO_LAST_PIXEL`` and ``FPN_POST_NMS_PER_LEVEL_CAP``
  (sgg/modeling/sgb_conventions.py): with any of them on, ``ProposalNetwork`` selects proposals step by step as
  SGB's ``RPNPostProcessor``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import boxes as box_ops

from sgg.modeling.sgb_conventions import (DetectronAnchorGenerator, PlusOneBoxCoder, clip_boxes_to_last_pixel,
                                          min_size_mask_plus_one, nms_plus_one)

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


class ProposalNetwork(RegionProposalNetwork):
    """torchvision's ``RegionProposalNetwork``; with any of SGB's proposal conventions on, the proposals are selected
    as SGB's ``RPNPostProcessor`` does: per level, the ``PRE_NMS_TOP_N`` best objectness probabilities, decoded,
    clipped, small boxes removed, NMS, at most ``per_level_post_nms_top_n`` kept; then the ``POST_NMS_TOP_N`` best
    over all levels, best first. Each convention switches one step from torchvision's rule to SGB's."""

    def __init__(self, *args, nms_plus_one: bool = False, clip_to_last_pixel: bool = False,
                 per_level_post_nms_top_n: Optional[Dict[str, int]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.nms_plus_one = nms_plus_one
        self.clip_to_last_pixel = clip_to_last_pixel
        self._per_level_post_nms_top_n = per_level_post_nms_top_n

    @property
    def sgb_selection(self) -> bool:
        return self.nms_plus_one or self.clip_to_last_pixel or self._per_level_post_nms_top_n is not None

    def per_level_post_nms_top_n(self) -> int:
        """SGB's per-level cap after NMS; 0: none."""
        if self._per_level_post_nms_top_n is None:
            return 0
        return self._per_level_post_nms_top_n["training" if self.training else "testing"]

    def select_in_level(self, boxes: torch.Tensor, scores: torch.Tensor,
                        image_size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """One level of one image: clip, remove small boxes, NMS, per-level cap; best first."""
        if self.clip_to_last_pixel:  # SGB: clip to W - 1, min size on +1 widths (MIN_SIZE 0 keeps every box)
            boxes = clip_boxes_to_last_pixel(boxes, image_size)
            keep = torch.where(min_size_mask_plus_one(boxes, self.min_size))[0]
        else:
            boxes = box_ops.clip_boxes_to_image(boxes, image_size)
            keep = box_ops.remove_small_boxes(boxes, self.min_size)
        boxes, scores = boxes[keep], scores[keep]
        # both NMS return the kept boxes best first here: SGB's keeps input order, which is descending score
        keep = (nms_plus_one if self.nms_plus_one else box_ops.nms)(boxes, scores, self.nms_thresh)
        cap = self.per_level_post_nms_top_n()
        if cap > 0:
            keep = keep[:cap]
        return boxes[keep], scores[keep]

    def filter_proposals(self, proposals: torch.Tensor, objectness: torch.Tensor, image_shapes: List[Tuple[int, int]],
                         num_anchors_per_level: List[int]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        if not self.sgb_selection:
            return super().filter_proposals(proposals, objectness, image_shapes, num_anchors_per_level)
        num_images = proposals.shape[0]
        probs = objectness.detach().reshape(num_images, -1).sigmoid()
        batch_idx = torch.arange(num_images, device=proposals.device)[:, None]
        per_image: List[List[Tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(num_images)]
        for level_boxes, level_probs in zip(proposals.split(num_anchors_per_level, 1),
                                            probs.split(num_anchors_per_level, 1)):
            top_probs, top_idx = level_probs.topk(min(self.pre_nms_top_n(), level_probs.shape[1]), dim=1, sorted=True)
            for index, (boxes, scores) in enumerate(zip(level_boxes[batch_idx, top_idx], top_probs)):
                per_image[index].append(self.select_in_level(boxes, scores, image_shapes[index]))
        final_boxes, final_scores = [], []
        for levels in per_image:
            boxes = torch.cat([b for b, _ in levels])
            scores = torch.cat([s for _, s in levels])
            scores, best = scores.topk(min(self.post_nms_top_n(), len(scores)), dim=0, sorted=True)
            final_boxes.append(boxes[best])
            final_scores.append(scores)
        return final_boxes, final_scores


def check_anchor_strides(cfg, feature_strides: Tuple[int, ...]) -> Tuple[int, ...]:
    """``MODEL.RPN.ANCHOR_STRIDE`` as the backbone's feature strides (SGB's anchors are shifted by it)."""
    strides = tuple(int(s) for s in cfg.MODEL.RPN.ANCHOR_STRIDE)
    if strides != tuple(feature_strides):
        raise ConfigError(f"MODEL.RPN.ANCHOR_STRIDE {strides} must list the strides of the backbone "
                          f"{cfg.MODEL.BACKBONE.CONV_BODY}'s feature maps {tuple(feature_strides)} with "
                          "MODEL.RPN.LEGACY_ANCHORS True (SGB's anchors are shifted by these strides)")
    return strides


def build_anchor_generator(cfg, num_levels: int, feature_strides: Optional[Tuple[int, ...]] = None) -> AnchorGenerator:
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
        strides = tuple(cfg.MODEL.RPN.ANCHOR_STRIDE) if feature_strides is None else \
            check_anchor_strides(cfg, feature_strides)
        return DetectronAnchorGenerator(per_level, (ratios,) * len(per_level), strides)
    return AnchorGenerator(sizes=per_level, aspect_ratios=(ratios,) * len(per_level))


def _top_n(train: int, test: int) -> Dict[str, int]:
    return {"training": int(train), "testing": int(test)}


def build_rpn(cfg, backbone) -> ProposalNetwork:
    rpn_cfg = cfg.MODEL.RPN
    num_levels = len(backbone.feature_strides)
    anchor_generator = build_anchor_generator(cfg, num_levels, tuple(backbone.feature_strides.values()))
    num_anchors = anchor_generator.num_anchors_per_location()
    if len(set(num_anchors)) != 1:
        raise ConfigError(f"the RPN head shares its layers over levels and needs the same anchor count per level, got "
                          f"{num_anchors} from MODEL.RPN.ANCHOR_SIZES / ASPECT_RATIOS")
    head = RPNHeadWithMidChannels(backbone.out_channels, rpn_cfg.RPN_MID_CHANNEL, num_anchors[0])
    per_level_cap = None
    if num_levels > 1:
        post_nms = _top_n(rpn_cfg.FPN_POST_NMS_TOP_N_TRAIN, rpn_cfg.FPN_POST_NMS_TOP_N_TEST)
        if rpn_cfg.FPN_POST_NMS_PER_LEVEL_CAP:
            per_level_cap = _top_n(rpn_cfg.POST_NMS_TOP_N_TRAIN, rpn_cfg.POST_NMS_TOP_N_TEST)
    else:
        post_nms = _top_n(rpn_cfg.POST_NMS_TOP_N_TRAIN, rpn_cfg.POST_NMS_TOP_N_TEST)
    rpn = ProposalNetwork(
        anchor_generator, head,
        fg_iou_thresh=rpn_cfg.FG_IOU_THRESHOLD, bg_iou_thresh=rpn_cfg.BG_IOU_THRESHOLD,
        batch_size_per_image=rpn_cfg.BATCH_SIZE_PER_IMAGE, positive_fraction=rpn_cfg.POSITIVE_FRACTION,
        pre_nms_top_n=_top_n(rpn_cfg.PRE_NMS_TOP_N_TRAIN, rpn_cfg.PRE_NMS_TOP_N_TEST),
        post_nms_top_n=post_nms, nms_thresh=rpn_cfg.NMS_THRESH,
        nms_plus_one=cfg.MODEL.NMS_PLUS_ONE, clip_to_last_pixel=cfg.MODEL.CLIP_TO_LAST_PIXEL,
        per_level_post_nms_top_n=per_level_cap,
    )
    if cfg.MODEL.BOX_CODER_PLUS_ONE:
        rpn.box_coder = PlusOneBoxCoder(rpn.box_coder.weights, rpn.box_coder.bbox_xform_clip)
    if rpn_cfg.MIN_SIZE > 0 or cfg.MODEL.CLIP_TO_LAST_PIXEL:
        rpn.min_size = float(rpn_cfg.MIN_SIZE)  # else torchvision's 1e-3 on plain widths: drops degenerate boxes
    return rpn
