"""Relation post-processing (PROTOCOL.md 4.6): object labels and scores, triplet scores, pairs sorted by them."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from sgg.structures import BoxList


def object_prediction_nms(boxes_per_cls: torch.Tensor, obj_logits: torch.Tensor, nms_thresh: float) -> torch.Tensor:
    """SGDet labels: greedily take the most confident (box, class) left; boxes of the same class overlapping it by
    IoU >= ``nms_thresh`` lose that class; each box is labelled once (SGB's ``obj_prediction_nms``)."""
    num_boxes, num_classes = obj_logits.shape
    if num_boxes == 0:
        return torch.zeros(0, dtype=torch.long, device=obj_logits.device)
    # (C, N, N) per-class IoU of the class-specific boxes
    per_class = boxes_per_cls.permute(1, 0, 2).float()
    lt = torch.max(per_class[:, :, None, :2], per_class[:, None, :, :2])
    rb = torch.min(per_class[:, :, None, 2:], per_class[:, None, :, 2:])
    wh = (rb - lt + 1).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area = (per_class[..., 2] - per_class[..., 0] + 1) * (per_class[..., 3] - per_class[..., 1] + 1)
    iou = inter / (area[:, :, None] + area[:, None, :] - inter)
    overlap = (iou >= nms_thresh).cpu().numpy()  # (C, N, N)

    prob = F.softmax(obj_logits.float(), dim=1).detach().cpu().numpy().copy()
    prob[:, 0] = 0.0
    labels = np.zeros(num_boxes, dtype=np.int64)
    for _ in range(num_boxes):
        box, cls = np.unravel_index(int(prob.argmax()), prob.shape)
        if labels[box] == 0:
            labels[box] = cls
        prob[overlap[cls, box], cls] = 0.0
        prob[box] = -1.0
    return torch.as_tensor(labels, device=obj_logits.device)


class RelationPostProcessor:
    """Turns one image's logits into the prediction BoxList the evaluator reads.

    Fields: ``pred_labels``, ``pred_scores`` per box; ``rel_pair_idxs`` (P, 2), ``pred_rel_scores`` (P, R softmax
    with background), ``pred_rel_labels`` (P,) per pair, sorted by ``rel_score * score_s * score_o`` descending.
    """

    def __init__(self, mode: str, later_nms_thresh: float = 0.3, max_pairs: int = 0):
        self.mode = mode
        self.later_nms_thresh = later_nms_thresh
        self.max_pairs = max_pairs

    @classmethod
    def from_config(cls, cfg, mode: str):
        return cls(mode, cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES, cfg.TEST.RELATION.MAX_PAIRS_STORED)

    def object_predictions(self, boxes: BoxList, obj_logits: torch.Tensor):
        """(labels, scores, boxes) per the protocol: GT labels with score 1, argmax, or SGDet's later NMS."""
        if self.mode == "predcls":
            labels = boxes.get_field("labels").long()
            return labels, torch.ones(len(boxes), device=labels.device), boxes.bbox
        prob = F.softmax(obj_logits.float(), dim=-1)
        prob[:, 0] = 0
        if self.mode == "sgdet" and boxes.has_field("boxes_per_cls"):
            boxes_per_cls = boxes.get_field("boxes_per_cls")
            labels = object_prediction_nms(boxes_per_cls, obj_logits, self.later_nms_thresh)
            scores = prob[torch.arange(len(labels), device=labels.device), labels]
            box_coords = boxes_per_cls[torch.arange(len(labels), device=labels.device), labels]
            return labels, scores, box_coords
        scores, labels = prob[:, 1:].max(dim=1)
        return labels + 1, scores, boxes.bbox

    def __call__(self, boxes: BoxList, obj_logits: torch.Tensor, rel_logits: torch.Tensor,
                 rel_pair_idxs: torch.Tensor, rel_scores: Optional[torch.Tensor] = None) -> BoxList:
        """``rel_scores`` may replace softmax(rel_logits) (e.g. a re-scoring module's calibrated probabilities)."""
        labels, scores, coords = self.object_predictions(boxes, obj_logits)
        out = BoxList(coords, boxes.size, "xyxy")
        for name in ("labels", "relation_tuple"):
            if boxes.has_field(name):
                out.add_field(name, boxes.get_field(name))
        out.add_field("pred_labels", labels)
        out.add_field("pred_scores", scores)
        rel_prob = F.softmax(rel_logits.float(), dim=-1) if rel_scores is None else rel_scores.float()
        if len(rel_pair_idxs):
            best_rel, best_class = rel_prob[:, 1:].max(dim=1)
            triplet = best_rel * scores[rel_pair_idxs[:, 0]] * scores[rel_pair_idxs[:, 1]]
            order = torch.argsort(triplet, descending=True, stable=True)
            if self.max_pairs > 0:
                order = order[: self.max_pairs]
            rel_pair_idxs, rel_prob, best_class = rel_pair_idxs[order], rel_prob[order], best_class[order] + 1
        else:
            best_class = torch.zeros(0, dtype=torch.long, device=rel_prob.device)
        out.add_field("rel_pair_idxs", rel_pair_idxs.long())
        out.add_field("pred_rel_scores", rel_prob)
        out.add_field("pred_rel_labels", best_class)
        return out


def prediction_to_eval_fields(prediction: BoxList) -> Dict[str, torch.Tensor]:
    """The evaluator's per-image mapping (``boxes, labels, scores, rel_pair_idxs, rel_scores``, and
    ``rel_rank_scores`` when the model ranks its own triplets: field ``pred_rel_rank_scores``)."""
    fields = {
        "boxes": prediction.convert("xyxy").bbox,
        "labels": prediction.get_field("pred_labels"),
        "scores": prediction.get_field("pred_scores"),
        "rel_pair_idxs": prediction.get_field("rel_pair_idxs"),
        "rel_scores": prediction.get_field("pred_rel_scores"),
    }
    if prediction.has_field("pred_rel_rank_scores"):
        fields["rel_rank_scores"] = prediction.get_field("pred_rel_rank_scores")
    return fields


def groundtruth_to_eval_fields(target: BoxList) -> Dict[str, torch.Tensor]:
    return {
        "boxes": target.convert("xyxy").bbox,
        "labels": target.get_field("labels"),
        "relations": target.get_field("relation_tuple"),
    }


__all__: List[str] = ["RelationPostProcessor", "object_prediction_nms", "prediction_to_eval_fields",
                      "groundtruth_to_eval_fields"]
