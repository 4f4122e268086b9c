"""Box-head post-processing as SGB's ``PostProcessor`` (PROTOCOL.md 4.1), keeping what the relation heads need.

Per image: softmax over classes, per-class decoding, clip to the image; every (proposal, foreground class) with
score > ``SCORE_THRESH`` is a candidate; NMS per class (``NMS``), at most ``POST_NMS_PER_CLS_TOPN`` per class; with
``NMS_FILTER_DUPLICATES`` a proposal keeps only its best surviving class; finally the ``DETECTIONS_PER_IMG`` best.
Unlike torchvision's ``postprocess_detections`` the proposal behind each detection is kept, so its class logits,
per-class boxes and pooled features travel with it.

SGB's conventions (sgg/modeling/sgb_conventions.py), each off by default: ``nms_plus_one`` (SGB's NMS),
``clip_to_last_pixel`` (clip to [0, W - 1] x [0, H - 1] instead of [0, W] x [0, H]) and ``proposal_order``: SGB's
NMS returns the kept boxes in proposal order (the RPN's objectness order), so its per-class cap keeps the first
``POST_NMS_PER_CLS_TOPN`` proposals, not the best-scoring ones, and its detections come out in that order (by proposal
with ``NMS_FILTER_DUPLICATES``, else class by class); the final cut keeps every detection scoring at least the
``DETECTIONS_PER_IMG``-th best score (SGB's ``kthvalue`` rule: more only when scores tie there).
"""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torchvision.ops import boxes as box_ops

from sgg.modeling.sgb_conventions import batched_nms_plus_one, clip_boxes_to_last_pixel
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
                 post_nms_per_cls_topn: int, nms_filter_duplicates: bool, nms_plus_one: bool = False,
                 clip_to_last_pixel: bool = False, proposal_order: bool = False):
        self.box_coder = box_coder
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.post_nms_per_cls_topn = post_nms_per_cls_topn
        self.nms_filter_duplicates = nms_filter_duplicates
        self.nms_plus_one = nms_plus_one
        self.clip_to_last_pixel = clip_to_last_pixel
        self.proposal_order = proposal_order

    def nms(self, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-class NMS; kept indices best first, or in input order with ``proposal_order``."""
        if self.nms_plus_one:
            keep = batched_nms_plus_one(boxes, scores, labels, self.nms_thresh)  # input order
            return keep if self.proposal_order else keep[torch.argsort(scores[keep], descending=True, stable=True)]
        keep = box_ops.batched_nms(boxes, scores, labels, self.nms_thresh)  # score order
        return keep.sort()[0] if self.proposal_order else keep

    def select(self, probs: torch.Tensor, boxes: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(proposal index, label) of the kept detections of one image, best score first (``proposal_order``:
        SGB's order, see the module docstring).

        ``probs`` (N, C) class probabilities, ``boxes`` (N, C, 4) per-class boxes.
        """
        if self.proposal_order:  # candidates class by class, each class in proposal order: SGB's loop
            labels, proposal_idx = (probs[:, 1:] > self.score_thresh).t().nonzero().unbind(1)
        else:
            proposal_idx, labels = (probs[:, 1:] > self.score_thresh).nonzero().unbind(1)
        labels = labels + 1
        scores = probs[proposal_idx, labels]
        keep = self.nms(boxes[proposal_idx, labels], scores, labels)
        if self.post_nms_per_cls_topn > 0:
            keep = keep[rank_within_groups(labels[keep]) < self.post_nms_per_cls_topn]
        if self.proposal_order:
            return self.sgb_final_selection(probs, proposal_idx[keep], labels[keep])
        if self.nms_filter_duplicates:
            keep = keep[first_per_group(proposal_idx[keep])]
        keep = keep[: self.detections_per_img]
        return proposal_idx[keep], labels[keep]

    def sgb_final_selection(self, probs: torch.Tensor, proposal_idx: torch.Tensor,
                            labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """SGB's ``filter_results`` after the per-class NMS: with ``nms_filter_duplicates`` each proposal keeps its
        best surviving class (proposal order), then the ``kthvalue`` cut to ``detections_per_img``."""
        if self.nms_filter_duplicates:
            survived = torch.zeros_like(probs)
            survived[proposal_idx, labels] = 1.0
            best_scores, best_labels = (probs * survived).max(1)
            proposal_idx = best_scores.nonzero().squeeze(1)
            labels = best_labels[proposal_idx]
        scores = probs[proposal_idx, labels]
        if len(scores) > self.detections_per_img > 0:
            threshold = torch.kthvalue(scores.cpu(), len(scores) - self.detections_per_img + 1)[0].item()
            keep = torch.where(scores >= threshold)[0]
            proposal_idx, labels = proposal_idx[keep], labels[keep]
        return proposal_idx, labels

    def __call__(self, class_logits: torch.Tensor, box_regression: torch.Tensor, box_features: torch.Tensor,
                 proposals: List[torch.Tensor], image_sizes: List[Tuple[int, int]]) -> List[BoxList]:
        counts = [len(p) for p in proposals]
        probs_all = F.softmax(class_logits, -1)
        boxes_all = self.box_coder.decode(box_regression, proposals)  # (sum N, C, 4)
        results = []
        for probs, boxes, logits, feats, (h, w) in zip(probs_all.split(counts), boxes_all.split(counts),
                                                       class_logits.split(counts), box_features.split(counts),
                                                       image_sizes):
            if self.clip_to_last_pixel:
                boxes = clip_boxes_to_last_pixel(boxes, (h, w))
            else:
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
