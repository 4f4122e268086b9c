"""The box head: torchvision's ``RoIHeads`` with ``MultiScaleRoIAlign`` + ``TwoMLPHead`` + ``FastRCNNPredictor``,
configured by ``MODEL.ROI_HEADS.*`` / ``MODEL.ROI_BOX_HEAD.*`` (SGB's FPN2MLPFeatureExtractor + FPNPredictor).

Training uses torchvision's proposal matching (``FG/BG_IOU_THRESHOLD``; IoU in between is ignored), balanced
sampling (``BATCH_SIZE_PER_IMAGE``, ``POSITIVE_FRACTION``) and ``fastrcnn_loss``. GT boxes join the proposals only
when ``MODEL.ROI_RELATION_HEAD.ADD_GTBOX_TO_PROPOSAL_IN_TRAIN`` is True: SGB's detector pre-training does not add
them (PROTOCOL.md 3.2), torchvision always does. Inference is ``BoxPostProcessor`` (SGB's post-processing).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.ops import MultiScaleRoIAlign

from sgg.config.sgg_config import ConfigError
from sgg.modeling.sgb_conventions import MultiLevelRoIAlign, PlusOneBoxCoder
from sgg.structures import BoxList

from .inference import BoxPostProcessor
from .predictor import BoxPredictor

# The box head this module builds; SGB's names for it are the only accepted values of the two keys.
SUPPORTED_FEATURE_EXTRACTORS = ("FPN2MLPFeatureExtractor",)
SUPPORTED_PREDICTORS = ("FPNPredictor",)


class BoxHead(RoIHeads):
    """``box_roi_pool`` -> ``box_head`` (fc6, fc7) -> ``box_predictor`` (cls_score, bbox_pred)."""

    def __init__(self, box_roi_pool, box_head, box_predictor, fg_iou_thresh: float, bg_iou_thresh: float,
                 batch_size_per_image: int, positive_fraction: float, bbox_reg_weights, score_thresh: float,
                 nms_thresh: float, detections_per_img: int, post_nms_per_cls_topn: int = 300,
                 nms_filter_duplicates: bool = False, add_gt_proposals: bool = False, nms_plus_one: bool = False,
                 clip_to_last_pixel: bool = False, proposal_order: bool = False):
        super().__init__(box_roi_pool, box_head, box_predictor, fg_iou_thresh, bg_iou_thresh, batch_size_per_image,
                         positive_fraction, bbox_reg_weights, score_thresh, nms_thresh, detections_per_img)
        self.add_gt_to_proposals = add_gt_proposals
        self.post_processor = BoxPostProcessor(self.box_coder, score_thresh, nms_thresh, detections_per_img,
                                               post_nms_per_cls_topn, nms_filter_duplicates, nms_plus_one,
                                               clip_to_last_pixel, proposal_order)

    @classmethod
    def from_config(cls, cfg, in_channels: int, featmap_names: List[str]) -> "BoxHead":
        box, heads = cfg.MODEL.ROI_BOX_HEAD, cfg.MODEL.ROI_HEADS
        if box.FEATURE_EXTRACTOR not in SUPPORTED_FEATURE_EXTRACTORS:
            raise ConfigError(f"MODEL.ROI_BOX_HEAD.FEATURE_EXTRACTOR {box.FEATURE_EXTRACTOR!r} is not available; "
                              f"supported: {', '.join(SUPPORTED_FEATURE_EXTRACTORS)}")
        if box.PREDICTOR not in SUPPORTED_PREDICTORS:
            raise ConfigError(f"MODEL.ROI_BOX_HEAD.PREDICTOR {box.PREDICTOR!r} is not available; supported: "
                              f"{', '.join(SUPPORTED_PREDICTORS)}")
        if box.NUM_CLASSES < 2:
            raise ConfigError(f"MODEL.ROI_BOX_HEAD.NUM_CLASSES must count the background and at least one class, "
                              f"got {box.NUM_CLASSES}")
        resolution = box.POOLER_RESOLUTION
        if box.POOLER_ALIGNED or box.POOLER_LEGACY_LEVELS:  # SGB's level rule / the aligned RoIAlign (sgb_conventions)
            pooler = MultiLevelRoIAlign(featmap_names, resolution, box.POOLER_SAMPLING_RATIO,
                                        aligned=box.POOLER_ALIGNED, legacy_levels=box.POOLER_LEGACY_LEVELS)
        else:
            pooler = MultiScaleRoIAlign(featmap_names, output_size=resolution, sampling_ratio=box.POOLER_SAMPLING_RATIO)
        mlp = TwoMLPHead(in_channels * resolution * resolution, box.MLP_HEAD_DIM)
        predictor = BoxPredictor(box.MLP_HEAD_DIM, box.NUM_CLASSES, cfg.MODEL.CLS_AGNOSTIC_BBOX_REG)
        head = cls(pooler, mlp, predictor,
                   fg_iou_thresh=heads.FG_IOU_THRESHOLD, bg_iou_thresh=heads.BG_IOU_THRESHOLD,
                   batch_size_per_image=heads.BATCH_SIZE_PER_IMAGE, positive_fraction=heads.POSITIVE_FRACTION,
                   bbox_reg_weights=tuple(heads.BBOX_REG_WEIGHTS), score_thresh=heads.SCORE_THRESH,
                   nms_thresh=heads.NMS, detections_per_img=heads.DETECTIONS_PER_IMG,
                   post_nms_per_cls_topn=heads.POST_NMS_PER_CLS_TOPN,
                   nms_filter_duplicates=heads.NMS_FILTER_DUPLICATES,
                   add_gt_proposals=cfg.MODEL.ROI_RELATION_HEAD.ADD_GTBOX_TO_PROPOSAL_IN_TRAIN,
                   nms_plus_one=cfg.MODEL.NMS_PLUS_ONE, clip_to_last_pixel=cfg.MODEL.CLIP_TO_LAST_PIXEL,
                   proposal_order=heads.PROPOSAL_ORDER)
        if cfg.MODEL.BOX_CODER_PLUS_ONE:  # maskrcnn-benchmark's +1 box widths (sgg/modeling/sgb_conventions.py)
            head.box_coder = PlusOneBoxCoder(head.box_coder.weights, head.box_coder.bbox_xform_clip)
            head.post_processor.box_coder = head.box_coder
        return head

    def add_gt_proposals(self, proposals: List[torch.Tensor], gt_boxes: List[torch.Tensor]) -> List[torch.Tensor]:
        if self.add_gt_to_proposals:
            return super().add_gt_proposals(proposals, gt_boxes)
        return list(proposals)  # a new list: select_training_samples writes into it

    # ------------------------------------------------------------------------------------------------ building blocks
    def box_features(self, features: Dict[str, torch.Tensor], boxes: List[torch.Tensor],
                     image_sizes: List[Tuple[int, int]]) -> torch.Tensor:
        """(sum N, MLP_HEAD_DIM) fc7 features of ``boxes`` (xyxy tensors per image, image coordinates)."""
        return self.box_head(self.box_roi_pool(features, boxes, image_sizes))

    def losses(self, features: Dict[str, torch.Tensor], proposals: List[torch.Tensor],
               image_sizes: List[Tuple[int, int]], targets: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
        """``loss_classifier`` and ``loss_box_reg`` on proposals sampled against ``targets`` (torchvision dicts)."""
        proposals, _, labels, regression_targets = self.select_training_samples(proposals, targets)
        class_logits, box_regression = self.box_predictor(self.box_features(features, proposals, image_sizes))
        loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
        return {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}

    def detect(self, features: Dict[str, torch.Tensor], proposals: List[torch.Tensor],
               image_sizes: List[Tuple[int, int]]) -> List[BoxList]:
        """Post-processed detections of every image (see ``BoxPostProcessor``), in training or eval mode."""
        feats = self.box_features(features, proposals, image_sizes)
        class_logits, box_regression = self.box_predictor(feats)
        return self.post_processor(class_logits, box_regression, feats, proposals, image_sizes)

    def forward(self, features: Dict[str, torch.Tensor], proposals: List[torch.Tensor],
                image_shapes: List[Tuple[int, int]], targets: Optional[List[Dict[str, torch.Tensor]]] = None):
        """torchvision's ``RoIHeads`` contract: (detections, {}) in eval, ([], losses) in training."""
        if self.training:
            return [], self.losses(features, proposals, image_shapes, targets)
        return self.detect(features, proposals, image_shapes), {}
