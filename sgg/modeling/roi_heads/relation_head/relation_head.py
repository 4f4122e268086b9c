"""The relation head: pairs -> object and pair features -> predictor -> (re-scorer) -> losses or predictions.

PROTOCOL.md 4.2 is SGB's ``ROIRelationHead``. Each stage is replaceable through a registry: the feature extractor
(``FEATURE_EXTRACTOR``), the predictor (``PREDICTOR``), the loss terms (``LOSS``) and an optional pair re-scoring
module (``RESCORER``, e.g. a Ranker) that sits between the predictor and post-processing.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from sgg.config import get_protocol
from sgg.modeling.registry import RELATION_RESCORERS, ROI_RELATION_FEATURE_EXTRACTORS, ROI_RELATION_PREDICTORS
from sgg.structures import BoxList

from . import feature_extractors  # noqa: F401  (registers RelationFeatureExtractor)
from . import rescorers  # noqa: F401  (registers the pair re-scoring modules)
from .ba_sgg import TransferClassifier, add_clean_classifier, freeze_all_but_clean, set_clean_train_mode
from .layers.frequency_bias import set_frequency_bias_dropout
from .inference import RelationPostProcessor
from .losses import RelationLossInputs, build_relation_losses
from .predictors import build_predictor
from .sampling import PairSample, inference_pairs, sample_detection_pairs, sample_gt_box_pairs
from .types import PredictorOutput, RelationBatch

logger = logging.getLogger(__name__)


class RelationHead(nn.Module):
    """Built from the config, the detector it sits on (for pooling and weight initialisation) and the dataset
    statistics (class names, frequency bias)."""

    def __init__(self, cfg, detector: nn.Module, statistics: Dict):
        super().__init__()
        head = cfg.MODEL.ROI_RELATION_HEAD
        self.mode = get_protocol(cfg)
        self.batch_size_per_image = head.BATCH_SIZE_PER_IMAGE
        self.positive_fraction = head.POSITIVE_FRACTION
        self.num_sample_per_gt_rel = head.NUM_SAMPLE_PER_GT_REL
        self.require_overlap_train = head.REQUIRE_BOX_OVERLAP
        self.require_overlap_test = cfg.TEST.RELATION.REQUIRE_OVERLAP and self.mode == "sgdet"
        self.fg_iou_threshold = cfg.MODEL.ROI_HEADS.FG_IOU_THRESHOLD
        # The detector's pooler has no parameters; keep a plain reference so it is not registered twice.
        self._box_pooler = [detector.box_roi_pool]
        # Object features: a trainable copy of the detector's box MLP (SGB initialises it from fc6/fc7 too).
        self.box_feature_extractor = copy.deepcopy(detector.roi_heads.box_head)
        feature_dim = cfg.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM
        self.union_feature_extractor = None
        # FREQ reads no features: skip the union-box pooling (the dominant SGDet cost with 6,320 pairs per image).
        predictor_uses_union = getattr(ROI_RELATION_PREDICTORS.get(head.PREDICTOR), "uses_union_features", True)
        if head.PREDICT_USE_VISION and predictor_uses_union:
            extractor = ROI_RELATION_FEATURE_EXTRACTORS.get(head.FEATURE_EXTRACTOR)
            self.union_feature_extractor = extractor.from_config(cfg, detector.backbone.out_channels,
                                                                 detector.box_featmap_names)
            self._init_union_mlp(detector.roi_heads.box_head)
        self.predictor = build_predictor(cfg, feature_dim, statistics)
        set_frequency_bias_dropout(self.predictor, head.FREQUENCY_BIAS_DROPOUT)
        self.rescorer = RELATION_RESCORERS.get(head.RESCORER).from_config(cfg, statistics) if head.RESCORER else None
        self.loss_terms = build_relation_losses(cfg, statistics)
        self.post_processor = RelationPostProcessor.from_config(cfg, self.mode)
        # BA-SGG (ba_sgg.py): Semantic Adjustment of the logits, and BPL's stage 2 that trains a classifier copy only
        self.transfer = None
        if head.WITH_TRANSFER_CLASSIFIER:
            self.transfer = TransferClassifier.from_config(cfg, len(statistics["rel_classes"]),
                                                         statistics["rel_classes"])
        self.clean_classifier = head.WITH_CLEAN_CLASSIFIER
        # the reference freezes by requires_grad only and keeps train mode; eval mode for the frozen part is a key
        self.frozen_eval_mode = self.clean_classifier and head.BA_SGG.FROZEN_EVAL_MODE
        if self.clean_classifier:
            paths = add_clean_classifier(self.predictor)
            trainable = freeze_all_but_clean(self)
            logger.info("BA-SGG clean classifier over %s: %d trainable parameter tensors, the rest frozen",
                        ", ".join(paths), len(trainable))

    def train(self, mode: bool = True) -> "RelationHead":
        super().train(mode)
        if self.frozen_eval_mode:
            set_clean_train_mode(self, mode)
        return self

    def init_from_detector(self, detector: nn.Module) -> None:
        """Copy the (trained) detector's box MLP into the object and union feature MLPs, as SGB's ``load_mapping``
        does after loading ``MODEL.PRETRAINED_DETECTOR_CKPT``."""
        self.box_feature_extractor.load_state_dict(detector.roi_heads.box_head.state_dict())
        if self.union_feature_extractor is not None:
            self._init_union_mlp(detector.roi_heads.box_head)

    def _init_union_mlp(self, box_mlp: nn.Module) -> None:
        """Start the union MLP from the detector's fc6/fc7 where the shapes agree (SGB's load_mapping)."""
        extractor = self.union_feature_extractor
        for name in ("fc6", "fc7"):
            source, target = getattr(box_mlp, name, None), getattr(extractor, name, None)
            if source is not None and target is not None and source.weight.shape == target.weight.shape:
                target.load_state_dict(source.state_dict())

    # ---------------------------------------------------------------------------------------------------- pairs
    def sample_pairs(self, proposals: List[BoxList], targets: List[BoxList]) -> List[PairSample]:
        samples = []
        for boxes, target in zip(proposals, targets):
            if self.mode == "sgdet":
                samples.append(sample_detection_pairs(
                    boxes, target, self.batch_size_per_image, self.positive_fraction, self.num_sample_per_gt_rel,
                    self.require_overlap_train, self.fg_iou_threshold))
            else:
                samples.append(sample_gt_box_pairs(boxes, self.batch_size_per_image, self.positive_fraction))
        return samples

    # ---------------------------------------------------------------------------------------------------- forward
    def forward(self, features: Dict[str, torch.Tensor], proposals: List[BoxList],
                image_sizes: Sequence[Tuple[int, int]], targets: Optional[List[BoxList]] = None):
        """Training (``targets`` given and ``self.training``): a dict of losses. Otherwise a list of prediction
        BoxLists (see ``RelationPostProcessor``). ``image_sizes`` are (h, w) before padding."""
        training = self.training
        if training:
            if targets is None:
                raise ValueError("the relation head needs targets in training mode")
            with torch.no_grad():
                samples = self.sample_pairs(proposals, targets)
            pair_idxs = [s.pair_idxs for s in samples]
        else:
            samples = None
            pair_idxs = [inference_pairs(boxes, self.require_overlap_test) for boxes in proposals]

        box_tensors = [b.bbox for b in proposals]
        pooled = self._box_pooler[0](features, box_tensors, [tuple(s) for s in image_sizes])
        roi_features = self.box_feature_extractor(pooled)
        union_features = union_spatial = None
        if self.union_feature_extractor is not None:
            union_features = self.union_feature_extractor(features, proposals, pair_idxs, list(image_sizes))
            if isinstance(union_features, tuple):  # SEPARATE_SPATIAL: (region, spatial)
                union_features, union_spatial = union_features
        batch = RelationBatch(
            mode=self.mode, boxes=proposals, pair_idxs=pair_idxs, roi_features=roi_features,
            union_features=union_features,
            rel_labels=[s.labels for s in samples] if samples else None,
            rel_binarys=[s.binary for s in samples] if samples else None,
            features=features, image_sizes=[tuple(s) for s in image_sizes], union_spatial_features=union_spatial)
        output: PredictorOutput = self.predictor(batch)
        if self.transfer is not None:
            output = dataclasses.replace(output, rel_logits=self.transfer(output.rel_logits))
        rel_scores = None
        if self.rescorer is not None:
            output, rel_scores = self.rescorer(batch, output)

        if training:
            obj_labels = torch.cat([b.get_field("labels") for b in proposals]).long() if proposals else None
            inputs = RelationLossInputs(
                rel_logits=output.rel_logits, rel_labels=torch.cat(batch.rel_labels),
                obj_logits=output.obj_logits if self.mode != "predcls" else None, obj_labels=obj_labels,
                num_pairs_per_image=batch.num_pairs, aux=output.aux)
            return self.loss_terms(inputs)
        return self._post_process(batch, output, rel_scores)

    def _post_process(self, batch: RelationBatch, output: PredictorOutput,
                      rel_scores: Optional[torch.Tensor]) -> List[BoxList]:
        results = []
        obj_logits = output.obj_logits.split(batch.num_boxes)
        rel_logits = output.rel_logits.split(batch.num_pairs)
        scores = rel_scores.split(batch.num_pairs) if rel_scores is not None else [None] * len(batch.boxes)
        for boxes, obj, rel, pairs, score in zip(batch.boxes, obj_logits, rel_logits, batch.pair_idxs, scores):
            results.append(self.post_processor(boxes, obj, rel, pairs, score))
        return results
