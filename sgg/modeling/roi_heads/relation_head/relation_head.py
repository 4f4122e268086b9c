"""The relation head: pairs -> object and pair features -> predictor -> logit adjusters -> (re-scorer) -> losses or
predictions.

PROTOCOL.md 4.2 is SGB's ``ROIRelationHead``. ``RelationHead.from_config`` builds each part from its registry: the
union feature extractor (``FEATURE_EXTRACTOR``), the predictor (``PREDICTOR``), the logit adjusters
(``LOGIT_ADJUSTERS``, e.g. BA-SGG's transfer), an optional pair re-scoring module (``RESCORER``, e.g. a Ranker)
and the loss terms (``LOSS``); ``RelationHead(...)`` takes the parts as they are, so a test can hand-make them.
The detector is seen only through its ``DetectorFeatureInterface`` (its pooler, box MLP and feature maps).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from sgg.config import get_protocol
from sgg.modeling.detector_interface import DetectorFeatureInterface
from sgg.modeling.registry import RELATION_RESCORERS, ROI_RELATION_FEATURE_EXTRACTORS, ROI_RELATION_PREDICTORS
from sgg.structures import BoxList

from . import rescorers  # noqa: F401  (registers the pair re-scoring modules)
from .feature_extractors import init_union_mlp_from_box_head  # (its module registers RelationFeatureExtractor)
from .layers.frequency_bias import set_frequency_bias_dropout
from .inference import RelationPostProcessor
from .logit_adjusters import build_logit_adjusters
from .losses import RelationLossInputs, build_relation_losses
from .predictors import build_predictor
from .sampling import PairSampler
from .types import PredictorOutput, RelationBatch

# called as hook(head, mode) after head.train(mode), e.g. BA-SGG's stage 2 keeping its frozen part in eval mode
TrainModeHook = Callable[[nn.Module, bool], None]


class RelationHead(nn.Module):
    """``RelationHead.from_config(cfg, detector.feature_interface(), statistics)`` builds it from the config; the
    keyword-only ``__init__`` takes ready parts. The parts are registered in the order given (parameter names and
    the order of seeded initialisation depend on it)."""

    def __init__(self, *, pair_sampler: PairSampler, box_pooler: nn.Module, box_feature_extractor: nn.Module,
                 union_feature_extractor: Optional[nn.Module], predictor: nn.Module,
                 rescorer: Optional[nn.Module], loss_terms: nn.Module, post_processor: RelationPostProcessor,
                 logit_adjusters: Sequence[Tuple[str, nn.Module]] = ()):
        super().__init__()
        self.mode = pair_sampler.mode
        self.pair_sampler = pair_sampler
        # The detector's pooler has no parameters; keep a plain reference so it is not registered twice.
        self._box_pooler = [box_pooler]
        self.box_feature_extractor = box_feature_extractor
        self.union_feature_extractor = union_feature_extractor
        self.predictor = predictor
        self.rescorer = rescorer
        self.loss_terms = loss_terms
        self.post_processor = post_processor
        # each adjuster sits under its own name (its weights are saved as relation_head.<name>.*)
        self.logit_adjuster_names = []
        for name, adjuster in logit_adjusters:
            self.add_module(name, adjuster)
            self.logit_adjuster_names.append(name)
        self.train_mode_hooks: List[TrainModeHook] = []

    @classmethod
    def from_config(cls, cfg, detector: DetectorFeatureInterface, statistics: Dict) -> "RelationHead":
        """``detector``: ``GeneralizedRCNN.feature_interface()``; ``statistics``: the dataset statistics (class names,
        frequency bias, predicate counts) that size and initialise the predictor, losses and adjusters."""
        head = cfg.MODEL.ROI_RELATION_HEAD
        mode = get_protocol(cfg)
        # Object features: a trainable copy of the detector's box MLP (SGB initialises it from fc6/fc7 too).
        box_feature_extractor = copy.deepcopy(detector.box_head)
        union_feature_extractor = None
        # FREQ reads no features: skip the union-box pooling (the dominant SGDet cost with 6,320 pairs per image).
        predictor_uses_union = getattr(ROI_RELATION_PREDICTORS.get(head.PREDICTOR), "uses_union_features", True)
        if head.PREDICT_USE_VISION and predictor_uses_union:
            extractor = ROI_RELATION_FEATURE_EXTRACTORS.get(head.FEATURE_EXTRACTOR)
            union_feature_extractor = extractor.from_config(cfg, detector.feature_channels,
                                                            list(detector.box_feature_maps))
            init_union_mlp_from_box_head(union_feature_extractor, detector.box_head)
        predictor = build_predictor(cfg, cfg.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM, statistics)
        set_frequency_bias_dropout(predictor, head.FREQUENCY_BIAS_DROPOUT)
        rescorer = RELATION_RESCORERS.get(head.RESCORER).from_config(cfg, statistics) if head.RESCORER else None
        return cls(pair_sampler=PairSampler.from_config(cfg, mode), box_pooler=detector.box_pooler,
                   box_feature_extractor=box_feature_extractor, union_feature_extractor=union_feature_extractor,
                   predictor=predictor, rescorer=rescorer, loss_terms=build_relation_losses(cfg, statistics),
                   post_processor=RelationPostProcessor.from_config(cfg, mode),
                   logit_adjusters=build_logit_adjusters(cfg, statistics))

    def train(self, mode: bool = True) -> "RelationHead":
        super().train(mode)
        for hook in self.train_mode_hooks:
            hook(self, mode)
        return self

    def init_from_detector(self, detector) -> None:
        """Copy the (trained) detector's box MLP (``detector.box_head``) into the object and union feature MLPs, as
        SGB's ``load_mapping`` does after loading ``MODEL.PRETRAINED_DETECTOR_CKPT``."""
        self.box_feature_extractor.load_state_dict(detector.box_head.state_dict())
        if self.union_feature_extractor is not None:
            init_union_mlp_from_box_head(self.union_feature_extractor, detector.box_head)

    @property
    def box_pooler(self) -> nn.Module:
        return self._box_pooler[0]

    def adjust_logits(self, output: PredictorOutput) -> PredictorOutput:
        for name in self.logit_adjuster_names:
            output = dataclasses.replace(output, rel_logits=getattr(self, name)(output.rel_logits))
        return output

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
                samples = self.pair_sampler.sample(proposals, targets)
            pair_idxs = [s.pair_idxs for s in samples]
        else:
            samples = None
            pair_idxs = self.pair_sampler.test_pairs(proposals)

        box_tensors = [b.bbox for b in proposals]
        pooled = self.box_pooler(features, box_tensors, [tuple(s) for s in image_sizes])
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
        output = self.adjust_logits(self.predictor(batch))
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
