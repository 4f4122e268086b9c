"""Hungarian matching of predicted to GT triplets (METHODS.md 6.2, the reference's ``forward_relation``).

For query i and GT triplet k the cost is summed over the supervised decoder layers and over subject, object and
predicate:

    C[i, k] = sum_layers sum_{x in sub, obj, rel} ( w_cls * -p_x,i(c_x,k)
                                                    + w_L1 * |b_x,i - b_x,k|_1
                                                    + w_giou * -GIoU(b_x,i, b_x,k) )

with p the softmax probabilities (background included in the softmax) and boxes in normalised (cx, cy, w, h); the
relation box target is the centre-to-centre box (targets.py). ``scipy.optimize.linear_sum_assignment`` solves each
image's problem once, and that one assignment is used for the losses of *every* layer.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_convert, generalized_box_iou

from sgg.config.sgg_config import ConfigError

from .targets import TripletTargets

BRANCHES = (("subject", "subject_labels", "subject_boxes"), ("object", "object_labels", "object_boxes"),
            ("relation", "predicate_labels", "relation_boxes"))


def _box_cost(pred: torch.Tensor, gt: torch.Tensor, l1_weight: float, giou_weight: float) -> torch.Tensor:
    l1 = torch.cdist(pred, gt, p=1)
    giou = generalized_box_iou(box_convert(pred, "cxcywh", "xyxy"), box_convert(gt, "cxcywh", "xyxy"))
    return l1_weight * l1 - giou_weight * giou


def triplet_cost_matrix(outputs: Dict[str, torch.Tensor], target: TripletTargets, class_weight: float = 1.0,
                        l1_weight: float = 5.0, giou_weight: float = 2.0) -> torch.Tensor:
    """(Q, G) cost of one image; ``outputs`` holds this image's (L, Q, ...) logits and boxes of the layers to sum."""
    num_layers, num_queries = outputs["relation_logits"].shape[:2]
    cost = outputs["relation_logits"].new_zeros((num_queries, len(target)), dtype=torch.float32)
    if len(target) == 0:
        return cost
    for name, label_key, box_key in BRANCHES:
        labels, gt_boxes = getattr(target, label_key), getattr(target, box_key).float()
        prob = outputs[f"{name}_logits"].float().softmax(-1)
        boxes = outputs[f"{name}_boxes"].float()
        for layer in range(num_layers):
            cost = cost - class_weight * prob[layer][:, labels]
            cost = cost + _box_cost(boxes[layer], gt_boxes, l1_weight, giou_weight)
    return cost


def hungarian_match(cost: torch.Tensor, allow_unmatched_gt: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """(query indices, GT indices) of the minimum-cost assignment of a (Q, G) matrix; sorted by query.

    Q < G is an error unless ``allow_unmatched_gt``: then every query is matched and the G - Q GT left over are the
    ones the minimum-cost assignment leaves out (scipy's rectangular assignment, as in DETR's HungarianMatcher)."""
    if cost.shape[1] > cost.shape[0] and not allow_unmatched_gt:
        raise ValueError(f"cannot match {cost.shape[1]} GT targets to {cost.shape[0]} queries")
    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy())
    device = cost.device
    return (torch.as_tensor(rows, dtype=torch.int64, device=device),
            torch.as_tensor(cols, dtype=torch.int64, device=device))


class TripletMatcher:
    """``matcher(outputs, targets)`` -> one (query indices, GT indices) pair per image, computed from the cost summed
    over the layers ``layers`` (a slice or index list into the outputs' first dimension)."""

    def __init__(self, class_weight: float = 1.0, l1_weight: float = 5.0, giou_weight: float = 2.0):
        if class_weight == 0 and l1_weight == 0 and giou_weight == 0:
            raise ConfigError("MODEL.DETR.COST_CLASS, L1_WEIGHT and GIOU_WEIGHT cannot all be 0")
        self.class_weight = class_weight
        self.l1_weight = l1_weight
        self.giou_weight = giou_weight

    @torch.no_grad()
    def __call__(self, outputs: Dict[str, torch.Tensor], targets: Sequence[TripletTargets],
                 layers=slice(None)) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        matches = []
        device_type = outputs["relation_logits"].device.type
        # The costs compute in float32 under autocast too: with bfloat16 costs, queries whose costs differ in the
        # third decimal would tie and the assignment would depend on rounding.
        with torch.autocast(device_type, enabled=False):
            for image, target in enumerate(targets):
                per_image = {key: value[layers, image] for key, value in outputs.items()}
                cost = triplet_cost_matrix(per_image, target, self.class_weight, self.l1_weight, self.giou_weight)
                matches.append(hungarian_match(cost))
        return matches
