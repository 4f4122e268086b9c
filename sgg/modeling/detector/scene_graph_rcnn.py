"""The two-stage scene graph model: a (frozen) Faster R-CNN gives boxes and features, a relation head scores pairs.

The protocol (PredCls / SGCls / SGDet) comes from ``MODEL.ROI_RELATION_HEAD.USE_GT_BOX`` / ``USE_GT_OBJECT_LABEL``.
The detector is a sub-module (``model.detector``), so a detector checkpoint loads into it unchanged.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from sgg.config import get_protocol
from sgg.config.class_counts import check_class_counts, dataset_name
from sgg.modeling.registry import META_ARCHITECTURES
from sgg.modeling.roi_heads.relation_head.ba_sgg import prepare_stage2
from sgg.modeling.roi_heads.relation_head.relation_head import RelationHead
from sgg.structures import BoxList, boxlist_iou

from .generalized_rcnn import GeneralizedRCNN

logger = logging.getLogger(__name__)

GT_FIELDS = ("labels", "relation", "relation_tuple")


def assign_gt_labels(detections: BoxList, target: BoxList, fg_iou: float) -> torch.Tensor:
    """Label of the best-overlapping GT box when IoU >= ``fg_iou``, else 0 (SGB's ``assign_label_to_proposals``)."""
    if len(detections) == 0 or len(target) == 0:
        return torch.zeros(len(detections), dtype=torch.long, device=detections.bbox.device)
    iou = boxlist_iou(target, detections)  # (G, D)
    best_iou, best_gt = iou.max(dim=0)
    labels = target.get_field("labels").long()[best_gt]
    return torch.where(best_iou >= fg_iou, labels, torch.zeros_like(labels))


@META_ARCHITECTURES.register("SceneGraphRCNN")
class SceneGraphRCNN(nn.Module):
    """``model(images, targets)``: training -> dict of relation losses; eval -> list of prediction BoxLists with
    ``pred_labels``, ``pred_scores``, ``rel_pair_idxs``, ``pred_rel_scores``, ``pred_rel_labels`` (boxes in the
    input image's coordinates). PredCls and SGCls need the GT ``targets`` at test time too (their boxes)."""

    def __init__(self, detector: GeneralizedRCNN, relation_head: RelationHead, mode: str,
                 freeze_detector: bool = True, fg_iou_threshold: float = 0.5, add_gt_boxes_in_train: bool = False):
        super().__init__()
        self.detector = detector
        self.relation_head = relation_head
        self.mode = mode
        self.freeze_detector = freeze_detector
        self.fg_iou_threshold = fg_iou_threshold
        self.add_gt_boxes_in_train = add_gt_boxes_in_train
        if freeze_detector:
            for parameter in self.detector.parameters():
                parameter.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg, statistics: Optional[Dict] = None) -> "SceneGraphRCNN":
        if statistics is None:
            raise TypeError("SceneGraphRCNN needs the training statistics (class names, predicate distribution): build it with sgg.engine.relation.build_scene_graph_model(cfg, statistics) or "
                            "build_detection_model(cfg, statistics=sgg.data.get_dataset_statistics(cfg))")
        check_class_counts(cfg, dataset_name(cfg), statistics["obj_classes"], statistics["rel_classes"])
        detector = GeneralizedRCNN.from_config(cfg)
        head = RelationHead.from_config(cfg, detector.feature_interface(), statistics)
        prepare_stage2(head, cfg)  # BA-SGG's stage 2 (WITH_CLEAN_CLASSIFIER): train only a classifier copy
        return cls(detector, head, get_protocol(cfg), cfg.MODEL.ROI_RELATION_HEAD.FREEZE_DETECTOR,
                   cfg.MODEL.ROI_HEADS.FG_IOU_THRESHOLD, cfg.MODEL.ROI_RELATION_HEAD.ADD_GTBOX_TO_PROPOSAL_IN_TRAIN)

    def train(self, mode: bool = True) -> "SceneGraphRCNN":
        super().train(mode)
        # The detector always runs in eval mode here (RPN test settings, post-processed detections); freezing
        # decides only whether the relation losses also update it.
        self.detector.eval()
        return self

    def _detector_context(self):
        return torch.no_grad() if self.freeze_detector else contextlib.nullcontext()

    def _boxes_for_relations(self, images, features, targets: Optional[Sequence[BoxList]]) -> List[BoxList]:
        """GT boxes with the detector's class logits (PredCls, SGCls) or the detector's detections (SGDet)."""
        if self.mode in ("predcls", "sgcls"):
            if targets is None:
                raise ValueError(f"{self.mode} needs the GT boxes: pass targets at test time too")
            device = next(iter(features.values())).device
            boxes = [t.copy_with_fields([f for f in GT_FIELDS if t.has_field(f)]).to(device) for t in targets]
            if self.mode == "predcls" and not getattr(self.relation_head.predictor, "reads_predcls_detector_logits",
                                                      False):
                return boxes
            # SGCls, and PredCls for a predictor that asks (LinkNet's O0 is the detector's class distribution of the
            # GT boxes, as its reference): the detector's class logits of the GT boxes
            with self._detector_context():
                box_features = self.detector.pool_box_features(features, boxes, images.image_sizes)
                logits = self.detector.box_class_logits(box_features)
            for b, chunk in zip(boxes, logits.split([len(b) for b in boxes])):
                b.add_field("predict_logits", chunk)
            return boxes

        with self._detector_context():
            gt_for_rpn = targets if (self.training and self.add_gt_boxes_in_train) else None
            proposals, _ = self.detector.propose(images, features)  # the detector is in eval mode here
            if gt_for_rpn is not None:
                proposals = [torch.cat([p, t.bbox.to(p)]) for p, t in zip(proposals, gt_for_rpn)]
            detections = self.detector.detect(images, features, proposals)
        boxes = []
        for index, det in enumerate(detections):
            det = det.copy_with_fields(["predict_logits", "boxes_per_cls", "pred_scores"])
            if self.training:
                det.add_field("labels", assign_gt_labels(det, targets[index], self.fg_iou_threshold))
            boxes.append(det)
        return boxes

    def forward(self, images, targets: Optional[Sequence[BoxList]] = None):
        if self.training and targets is None:
            raise ValueError("SceneGraphRCNN needs targets in training mode")
        images = self.detector.prepare_images(images)
        with self._detector_context():
            features = self.detector.extract_features(images)
        boxes = self._boxes_for_relations(images, features, targets)
        if self.training:
            return self.relation_head(features, boxes, images.image_sizes,
                                      [t.to(boxes[0].bbox.device) for t in targets] if boxes else targets)
        return self.relation_head(features, boxes, images.image_sizes)
