"""``IterativeSceneGraph``: the one-stage DETR-style scene graph model (IterativeSG, Khandelwal & Sigal, NeurIPS 2022;
METHODS.md 6, docs/iterative_sg.md).

backbone (the framework's builder; optionally the backbone of our pretrained detector) -> one feature map
(MODEL.DETR.FEATURE_STRIDE) -> transformer (transformer.py) -> training: Hungarian matching + deep-supervised losses;
eval: the per-image prediction BoxList of every relation head (inference.py). SGDet only.

Same contract as the other scene graph models: ``model(images, targets)`` returns a dict of named losses in training
and a list of prediction BoxLists in eval (targets are ignored there).
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from sgg.config import get_protocol
from sgg.config.class_counts import check_class_counts, dataset_name
from sgg.config.sgg_config import ConfigError
from sgg.modeling.backbone import build_backbone
from sgg.modeling.registry import META_ARCHITECTURES
from sgg.structures import BoxList
from sgg.utils.checkpoint import compare_state_dicts, load_checkpoint_file
from sgg.utils.errors import CheckpointError

from .backbone_input import FeatureReader, load_backbone_weights, padding_mask, prepare_images
from .detr import is_detr_state, iterative_sg_state_from_detr
from .inference import IterativeSGPostProcessor
from .losses import IterativeSGCriterion, predicate_loss_weights
from .matcher import TripletMatcher
from .targets import build_triplet_targets
from .transformer import IterativeSGTransformer

logger = logging.getLogger(__name__)

def predicate_counts_from_statistics(statistics: Dict, num_rel_classes: int) -> torch.Tensor:
    """Training triplets per predicate (entry 0 unused): ``predicate_counts``, else summed from ``fg_matrix``."""
    if "predicate_counts" in statistics:
        counts = torch.as_tensor(statistics["predicate_counts"]).flatten()
    elif "fg_matrix" in statistics:
        counts = torch.as_tensor(statistics["fg_matrix"]).sum(dim=(0, 1)).flatten().clone()
    else:
        raise ConfigError("MODEL.DETR.REWEIGHT_RELATIONS needs the training statistics' 'predicate_counts' (or "
                          f"'fg_matrix'); the statistics have {sorted(statistics)}")
    if counts.numel() != num_rel_classes:
        raise ConfigError(f"the statistics count {counts.numel()} predicates (with background) but the model has "
                          f"{num_rel_classes} (MODEL.ROI_RELATION_HEAD.NUM_CLASSES)")
    counts = counts.clone()
    counts[0] = 0
    return counts


@META_ARCHITECTURES.register("IterativeSceneGraph")
class IterativeSceneGraph(nn.Module):
    def __init__(self, backbone: nn.Module, feature_reader: "FeatureReader", transformer: IterativeSGTransformer,
                 matcher: TripletMatcher, criterion: IterativeSGCriterion, postprocessor: IterativeSGPostProcessor,
                 num_queries: int, deep_supervision: bool = True, test_index: int = -1,
                 backbone_name: str = ""):
        super().__init__()
        self.backbone = backbone
        self.feature_reader = feature_reader
        self.transformer = transformer
        self.matcher = matcher
        self.criterion = criterion
        self.postprocessor = postprocessor
        self.num_queries = num_queries
        self.deep_supervision = deep_supervision
        num_layers = transformer.decoder.num_layers
        if not -num_layers <= test_index < num_layers:
            raise ConfigError(f"MODEL.DETR.TEST_INDEX {test_index} is outside the {num_layers} decoder layers "
                              f"(MODEL.DETR.DEC_LAYERS); use -1 for the last")
        self.test_index = test_index
        self.backbone_name = backbone_name

    # ------------------------------------------------------------------------------------------------ building
    @classmethod
    def from_config(cls, cfg, statistics: Optional[Dict] = None) -> "IterativeSceneGraph":
        mode = get_protocol(cfg)
        if mode != "sgdet":
            raise ConfigError(f"IterativeSceneGraph predicts boxes, labels and predicates from the image (SGDet); "
                              f"{mode} (GT boxes) is not supported: set MODEL.ROI_RELATION_HEAD.USE_GT_BOX False and "
                              "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL False")
        if statistics is None:
            raise TypeError("IterativeSceneGraph needs the training statistics (class names, predicate distribution): build it with sgg.engine.relation.build_scene_graph_model(cfg, statistics) or "
                            "build_detection_model(cfg, statistics=sgg.data.get_dataset_statistics(cfg))")
        detr = cfg.MODEL.DETR
        check_class_counts(cfg, dataset_name(cfg), statistics["obj_classes"], statistics["rel_classes"])
        num_obj, num_rel = len(statistics["obj_classes"]), len(statistics["rel_classes"])
        if detr.NUM_OBJECT_QUERIES != detr.NUM_RELATION_QUERIES:
            raise ConfigError(f"MODEL.DETR.NUM_OBJECT_QUERIES ({detr.NUM_OBJECT_QUERIES}) and "
                              f"MODEL.DETR.NUM_RELATION_QUERIES ({detr.NUM_RELATION_QUERIES}) must be equal: query i "
                              "of the subject, object and predicate decoders forms triplet i")
        if detr.NUM_RELATION_QUERIES < 1:
            raise ConfigError(f"MODEL.DETR.NUM_RELATION_QUERIES must be positive, got {detr.NUM_RELATION_QUERIES}")
        backbone = build_backbone(cfg)
        feature_reader = FeatureReader.from_config(backbone, detr, cfg.MODEL.BACKBONE.CONV_BODY)
        transformer = IterativeSGTransformer(
            backbone.out_channels, num_obj, num_rel, detr.NUM_RELATION_QUERIES, d_model=detr.HIDDEN_DIM,
            nhead=detr.NHEADS, dim_feedforward=detr.DIM_FEEDFORWARD, dropout=detr.DROPOUT,
            num_encoder_layers=detr.ENC_LAYERS, num_decoder_layers=detr.DEC_LAYERS)
        counts = (predicate_counts_from_statistics(statistics, num_rel) if detr.REWEIGHT_RELATIONS
                  else torch.ones(num_rel))
        weights = predicate_loss_weights(counts, detr.OVERSAMPLE_PARAM, detr.UNDERSAMPLE_PARAM,
                                         detr.REWEIGHT_REL_EOS_COEF, reweight=detr.REWEIGHT_RELATIONS)
        logger.info("IterativeSG predicate loss weights (index 0 = no relation): %s",
                    ", ".join(f"{w:.3g}" for w in weights.tolist()))
        criterion = IterativeSGCriterion(num_obj, weights, detr.NO_OBJECT_WEIGHT, detr.COST_CLASS, detr.L1_WEIGHT,
                                         detr.GIOU_WEIGHT)
        matcher = TripletMatcher(detr.COST_CLASS, detr.L1_WEIGHT, detr.GIOU_WEIGHT)
        postprocessor = IterativeSGPostProcessor(detr.ENTITY_NMS_THRESH, detr.ONE_PREDICATE_PER_PAIR,
                                                 cfg.TEST.RELATION.MAX_PAIRS_STORED, detr.EVAL_QUERY_RANKING)
        return cls(backbone, feature_reader, transformer, matcher, criterion, postprocessor,
                   detr.NUM_RELATION_QUERIES, detr.DEEP_SUPERVISION, detr.TEST_INDEX, cfg.MODEL.BACKBONE.CONV_BODY)

    def load_pretrained_detector(self, path: str) -> None:
        """Start from a detector checkpoint (MODEL.PRETRAINED_DETECTOR_CKPT).

        * Faster R-CNN (``tools/detector_pretrain_net.py``, keys ``backbone.*``; or a SceneGraphRCNN checkpoint,
          ``detector.backbone.*``): the backbone, which must fit exactly.
        * DETR (``MODEL.META_ARCHITECTURE "DETR"``, detr.py): the backbone and the transformer as the reference starts
          from its VG-pretrained DETR, the decoder copied into the three decoders (``iterative_sg_state_from_detr``);
          every mapped tensor must fit.

        An empty path keeps the backbone the builder made (ImageNet or random weights) with a warning."""
        if not path:
            logger.warning("MODEL.PRETRAINED_DETECTOR_CKPT is empty: the IterativeSG backbone keeps the weights of "
                           "the backbone builder (MODEL.PRETRAINED_BACKBONE_PATH / RANDOM_INIT_BACKBONE)")
            return

        state = load_checkpoint_file(path, key="MODEL.PRETRAINED_DETECTOR_CKPT")["model"]
        if not is_detr_state(state):
            load_backbone_weights(self.backbone, path, self.backbone_name, state)
            return
        mapped = iterative_sg_state_from_detr(state)
        own = self.state_dict()
        _, unexpected, mismatched = compare_state_dicts({k: own[k] for k in own if k in mapped}, mapped)
        if unexpected or mismatched:
            problems = [f"{len(mismatched)} tensors with other shapes, e.g. {mismatched[:3]}"] if mismatched else []
            if unexpected:
                problems.append(f"{len(unexpected)} keys this model does not have, e.g. {unexpected[:3]}")
            raise CheckpointError(f"MODEL.PRETRAINED_DETECTOR_CKPT {path} is a DETR checkpoint that does not fit this "
                                  "IterativeSG config (MODEL.DETR.HIDDEN_DIM, NHEADS, DIM_FEEDFORWARD, ENC_LAYERS, "
                                  "DEC_LAYERS, NUM_OBJECT_QUERIES, MODEL.ROI_BOX_HEAD.NUM_CLASSES and the backbone "
                                  "must match the DETR's): " + "; ".join(problems))
        if not any(k.startswith("backbone.") for k in mapped):
            raise CheckpointError(f"MODEL.PRETRAINED_DETECTOR_CKPT {path}: the DETR checkpoint holds no backbone "
                                  "weights")
        self.load_state_dict(mapped, strict=False)
        logger.info("IterativeSG started from the DETR checkpoint %s: %d tensors (backbone, encoder, the decoder "
                    "copied into the subject, object and predicate decoders, subject queries, object classifier, box "
                    "head); object/predicate queries, predicate classifier and the conditioning keep their "
                    "initialisation", path, len(mapped))

    # ------------------------------------------------------------------------------------------------ forward
    def predict(self, images):
        """(the transformer's per-layer outputs for a batch (see ``IterativeSGTransformer``), the padded ImageList)."""
        images = prepare_images(images)
        features = self.feature_reader(self.backbone(images.tensors))
        return self.transformer(features, padding_mask(images, features.shape[-2:])), images

    def supervised_layers(self, num_layers: int) -> List[int]:
        return list(range(num_layers)) if self.deep_supervision else [num_layers - 1]

    def forward(self, images, targets: Optional[Sequence[BoxList]] = None):
        if self.training and targets is None:
            raise ValueError("IterativeSceneGraph needs targets in training mode")
        outputs, images = self.predict(images)
        if self.training:
            if len(targets) != len(images.image_sizes):
                raise ValueError(f"got {len(targets)} targets for {len(images.image_sizes)} images")
            device = outputs["relation_logits"].device
            for index, (target, (height, width)) in enumerate(zip(targets, images.image_sizes)):
                if tuple(target.size) != (int(width), int(height)):
                    raise ValueError(f"target {index} is for an image of (w, h) {tuple(target.size)} but the image "
                                     f"is {(int(width), int(height))}: targets must be in the resized image's "
                                     "coordinates")
            triplets = [build_triplet_targets(t.to(device), self.num_queries, i) for i, t in enumerate(targets)]
            layers = self.supervised_layers(outputs["relation_logits"].shape[0])
            matches = self.matcher(outputs, triplets, layers)  # one assignment for every layer
            return self.criterion(outputs, triplets, matches, layers)
        layer = self.test_index
        predictions = []
        for index, (height, width) in enumerate(images.image_sizes):
            per_image = {k: v[layer, index] for k, v in outputs.items()}
            predictions.append(self.postprocessor(per_image, (int(height), int(width))))
        return predictions
