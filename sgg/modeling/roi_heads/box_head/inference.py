"""Box-head post-processing as SGB's ``PostProcessor`` (PROTOCOL.md 4.1), keeping what the relation heads need.

Per image: softmax over classes, per-class decoding, clip to the image; every (proposal, foreground class) with
score > ``SCORE_THRESH`` is a candidate; NMS per class (``NMS``), at most ``POST_NMS_PER_CLS_TOPN`` per class; with
``NMS_FILTER_DUPLICATES`` a proposal keeps only its best surviving class; finally the ``DETECTIONS_PER_IMG`` best.
Unlike torchvision's ``postprocess_detections`` the proposal behind each detection is kept, so its class logits,
per-class boxes and pooled features travel with it.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torchvision.ops import boxes as box_ops

from sgg.structures import BoxList


def rank_within_groups(groups: torch.Tensor) -> torch.Tensor:
    """For entries already in priority order, each entry's rank among the entries of its group (0 = first)."""
    if groups.numel() == 0:
        return groups.clone()
    order = torch.argsort(groups, stable=True)
    sorted_groups = groups[order]
    counts = torch.bincount(sorted_groups)
    starts = torch.cumsum(counts, 0) - counts
    ranks = torch.empty_like(groups)
    ranks[order] = torch.arange(groups.numel(), device=groups.device) - starts[sorted_groups]
    return ranks


def first_per_group(groups: torch.Tensor) -> torch.Tensor:
    """Mask of the first entry of each group (entries in priority order)."""
    positions = torch.arange(groups.numel(), device=groups.device)
    if groups.numel() == 0:
        return positions.bool()
    first = torch.full((int(groups.max()) + 1,), groups.numel(), dtype=torch.long, device=groups.device)
    first = first.scatter_reduce(0, groups, positions, reduce="amin")
    return first[groups] == positions


class BoxPostProcessor:
    """Turns box-head outputs for proposals into per-image detections (BoxList) with their provenance."""

    def __init__(self, box_coder, score_thresh: float, nms_thresh: float, detections_per_img: int,
                 post_nms_per_cls_topn: int, nms_filter_duplicates: bool):
        self.box_coder = box_coder
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.post_nms_per_cls_topn = post_nms_per_cls_topn
        self.nms_filter_duplicates = nms_filter_duplicates

    def select(self, probs: torch.Tensor, boxes: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(proposal index, label) of the kept detections of one image, best score first.

        ``probs`` (N, C) class probabilities, ``boxes`` (N, C, 4) per-class boxes.
        """
        candidates = (probs[:, 1:] > self.score_thresh).nonzero()
        proposal_idx, labels = candidates[:, 0], candidates[:, 1] + 1
        scores = probs[proposal_idx, labels]
        keep = box_ops.batched_nms(boxes[proposal_idx, labels], scores, labels, self.nms_thresh)  # score order
        if self.post_nms_per_cls_topn > 0:
            keep = keep[rank_within_groups(labels[keep]) < self.post_nms_per_cls_topn]
        if self.nms_filter_duplicates:
            keep = keep[first_per_group(proposal_idx[keep])]
        keep = keep[: self.detections_per_img]
        return proposal_idx[keep], labels[keep]

    def __call__(self, class_logits: torch.Tensor, box_regression: torch.Tensor, box_features: torch.Tensor,
                 proposals: List[torch.Tensor], image_sizes: List[Tuple[int, int]]) -> List[BoxList]:
        counts = [len(p) for p in proposals]
        probs_all = F.softmax(class_logits, -1)
        boxes_all = self.box_coder.decode(box_regression, proposals)  # (sum N, C, 4)
        results = []
        for probs, boxes, logits, feats, (h, w) in zip(probs_all.split(counts), boxes_all.split(counts),
                                                       class_logits.split(counts), box_features.split(counts),
                                                       image_sizes):
            boxes = box_ops.clip_boxes_to_image(boxes, (h, w))
            proposal_idx, labels = self.select(probs, boxes)
            scores = probs[proposal_idx, labels]
            result = BoxList(boxes[proposal_idx, labels], (w, h), mode="xyxy")
            result.add_field("pred_labels", labels)
            result.add_field("pred_scores", scores)
            result.add_field("labels", labels)
            result.add_field("scores", scores)
            result.add_field("predict_logits", logits[proposal_idx])
            result.add_field("boxes_per_cls", boxes[proposal_idx])
            result.add_field("box_features", feats[proposal_idx])
            results.append(result)
        return results
