"""``DETR``: the plain DETR object detector whose weights start IterativeSG (docs/iterative_sg.md, "DETR
pre-training").

The IterativeSG authors pre-train DETR on Visual Genome objects, then copy its decoder into the model's three
decoders (their README: "We replicate the DETR decoder weights three times"). This is that detector, built from the
same pieces as ``IterativeSGTransformer`` (input projection, sine positions, post-norm encoder, post-norm decoder
layers, a 3-layer box MLP) so that ``iterative_sg_state_from_detr`` can map its weights one to one:

    backbone -> one map (MODEL.DETR.FEATURE_STRIDE) -> encoder -> one decoder of DEC_LAYERS layers with
    NUM_OBJECT_QUERIES learned positional queries -> per layer: LayerNorm -> class logits (index 0 = no object) and
    sigmoid (cx, cy, w, h)

Training (``tools/detector_pretrain_net.py`` with ``MODEL.META_ARCHITECTURE "DETR"``): each layer's queries are
matched to the GT objects by the Hungarian algorithm on COST_CLASS * -p(class) + L1_WEIGHT * L1 - GIOU_WEIGHT * GIoU
(DETR's own rule: every supervised layer is matched separately), then cross-entropy (no object weighted
NO_OBJECT_WEIGHT) + L1 + (1 - GIoU), box terms divided by the number of GT objects in the batch. Inference: the best
real class of every query, as a detection BoxList (``pred_labels``, ``pred_scores``) that the detector evaluator reads.
"""
from __future__ import annotations

import copy
import logging
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert, generalized_box_iou

from sgg.config.sgg_config import ConfigError
from sgg.modeling.backbone import build_backbone
from sgg.modeling.registry import META_ARCHITECTURES
from sgg.structures import BoxList

from .losses import num_gt_triplets, object_class_weights
from .matcher import _box_cost, hungarian_match
from .backbone_input import FeatureReader, load_backbone_weights, padding_mask, prepare_images
from .transformer import BoxMLP, DecoderLayer, EncoderLayer, PositionEmbeddingSine

logger = logging.getLogger(__name__)


class DETRTransformer(nn.Module):
    """Input projection + sine positions + encoder + one decoder + heads. ``forward`` -> ``logits`` (T, B, Q, C) and
    ``boxes`` (T, B, Q, 4) of every decoder layer."""

    def __init__(self, in_channels: int, num_classes: int, num_queries: int, d_model: int = 256, nhead: int = 8,
                 dim_feedforward: int = 2048, dropout: float = 0.1, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6):
        super().__init__()
        if d_model % 2 or d_model % nhead:
            raise ConfigError(f"MODEL.DETR.HIDDEN_DIM ({d_model}) must be even and divisible by MODEL.DETR.NHEADS "
                              f"({nhead})")
        if num_decoder_layers < 1:
            raise ConfigError(f"MODEL.DETR.DEC_LAYERS must be at least 1, got {num_decoder_layers}")
        self.input_proj = nn.Conv2d(in_channels, d_model, kernel_size=1)
        self.position = PositionEmbeddingSine(d_model // 2)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, nhead, dim_feedforward, dropout)
                                     for _ in range(num_encoder_layers))
        layer = DecoderLayer(d_model, nhead, dim_feedforward, dropout)
        self.decoder_layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_decoder_layers))
        self.decoder_norm = nn.LayerNorm(d_model)
        self.queries = nn.Embedding(num_queries, d_model)
        self.object_classifier = nn.Linear(d_model, num_classes)
        self.box_head = BoxMLP(d_model)
        for module in (self.encoder, self.decoder_layers, self.object_classifier, self.box_head):
            for param in module.parameters():
                if param.dim() > 1:
                    nn.init.xavier_uniform_(param)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        src = self.input_proj(features)
        pos = self.position(mask).to(src.dtype).flatten(2).transpose(1, 2)
        src = src.flatten(2).transpose(1, 2)
        flat_mask = mask.flatten(1)
        for layer in self.encoder:
            src = layer(src, pos, flat_mask)
        query_pos = self.queries.weight.unsqueeze(0).expand(features.shape[0], -1, -1)
        tgt = torch.zeros_like(query_pos)
        hidden = []
        for layer in self.decoder_layers:
            tgt = layer(tgt, src, query_pos, pos, flat_mask)
            hidden.append(self.decoder_norm(tgt))
        hidden = torch.stack(hidden)
        return {"logits": self.object_classifier(hidden), "boxes": self.box_head(hidden)}


def object_cost_matrix(logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, gt_boxes: torch.Tensor,
                       class_weight: float, l1_weight: float, giou_weight: float) -> torch.Tensor:
    """(Q, G) DETR matching cost of one image and one layer; boxes normalised (cx, cy, w, h)."""
    if len(labels) == 0:
        return logits.new_zeros((logits.shape[0], 0), dtype=torch.float32)
    prob = logits.float().softmax(-1)
    return -class_weight * prob[:, labels] + _box_cost(boxes.float(), gt_boxes.float(), l1_weight, giou_weight)


def object_targets(target: BoxList, image_index: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """(labels (G,), normalised (cx, cy, w, h) boxes (G, 4)) of one training target."""
    if not target.has_field("labels"):
        raise ValueError(f"DETR training target {image_index} has no 'labels' field (fields: {target.fields()})")
    width, height = target.size
    boxes = box_convert(target.convert("xyxy").bbox.float(), "xyxy", "cxcywh")
    return target.get_field("labels").long(), boxes / boxes.new_tensor([width, height, width, height])


@META_ARCHITECTURES.register("DETR")
class DETRDetector(nn.Module):
    """DETR as an object detector of the framework: ``model(images, targets)`` -> losses in training, a list of
    detection BoxLists (``pred_labels``, ``pred_scores``) in eval."""

    def __init__(self, backbone: nn.Module, feature_reader: FeatureReader, transformer: DETRTransformer, no_object_weight: float,
                 class_weight: float = 1.0, l1_weight: float = 5.0, giou_weight: float = 2.0,
                 deep_supervision: bool = True, detections_per_image: int = 100, backbone_name: str = ""):
        super().__init__()
        if class_weight == 0 and l1_weight == 0 and giou_weight == 0:
            raise ConfigError("MODEL.DETR.COST_CLASS, L1_WEIGHT and GIOU_WEIGHT cannot all be 0")
        self.backbone = backbone
        self.feature_reader = feature_reader
        self.transformer = transformer
        num_classes = transformer.object_classifier.out_features
        self.register_buffer("class_weights", object_class_weights(num_classes, no_object_weight), persistent=False)
        self.class_weight, self.l1_weight, self.giou_weight = class_weight, l1_weight, giou_weight
        self.deep_supervision = deep_supervision
        self.detections_per_image = detections_per_image
        self.backbone_name = backbone_name

    @classmethod
    def from_config(cls, cfg) -> "DETRDetector":
        detr = cfg.MODEL.DETR
        backbone = build_backbone(cfg)
        feature_reader = FeatureReader.from_config(backbone, detr, cfg.MODEL.BACKBONE.CONV_BODY)
        transformer = DETRTransformer(
            backbone.out_channels, cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, detr.NUM_OBJECT_QUERIES,
            d_model=detr.HIDDEN_DIM, nhead=detr.NHEADS, dim_feedforward=detr.DIM_FEEDFORWARD, dropout=detr.DROPOUT,
            num_encoder_layers=detr.ENC_LAYERS, num_decoder_layers=detr.DEC_LAYERS)
        model = cls(backbone, feature_reader, transformer, detr.NO_OBJECT_WEIGHT, detr.COST_CLASS, detr.L1_WEIGHT,
                    detr.GIOU_WEIGHT, detr.DEEP_SUPERVISION, cfg.MODEL.ROI_HEADS.DETECTIONS_PER_IMG,
                    cfg.MODEL.BACKBONE.CONV_BODY)
        if cfg.MODEL.PRETRAINED_DETECTOR_CKPT:  # e.g. the backbone of the Faster R-CNN trained on the same data
            load_backbone_weights(model.backbone, cfg.MODEL.PRETRAINED_DETECTOR_CKPT, cfg.MODEL.BACKBONE.CONV_BODY)
        return model

    def layer_loss(self, logits, boxes, targets: Sequence[Tuple[torch.Tensor, torch.Tensor]],
                   normaliser: float) -> Dict[str, torch.Tensor]:
        """Losses of one layer (``logits`` (B, Q, C), ``boxes`` (B, Q, 4)), matched on this layer."""
        labels = torch.zeros(logits.shape[:2], dtype=torch.long, device=logits.device)
        pred_boxes, gt_boxes = [], []
        for image, (gt_labels, gt_box) in enumerate(targets):
            cost = object_cost_matrix(logits[image].detach(), boxes[image].detach(), gt_labels, gt_box,
                                      self.class_weight, self.l1_weight, self.giou_weight)
            # An image with more objects than queries: as in the reference's matcher, the objects the minimum-cost
            # assignment leaves out get no loss (a warning in losses()) but count in the normaliser (its num_boxes).
            query, gt = hungarian_match(cost, allow_unmatched_gt=True)
            labels[image, query] = gt_labels[gt]
            pred_boxes.append(boxes[image, query])
            gt_boxes.append(gt_box[gt])
        ce = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), weight=self.class_weights)
        pred_boxes, gt_boxes = torch.cat(pred_boxes).float(), torch.cat(gt_boxes).float()
        if len(gt_boxes):
            l1 = F.l1_loss(pred_boxes, gt_boxes, reduction="sum") / normaliser
            giou = torch.diag(generalized_box_iou(box_convert(pred_boxes, "cxcywh", "xyxy"),
                                                  box_convert(gt_boxes, "cxcywh", "xyxy")))
            giou_loss = (1 - giou).sum() / normaliser
        else:  # no GT object in the batch: keep the box head in the graph with a zero gradient
            l1 = giou_loss = boxes.sum() * 0.0
        return {"loss_ce": ce * self.class_weight, "loss_bbox": l1 * self.l1_weight,
                "loss_giou": giou_loss * self.giou_weight}

    def losses(self, outputs: Dict[str, torch.Tensor], targets: Sequence[BoxList]) -> Dict[str, torch.Tensor]:
        device = outputs["logits"].device
        gt = [object_targets(t.to(device), i) for i, t in enumerate(targets)]
        num_queries = outputs["logits"].shape[2]
        for image, (labels, _) in enumerate(gt):
            if len(labels) > num_queries:
                logger.warning("image %d of the batch has %d GT objects but MODEL.DETR.NUM_OBJECT_QUERIES is %d: %d "
                               "left unmatched get no loss", image, len(labels), num_queries,
                               len(labels) - num_queries)
        normaliser = num_gt_triplets([g[0] for g in gt], device)  # counts GT objects: len() of each label tensor
        num_layers = outputs["logits"].shape[0]
        layers = range(num_layers) if self.deep_supervision else [num_layers - 1]
        total: Dict[str, torch.Tensor] = {}
        for layer in layers:
            for key, value in self.layer_loss(outputs["logits"][layer], outputs["boxes"][layer], gt,
                                              normaliser).items():
                total[key] = total[key] + value if key in total else value
        return total

    def detections(self, logits: torch.Tensor, boxes: torch.Tensor, image_size: Tuple[int, int]) -> BoxList:
        """One image's (Q, C) logits and (Q, 4) boxes of the last layer -> detection BoxList, best first."""
        height, width = image_size
        scores, labels = logits.float().softmax(-1)[:, 1:].max(-1)
        order = torch.argsort(scores, descending=True, stable=True)[: self.detections_per_image]
        xyxy = box_convert(boxes.float()[order], "cxcywh", "xyxy") * boxes.new_tensor([width, height, width, height])
        xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0, width)
        xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0, height)
        result = BoxList(xyxy, (width, height), "xyxy")
        result.add_field("pred_labels", labels[order] + 1)
        result.add_field("pred_scores", scores[order])
        return result

    def forward(self, images, targets: Optional[Sequence[BoxList]] = None):
        if self.training and targets is None:
            raise ValueError("DETR needs targets in training mode")
        images = prepare_images(images)
        features = self.feature_reader(self.backbone(images.tensors))
        outputs = self.transformer(features, padding_mask(images, features.shape[-2:]))
        if self.training:
            if len(targets) != len(images.image_sizes):
                raise ValueError(f"got {len(targets)} targets for {len(images.image_sizes)} images")
            return self.losses(outputs, targets)
        return [self.detections(outputs["logits"][-1, i], outputs["boxes"][-1, i], (int(h), int(w)))
                for i, (h, w) in enumerate(images.image_sizes)]


def is_detr_state(state: Dict[str, torch.Tensor]) -> bool:
    """True for a checkpoint of ``DETRDetector`` (it has the DETR decoder's keys)."""
    return any(k.startswith("transformer.decoder_layers.") for k in state)


def iterative_sg_state_from_detr(detr_state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The ``IterativeSceneGraph`` weights a DETR checkpoint provides (the reference's replication):

    backbone, input projection and encoder as they are; the DETR decoder layers into each of the subject, object and
    predicate decoders; the decoder norm into the entity and relation norms; the queries into the *subject* queries;
    the class head into the object classifier; the box MLP into the shared box head. Object and predicate queries,
    the predicate classifier and the zero-initialised conditioning/refinement blocks keep their own initialisation.
    """
    mapped: Dict[str, torch.Tensor] = {}
    for key, value in detr_state.items():
        if key.startswith("backbone.") or key.startswith(("transformer.input_proj.", "transformer.encoder.",
                                                           "transformer.object_classifier.",
                                                           "transformer.box_head.")):
            mapped[key] = value
        elif key.startswith("transformer.decoder_layers."):
            rest = key[len("transformer.decoder_layers."):]
            for branch in ("subject_layers", "object_layers", "relation_layers"):
                mapped[f"transformer.decoder.{branch}.{rest}"] = value
        elif key.startswith("transformer.decoder_norm."):
            rest = key[len("transformer.decoder_norm."):]
            mapped[f"transformer.decoder.entity_norm.{rest}"] = value
            mapped[f"transformer.decoder.relation_norm.{rest}"] = value
        elif key == "transformer.queries.weight":
            mapped["transformer.subject_queries.weight"] = value
    return mapped


