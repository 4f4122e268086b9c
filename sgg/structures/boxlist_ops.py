"""Box operations shared by the data pipeline, the model and the evaluator (torch and numpy flavours)."""
from __future__ import annotations

import numpy as np
import torch

from .bounding_box import BoxList


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, legacy: bool = True) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes. ``legacy`` uses maskrcnn-benchmark's +1 pixel widths (SGB's convention)."""
    offset = 1.0 if legacy else 0.0
    area1 = (boxes1[:, 2] - boxes1[:, 0] + offset) * (boxes1[:, 3] - boxes1[:, 1] + offset)
    area2 = (boxes2[:, 2] - boxes2[:, 0] + offset) * (boxes2[:, 3] - boxes2[:, 1] + offset)
    lt = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (rb - lt + offset).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


def boxlist_iou(a: BoxList, b: BoxList, legacy: bool = True) -> torch.Tensor:
    if a.size != b.size:
        raise ValueError(f"boxlist_iou: box lists belong to images of different sizes {a.size} and {b.size}")
    return box_iou(a.convert("xyxy").bbox, b.convert("xyxy").bbox, legacy=legacy)


def box_intersection_np(boxes1: np.ndarray, boxes2: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """Pairwise intersection areas of xyxy boxes (numpy); ``offset=0`` is the strict overlap used by statistics."""
    lt = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = np.clip(rb - lt + offset, 0, None)
    return wh[..., 0] * wh[..., 1]


def box_iou_np(boxes1: np.ndarray, boxes2: np.ndarray, legacy: bool = True) -> np.ndarray:
    offset = 1.0 if legacy else 0.0
    inter = box_intersection_np(boxes1, boxes2, offset)
    area1 = (boxes1[:, 2] - boxes1[:, 0] + offset) * (boxes1[:, 3] - boxes1[:, 1] + offset)
    area2 = (boxes2[:, 2] - boxes2[:, 0] + offset) * (boxes2[:, 3] - boxes2[:, 1] + offset)
    return inter / (area1[:, None] + area2[None, :] - inter)


def union_boxes(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Element-wise union (enclosing) box of two aligned (P, 4) xyxy tensors."""
    return torch.cat([torch.min(boxes1[:, :2], boxes2[:, :2]), torch.max(boxes1[:, 2:], boxes2[:, 2:])], dim=1)
