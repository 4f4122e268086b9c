"""maskrcnn-benchmark's (SGB's) numeric conventions, behind config keys, so that its converted detector reproduces
its boxes (docs/demo.md):

* ``MODEL.BOX_CODER_PLUS_ONE``: box widths are ``x2 - x1 + 1`` when boxes are encoded and decoded (RPN and box head);
* ``MODEL.RPN.LEGACY_ANCHORS``: Detectron's cell anchors (centred on ``(stride - 1) / 2``, rounded widths);
* ``MODEL.RESNETS.FROZEN_BN_EPS``: the epsilon of the frozen batch norm (maskrcnn-benchmark's has none: 0).
* ``MODEL.ROI_BOX_HEAD.POOLER_LEGACY_LEVELS``: maskrcnn-benchmark's FPN level of a box (``+1`` areas, the epsilon
  inside the logarithm); ``MODEL.ROI_BOX_HEAD.POOLER_ALIGNED``: the RoIAlign variant (False: the legacy sampling
  grid of maskrcnn-benchmark / SGB and of torchvision's default; True: the half-pixel "aligned" grid of detectron2).
* ``MODEL.RPN.FPN_POST_NMS_PER_LEVEL_CAP``: at most ``POST_NMS_TOP_N_*`` proposals per FPN level after NMS, before
  the ``FPN_POST_NMS_TOP_N_*`` cut over all levels (SGB's ``RPNPostProcessor``; sgg/modeling/rpn/rpn.py);
* ``MODEL.NMS_PLUS_ONE``: ``nms_plus_one``, SGB's NMS (``+1`` widths, suppression at IoU >= threshold), in the RPN
  and the box post-processing;
* ``MODEL.CLIP_TO_LAST_PIXEL``: boxes clipped to [0, W - 1] x [0, H - 1] and the RPN's ``MIN_SIZE`` on ``+1``
  widths, so SGB's ``MIN_SIZE 0`` keeps zero-size boxes (``clip_boxes_to_last_pixel``, ``min_size_mask_plus_one``);
* ``MODEL.ROI_HEADS.PROPOSAL_ORDER``: the box post-processing keeps SGB's candidate order (proposal order, i.e.
  objectness) for the per-class cap and the output (sgg/modeling/roi_heads/box_head/inference.py).
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from torchvision.ops import roi_align
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator

from sgg.config.sgg_config import ConfigError


class PlusOneBoxCoder(BoxCoder):
    """torchvision's ``BoxCoder`` with maskrcnn-benchmark's ``+1`` box widths (``TO_REMOVE = 1``)."""

    def encode_single(self, reference_boxes: torch.Tensor, proposals: torch.Tensor) -> torch.Tensor:
        wx, wy, ww, wh = self.weights
        widths = proposals[:, 2] - proposals[:, 0] + 1.0
        heights = proposals[:, 3] - proposals[:, 1] + 1.0
        ctr_x = proposals[:, 0] + 0.5 * widths
        ctr_y = proposals[:, 1] + 0.5 * heights
        gt_widths = reference_boxes[:, 2] - reference_boxes[:, 0] + 1.0
        gt_heights = reference_boxes[:, 3] - reference_boxes[:, 1] + 1.0
        gt_ctr_x = reference_boxes[:, 0] + 0.5 * gt_widths
        gt_ctr_y = reference_boxes[:, 1] + 0.5 * gt_heights
        return torch.stack((wx * (gt_ctr_x - ctr_x) / widths, wy * (gt_ctr_y - ctr_y) / heights,
                            ww * torch.log(gt_widths / widths), wh * torch.log(gt_heights / heights)), dim=1)

    def decode_single(self, rel_codes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        boxes = boxes.to(rel_codes.dtype)
        widths = boxes[:, 2] - boxes[:, 0] + 1.0
        heights = boxes[:, 3] - boxes[:, 1] + 1.0
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx, dy = rel_codes[:, 0::4] / wx, rel_codes[:, 1::4] / wy
        dw = torch.clamp(rel_codes[:, 2::4] / ww, max=self.bbox_xform_clip)
        dh = torch.clamp(rel_codes[:, 3::4] / wh, max=self.bbox_xform_clip)
        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = torch.exp(dw) * widths[:, None]
        pred_h = torch.exp(dh) * heights[:, None]
        x1, y1 = pred_ctr_x - 0.5 * pred_w, pred_ctr_y - 0.5 * pred_h
        x2, y2 = pred_ctr_x + 0.5 * pred_w - 1.0, pred_ctr_y + 0.5 * pred_h - 1.0
        return torch.stack((x1, y1, x2, y2), dim=2).flatten(1)


def detectron_cell_anchors(stride: int, sizes: Sequence[float], ratios: Sequence[float]) -> torch.Tensor:
    """(len(ratios) * len(sizes), 4) anchors of one cell as Detectron's ``generate_anchors``: the ``stride``-sized
    reference box [0, 0, stride - 1, stride - 1], re-shaped to each aspect ratio with rounded sides, then scaled to
    each size; ratio-major order as maskrcnn-benchmark."""
    ctr = 0.5 * (stride - 1)
    out = []
    for ratio in ratios:
        ws = np.round(np.sqrt(stride * stride / ratio))
        hs = np.round(ws * ratio)
        for size in sizes:
            w, h = ws * size / stride, hs * size / stride
            out.append([ctr - 0.5 * (w - 1), ctr - 0.5 * (h - 1), ctr + 0.5 * (w - 1), ctr + 0.5 * (h - 1)])
    return torch.tensor(out, dtype=torch.float32)


class DetectronAnchorGenerator(AnchorGenerator):
    """Detectron's anchors: its cell anchors per level, shifted by the configured stride of the level
    (``MODEL.RPN.ANCHOR_STRIDE``). torchvision derives a level's stride from padded size // grid size, which is not
    64 on P6 (a 608-pixel side gives a 10-cell P6 grid: stride 60); SGB shifts by the configured 64."""

    def __init__(self, sizes, aspect_ratios, strides: Sequence[int]):
        super().__init__(sizes, aspect_ratios)
        if len(strides) != len(sizes):
            raise ConfigError(f"MODEL.RPN.LEGACY_ANCHORS needs one MODEL.RPN.ANCHOR_STRIDE per level: {len(sizes)} "
                              f"levels, strides {tuple(strides)}")
        self.strides = tuple(int(s) for s in strides)
        self.cell_anchors = [detectron_cell_anchors(s, size, ratio)
                             for s, size, ratio in zip(self.strides, sizes, aspect_ratios)]

    def forward(self, image_list, feature_maps: List[torch.Tensor]) -> List[torch.Tensor]:
        if len(feature_maps) != len(self.strides):
            raise ConfigError(f"{len(feature_maps)} feature maps but MODEL.RPN.ANCHOR_STRIDE has {len(self.strides)} "
                              "strides")
        grid_sizes = [feature_map.shape[-2:] for feature_map in feature_maps]
        device = feature_maps[0].device
        strides = [[torch.tensor(s, dtype=torch.int64, device=device)] * 2 for s in self.strides]
        self.set_cell_anchors(feature_maps[0].dtype, device)
        anchors = torch.cat(self.grid_anchors(grid_sizes, strides))
        return [anchors for _ in image_list.image_sizes]


def nms_plus_one(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """SGB's NMS (maskrcnn-benchmark ``nms_cpu``): greedy in descending score order, IoU with ``+1`` widths, a box
    is suppressed when its IoU with a kept one is >= ``threshold`` (torchvision: >, without the ``+1``). Returns
    the kept indices in ascending index order, as SGB's kernels do (not in score order). Exact, with the same
    float operations as SGB's kernel; a Python loop over the kept boxes (2-3 s for 6000 random boxes of which 5575
    are kept, on one busy CPU core; torchvision's compiled NMS took 1.4 s there)."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = scores.sort(0, descending=True)[1]
    x1, y1, x2, y2 = boxes[order].unbind(1)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    for i in range(len(order)):
        if suppressed[i]:
            continue
        w = (torch.minimum(x2[i], x2[i + 1:]) - torch.maximum(x1[i], x1[i + 1:]) + 1).clamp(min=0)
        h = (torch.minimum(y2[i], y2[i + 1:]) - torch.maximum(y1[i], y1[i + 1:]) + 1).clamp(min=0)
        inter = w * h
        overlap = inter / (areas[i] + areas[i + 1:] - inter)
        suppressed[i + 1:] |= overlap >= threshold
    return order[~suppressed].sort()[0]


def batched_nms_plus_one(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor,
                         threshold: float) -> torch.Tensor:
    """``nms_plus_one`` within each group (class); kept indices in ascending index order."""
    keep = [index[nms_plus_one(boxes[index], scores[index], threshold)]
            for index in (torch.where(groups == g)[0] for g in torch.unique(groups))]
    if not keep:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    return torch.cat(keep).sort()[0]


def clip_boxes_to_last_pixel(boxes: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
    """Boxes (..., 4) clipped to [0, W - 1] x [0, H - 1] (maskrcnn-benchmark's ``clip_to_image``; torchvision clips
    to [0, W] x [0, H]). ``image_size`` is (H, W)."""
    height, width = image_size
    x = boxes[..., 0::2].clamp(min=0, max=width - 1)
    y = boxes[..., 1::2].clamp(min=0, max=height - 1)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def min_size_mask_plus_one(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """(N,) mask of boxes whose ``+1`` width and height are >= ``min_size`` (maskrcnn-benchmark's
    ``remove_small_boxes``): with ``min_size`` 0 a zero-size box (x1 = x2) is kept; torchvision drops boxes under
    its 1e-3 minimum."""
    return (boxes[:, 2] - boxes[:, 0] + 1 >= min_size) & (boxes[:, 3] - boxes[:, 1] + 1 >= min_size)


class MultiLevelRoIAlign(nn.Module):
    """RoIAlign on the FPN level of each box, as torchvision's ``MultiScaleRoIAlign`` but with the level rule and the
    RoIAlign variant chosen by config keys. A box of side ``s = sqrt(area)`` goes to level
    ``floor(4 + log2(s / 224 + 1e-6))`` with ``area = (x2 - x1 + 1)(y2 - y1 + 1)`` (``legacy_levels``:
    maskrcnn-benchmark's ``LevelMapper``) or ``floor(4 + log2(s / 224) + 1e-6)`` with ``area = (x2 - x1)(y2 - y1)``
    (torchvision's), clamped to the levels present. The scale of a level is the power of two nearest to
    feature size / padded image size (torchvision's rule; the POOLER_SCALES of an FPN config give the same values)."""

    def __init__(self, featmap_names: Sequence[str], output_size: int, sampling_ratio: int, aligned: bool = False,
                 legacy_levels: bool = True, canonical_scale: float = 224.0, canonical_level: int = 4):
        super().__init__()
        self.featmap_names = list(featmap_names)
        self.output_size = (int(output_size), int(output_size))
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)
        self.legacy_levels = bool(legacy_levels)
        self.canonical_scale, self.canonical_level = float(canonical_scale), int(canonical_level)

    def box_levels(self, boxes: torch.Tensor, scales: Sequence[float]) -> torch.Tensor:
        """(N,) index into ``scales`` of each xyxy box."""
        k_min, k_max = -math.log2(scales[0]), -math.log2(scales[-1])
        plus = 1.0 if self.legacy_levels else 0.0
        side = torch.sqrt((boxes[:, 2] - boxes[:, 0] + plus) * (boxes[:, 3] - boxes[:, 1] + plus))
        if self.legacy_levels:
            level = torch.floor(self.canonical_level + torch.log2(side / self.canonical_scale + 1e-6))
        else:
            level = torch.floor(self.canonical_level + torch.log2(side / self.canonical_scale) + 1e-6)
        return (level.clamp(min=k_min, max=k_max) - k_min).to(torch.int64)

    def forward(self, features: Dict[str, torch.Tensor], boxes: List[torch.Tensor],
                image_shapes: List[Tuple[int, int]]) -> torch.Tensor:
        maps = [features[name] for name in self.featmap_names]
        padded = (max(s[0] for s in image_shapes), max(s[1] for s in image_shapes))
        scales = [2.0 ** round(math.log2(float(m.shape[-2]) / float(padded[0]))) for m in maps]
        rois = torch.cat([torch.cat([b.new_full((len(b), 1), float(i)), b], dim=1) for i, b in enumerate(boxes)])
        rois = rois.to(maps[0].dtype)
        if len(maps) == 1:
            return roi_align(maps[0], rois, self.output_size, scales[0], self.sampling_ratio, self.aligned)
        levels = self.box_levels(rois[:, 1:], scales)
        result = maps[0].new_zeros((len(rois), maps[0].shape[1]) + self.output_size)
        for level, (feature, scale) in enumerate(zip(maps, scales)):
            index = torch.where(levels == level)[0]
            if len(index):
                result[index] = roi_align(feature, rois[index], self.output_size, scale, self.sampling_ratio,
                                          self.aligned).to(result.dtype)
        return result


__all__ = ["PlusOneBoxCoder", "detectron_cell_anchors", "DetectronAnchorGenerator", "MultiLevelRoIAlign",
           "nms_plus_one", "batched_nms_plus_one", "clip_boxes_to_last_pixel", "min_size_mask_plus_one"]
