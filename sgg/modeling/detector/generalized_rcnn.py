"""Faster R-CNN (``GeneralizedRCNN``) assembled from torchvision parts and driven by SGB's config keys.

Input convention: images come from our data loader already resized, normalised (``INPUT.*``) and padded
(``ImageList``), so torchvision's ``GeneralizedRCNNTransform`` is not used; targets are ``BoxList``s (xyxy, in the
resized image) with a ``labels`` field. The model pads the batch to a multiple of ``SIZE_DIVISIBILITY`` (32, as
torchvision) when the loader did not, because anchors and RoI levels take their strides from the feature map sizes.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.image_list import ImageList as TorchvisionImageList

from sgg.modeling.backbone import build_backbone
from sgg.modeling.detector_interface import DetectorFeatureInterface
from sgg.modeling.registry import META_ARCHITECTURES
from sgg.modeling.roi_heads.box_head import BoxHead
from sgg.modeling.rpn import build_rpn
from sgg.structures import BoxList, ImageList, to_image_list

logger = logging.getLogger(__name__)

Images = Union[ImageList, Sequence[torch.Tensor], torch.Tensor]


@META_ARCHITECTURES.register("GeneralizedRCNN")
class GeneralizedRCNN(nn.Module):
    """backbone (+FPN) -> RPN -> box head.

    Contract (the engine and the relation heads rely on it):

    * ``model(images, targets=None)``: in training a dict of losses ``loss_objectness``, ``loss_rpn_box_reg``,
      ``loss_classifier``, ``loss_box_reg``; in eval a list of ``BoxList`` (xyxy, ``size`` = the unpadded input
      image's (w, h)) with fields ``pred_labels`` (int64), ``pred_scores``, ``labels`` (= pred_labels), ``scores``
      (= pred_scores), ``predict_logits`` (N, NUM_CLASSES), ``boxes_per_cls`` (N, NUM_CLASSES, 4) and
      ``box_features`` (N, MLP_HEAD_DIM); at most ``DETECTIONS_PER_IMG`` per image. Targets given in eval are ignored.
    * ``extract_features(images)`` -> ``OrderedDict`` name -> feature map (names/strides in ``feature_strides``).
    * ``propose(images, features, targets=None)`` -> (list of (P_i, 4) proposal tensors, RPN losses; empty in eval).
    * ``detect(images, features, proposals)`` -> detections as above, in training or eval mode.
    * ``pool_box_features(features, boxes, image_sizes)`` -> (sum N, MLP_HEAD_DIM) box-head features of any boxes
      (e.g. GT boxes in PredCls/SGCls); ``box_class_logits(box_features)`` -> (sum N, NUM_CLASSES).
    * ``feature_interface()`` -> ``DetectorFeatureInterface``: what a head on top reads (the relation head): the box
      pooler (``box_pooler``, a ``MultiScaleRoIAlign``), the box MLP (``box_head``), ``feature_channels`` and
      ``box_featmap_names``; ``feature_strides`` gives every map's stride.

    ``images`` may be an ``ImageList``, a list of (3, H, W) tensors or a (B, 3, H, W) tensor; ``image_sizes`` are
    (height, width) pairs as in ``ImageList``.
    """

    SIZE_DIVISIBILITY = 32

    def __init__(self, backbone: nn.Module, rpn: nn.Module, roi_heads: BoxHead):
        super().__init__()
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.num_classes = roi_heads.box_predictor.num_classes

    @classmethod
    def from_config(cls, cfg) -> "GeneralizedRCNN":
        backbone = build_backbone(cfg)
        rpn = build_rpn(cfg, backbone)
        roi_heads = BoxHead.from_config(cfg, backbone.out_channels, backbone.box_featmap_names)
        model = cls(backbone, rpn, roi_heads)
        model._init_box_head_from_backbone()
        return model

    def _init_box_head_from_backbone(self) -> None:
        """VGG-16: start fc6/fc7 from the ImageNet classifier when the shapes fit (neural-motifs does so)."""
        state = getattr(self.backbone, "pretrained_box_head_state", None)
        if state is None:
            return
        self.backbone.pretrained_box_head_state = None
        own = self.roi_heads.box_head.state_dict()
        if all(k in own and own[k].shape == v.shape for k, v in state.items()):
            self.roi_heads.box_head.load_state_dict(state)
            logger.info("box head fc6/fc7 initialised from the backbone's ImageNet classifier")
        else:
            logger.info("box head fc6/fc7 start from random weights: the ImageNet classifier needs "
                        "POOLER_RESOLUTION 7 and MLP_HEAD_DIM 4096")

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def box_pooler(self) -> nn.Module:
        return self.roi_heads.box_roi_pool

    @property
    def box_head(self) -> nn.Module:
        """The box MLP (fc6, fc7) between the pooler and the box predictor."""
        return self.roi_heads.box_head

    @property
    def feature_channels(self) -> int:
        return self.backbone.out_channels

    @property
    def feature_strides(self) -> "OrderedDict[str, int]":
        return self.backbone.feature_strides

    @property
    def featmap_names(self) -> List[str]:
        return list(self.backbone.feature_strides)

    @property
    def box_featmap_names(self) -> List[str]:
        return list(self.backbone.box_featmap_names)

    def feature_interface(self) -> DetectorFeatureInterface:
        return DetectorFeatureInterface(self.box_pooler, self.box_head, self.feature_channels,
                                        tuple(self.box_featmap_names))

    # ------------------------------------------------------------------------------------------------ inputs
    def prepare_images(self, images: Images) -> ImageList:
        """An ``ImageList`` padded to a multiple of ``SIZE_DIVISIBILITY`` (no copy when it already is)."""
        if isinstance(images, torch.Tensor) and images.ndim == 4:
            images = ImageList(images, [tuple(images.shape[-2:])] * images.shape[0])
        elif not hasattr(images, "tensors"):
            images = to_image_list(list(images), self.SIZE_DIVISIBILITY)
        tensors = images.tensors
        if tensors.ndim != 4 or tensors.shape[1] != 3:
            raise ValueError(f"images must be a batch of 3-channel images (B, 3, H, W), got {tuple(tensors.shape)}")
        height, width = tensors.shape[-2:]
        pad_h = -height % self.SIZE_DIVISIBILITY
        pad_w = -width % self.SIZE_DIVISIBILITY
        if pad_h or pad_w:
            tensors = F.pad(tensors, (0, pad_w, 0, pad_h))
        if not isinstance(images, ImageList) or tensors is not images.tensors:
            images = ImageList(tensors, [tuple(int(v) for v in s) for s in images.image_sizes])
        return images

    def to_torchvision_targets(self, targets: Sequence[BoxList],
                               image_sizes: List[Tuple[int, int]]) -> List[Dict[str, torch.Tensor]]:
        """BoxList targets -> torchvision's ``{"boxes", "labels"}`` dicts, checking what would fail later obscurely."""
        if len(targets) != len(image_sizes):
            raise ValueError(f"got {len(targets)} targets for {len(image_sizes)} images")
        device = next(self.parameters()).device
        converted = []
        for index, (target, (height, width)) in enumerate(zip(targets, image_sizes)):
            if not isinstance(target, BoxList):
                raise TypeError(f"target {index} is a {type(target).__name__}; targets must be BoxLists")
            if not target.has_field("labels"):
                raise ValueError(f"target {index} has no 'labels' field (fields: {target.fields()})")
            if tuple(target.size) != (width, height):
                raise ValueError(f"target {index} is for an image of (w, h) {tuple(target.size)} but the image is "
                                 f"{(width, height)}: targets must be in the resized image's coordinates")
            boxes = target.convert("xyxy").bbox.to(device=device, dtype=torch.float32)
            labels = target.get_field("labels").to(device=device, dtype=torch.int64)
            if len(labels) != len(boxes):
                raise ValueError(f"target {index}: {len(labels)} labels for {len(boxes)} boxes")
            if len(boxes):
                degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
                if bool(degenerate.any()):
                    bad = boxes[degenerate][0].tolist()
                    raise ValueError(f"target {index} has {int(degenerate.sum())} box(es) without area, e.g. "
                                     f"{bad}; x2 > x1 and y2 > y1 are needed")
                low, high = int(labels.min()), int(labels.max())
                if low < 1 or high >= self.num_classes:
                    raise ValueError(f"target {index} has labels in [{low}, {high}], outside 1..{self.num_classes - 1}"
                                     f" (MODEL.ROI_BOX_HEAD.NUM_CLASSES = {self.num_classes} counts the background)")
            converted.append({"boxes": boxes, "labels": labels})
        return converted

    # ------------------------------------------------------------------------------------------------ stages
    def extract_features(self, images: Images) -> "OrderedDict[str, torch.Tensor]":
        images = self.prepare_images(images)
        return self.backbone(images.tensors)

    def propose(self, images: Images, features: Dict[str, torch.Tensor],
                targets: Optional[Sequence[BoxList]] = None) -> Tuple[List[torch.Tensor], Dict[str, torch.Tensor]]:
        """RPN proposals per image (xyxy, image coordinates) and, in training, the RPN losses (targets needed)."""
        images = self.prepare_images(images)
        tv_targets = None
        if self.training:
            if targets is None:
                raise ValueError("the RPN needs targets in training mode (model.train()); call model.eval() to "
                                 "propose without them")
            tv_targets = self.to_torchvision_targets(targets, images.image_sizes)
        return self._propose(images, features, tv_targets)

    def _propose(self, images: ImageList, features, tv_targets):
        tv_images = TorchvisionImageList(images.tensors, list(images.image_sizes))
        return self.rpn(tv_images, features, tv_targets)

    def detect(self, images: Images, features: Dict[str, torch.Tensor],
               proposals: List[torch.Tensor]) -> List[BoxList]:
        """SGB's box post-processing of ``proposals`` (see the class docstring for the output fields)."""
        image_sizes = images.image_sizes if hasattr(images, "image_sizes") else self.prepare_images(images).image_sizes
        return self.roi_heads.detect(features, proposals, list(image_sizes))

    def pool_box_features(self, features: Dict[str, torch.Tensor], boxes: Sequence[BoxList],
                          image_sizes: Sequence[Tuple[int, int]]) -> torch.Tensor:
        """(sum N, MLP_HEAD_DIM) fc7 features of the given boxes, one BoxList per image (xyxy, image coordinates)."""
        tensors = [b.convert("xyxy").bbox.to(features[self.box_featmap_names[0]].dtype) for b in boxes]
        return self.roi_heads.box_features(features, tensors, [tuple(s) for s in image_sizes])

    def box_class_logits(self, box_features: torch.Tensor) -> torch.Tensor:
        """(sum N, NUM_CLASSES) class logits of the box predictor for box-head features."""
        return self.roi_heads.box_predictor.cls_score(box_features)

    # ------------------------------------------------------------------------------------------------ forward
    def forward(self, images: Images, targets: Optional[Sequence[BoxList]] = None):
        images = self.prepare_images(images)
        tv_targets = None
        if self.training:
            if targets is None:
                raise ValueError("GeneralizedRCNN needs targets in training mode")
            tv_targets = self.to_torchvision_targets(targets, images.image_sizes)
        features = self.extract_features(images)
        proposals, losses = self._propose(images, features, tv_targets)
        if not self.training:
            return self.roi_heads.detect(features, proposals, list(images.image_sizes))
        losses = dict(losses)
        losses.update(self.roi_heads.losses(features, proposals, list(images.image_sizes), tv_targets))
        return losses
