"""maskrcnn-benchmark's (SGB's) numeric conventions, behind config keys, so that its converted detector reproduces
its boxes (docs/demo.md):

* ``MODEL.BOX_CODER_PLUS_ONE``: box widths are ``x2 - x1 + 1`` when boxes are encoded and decoded (RPN and box head);
* ``MODEL.RPN.LEGACY_ANCHORS``: Detectron's cell anchors (centred on ``(stride - 1) / 2``, rounded widths);
* ``MODEL.RESNETS.FROZEN_BN_EPS``: the epsilon of the frozen batch norm (maskrcnn-benchmark's has none: 0).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator


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
    """torchvision's grid of anchors (cell anchors + stride shifts) with Detectron's cell anchors per level."""

    def __init__(self, sizes, aspect_ratios, strides: Sequence[int]):
        super().__init__(sizes, aspect_ratios)
        if len(strides) != len(sizes):
            raise ValueError(f"MODEL.RPN.LEGACY_ANCHORS needs one MODEL.RPN.ANCHOR_STRIDE per level: {len(sizes)} "
                             f"levels, strides {tuple(strides)}")
        self.cell_anchors = [detectron_cell_anchors(int(s), size, ratio)
                             for s, size, ratio in zip(strides, sizes, aspect_ratios)]


__all__ = ["PlusOneBoxCoder", "detectron_cell_anchors", "DetectronAnchorGenerator"]
