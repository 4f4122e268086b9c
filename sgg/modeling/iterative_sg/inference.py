"""IterativeSG outputs -> the per-image prediction BoxList every relation head produces (METHODS.md 6.5).

1. Softmax; subject and object label/score = best object class (no-object excluded), predicate score = best
   predicate (no-relation excluded), of the layer MODEL.DETR.TEST_INDEX.
2. The Q subject and Q object boxes are pooled; class-wise NMS (MODEL.DETR.ENTITY_NMS_THRESH) keeps the entity set;
   every pooled box is mapped to the kept box of its class it overlaps most. Both run on the boxes as predicted
   (normalised, not clipped to the image), as the reference's ``IterativeRelationDetr.inference``; only the kept
   boxes that are output are scaled to pixels and clipped (the reference's ``detector_postprocess``).
3. Triplet i -> (entity of subject i, entity of object i, predicate label i), scored s_rel * s_sub * s_obj, sorted,
   de-duplicated on (subject entity, object entity, predicate) keeping the best (or, with
   MODEL.DETR.ONE_PREDICATE_PER_PAIR, on the pair).

Fields, as :class:`~sgg.modeling.roi_heads.relation_head.inference.RelationPostProcessor`'s: boxes (xyxy, clipped,
``size`` = the image's (w, h)), ``pred_labels``, ``pred_scores``, ``rel_pair_idxs`` (P, 2), ``pred_rel_scores``
(P, R) the query's full softmax with no-relation at index 0 (the model's own label space is the dataset's, so nothing
is permuted), ``pred_rel_labels`` (P,). With ``own_ranking`` (MODEL.DETR.EVAL_QUERY_RANKING) also
``pred_rel_rank_scores`` (P,), the s_rel * s_sub * s_obj of step 3: the evaluator then ranks the triplets by it, i.e.
in this post-processor's order, as the reference evaluates them (docs/evaluation.md, "A model's own ranking").
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torchvision.ops import batched_nms, box_convert, box_iou

from sgg.config.sgg_config import ConfigError
from sgg.structures import BoxList


def assign_to_kept(boxes: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """For each box, the position in ``keep`` of the kept box of the same label with the highest IoU. Class-wise
    NMS always keeps the best box of every label present, so every box has a candidate."""
    iou = box_iou(boxes, boxes[keep])
    same_class = labels[:, None] == labels[keep][None, :]
    iou = torch.where(same_class, iou, torch.full_like(iou, -1.0))
    return iou.argmax(dim=1)


def unique_first(keys: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the first occurrence of each value of ``keys`` (1-d)."""
    if keys.numel() == 0:
        return torch.zeros(0, dtype=torch.bool, device=keys.device)
    _, inverse = torch.unique(keys, return_inverse=True)
    positions = torch.arange(len(keys), device=keys.device)
    first = torch.full((int(inverse.max()) + 1,), len(keys), dtype=torch.long, device=keys.device)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    mask = torch.zeros(len(keys), dtype=torch.bool, device=keys.device)
    mask[first] = True
    return mask


class IterativeSGPostProcessor:
    def __init__(self, nms_thresh: float = 0.5, one_predicate_per_pair: bool = False, max_pairs: int = 0,
                 own_ranking: bool = True):
        if not 0.0 < nms_thresh <= 1.0:
            raise ConfigError(f"MODEL.DETR.ENTITY_NMS_THRESH must be in (0, 1], got {nms_thresh}")
        self.nms_thresh = nms_thresh
        self.one_predicate_per_pair = one_predicate_per_pair
        self.max_pairs = max_pairs
        self.own_ranking = own_ranking

    def __call__(self, outputs: Dict[str, torch.Tensor], image_size: Tuple[int, int]) -> BoxList:
        """``outputs``: one image's (Q, ...) logits and normalised boxes of one layer; ``image_size`` (h, w)."""
        height, width = image_size
        scale = outputs["subject_boxes"].new_tensor([width, height, width, height]).float()
        sub_prob = outputs["subject_logits"].float().softmax(-1)
        obj_prob = outputs["object_logits"].float().softmax(-1)
        rel_prob = outputs["relation_logits"].float().softmax(-1)
        sub_scores, sub_labels = sub_prob[:, 1:].max(-1)
        obj_scores, obj_labels = obj_prob[:, 1:].max(-1)
        rel_scores, rel_labels = rel_prob[:, 1:].max(-1)
        num_queries = len(sub_scores)

        # NMS and the assignment see the unclipped boxes (a box across the border keeps its true overlaps)
        boxes = box_convert(torch.cat([outputs["subject_boxes"], outputs["object_boxes"]]).float(), "cxcywh", "xyxy")
        scores = torch.cat([sub_scores, obj_scores])
        labels = torch.cat([sub_labels, obj_labels]) + 1
        keep = batched_nms(boxes, scores, labels, self.nms_thresh)
        entity = assign_to_kept(boxes, labels, keep)
        pairs = torch.stack([entity[:num_queries], entity[num_queries:]], dim=1)

        triplet_scores = rel_scores * sub_scores * obj_scores
        order = torch.argsort(triplet_scores, descending=True, stable=True)
        pairs, rel_prob, rel_labels = pairs[order], rel_prob[order], rel_labels[order] + 1
        triplet_scores = triplet_scores[order]
        num_entities, num_predicates = len(keep), rel_prob.shape[1]
        key = pairs[:, 0] * num_entities + pairs[:, 1]
        if not self.one_predicate_per_pair:
            key = key * num_predicates + rel_labels
        first = unique_first(key)
        if self.max_pairs > 0:
            first = first & (first.cumsum(0) <= self.max_pairs)
        pairs, rel_prob, rel_labels, triplet_scores = (pairs[first], rel_prob[first], rel_labels[first],
                                                       triplet_scores[first])

        kept_boxes = boxes[keep] * scale
        kept_boxes[:, 0::2] = kept_boxes[:, 0::2].clamp(0, width)
        kept_boxes[:, 1::2] = kept_boxes[:, 1::2].clamp(0, height)
        prediction = BoxList(kept_boxes, (width, height), "xyxy")
        prediction.add_field("pred_labels", labels[keep])
        prediction.add_field("pred_scores", scores[keep])
        prediction.add_field("rel_pair_idxs", pairs.long())
        prediction.add_field("pred_rel_scores", rel_prob)
        prediction.add_field("pred_rel_labels", rel_labels)
        if self.own_ranking:
            prediction.add_field("pred_rel_rank_scores", triplet_scores)
        return prediction
