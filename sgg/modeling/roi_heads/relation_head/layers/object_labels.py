"""The object labels a head scores its pairs with: GT labels as one-hot logits in PredCls, otherwise the head's own
class logits decoded (argmax over foreground, or SGB's per-class NMS at SGDet test)."""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

from ..inference import object_prediction_nms
from ..types import RelationBatch
from .batch_access import gt_labels

ONEHOT_FILL = 1000.0  # SGB's to_onehot fill: GT labels become +-1000 logits in PredCls


def to_onehot(labels: torch.Tensor, num_classes: int, fill: float = ONEHOT_FILL) -> torch.Tensor:
    """(N,) labels -> (N, C) logits of +fill at the label and -fill elsewhere (SGB's PredCls object logits)."""
    logits = torch.full((labels.shape[0], num_classes), -fill, device=labels.device)
    if labels.numel():
        logits[torch.arange(labels.shape[0], device=labels.device), labels.long()] = fill
    return logits


def decode_object_labels(obj_logits: torch.Tensor, batch: RelationBatch, training: bool,
                         nms_thresh: float) -> torch.Tensor:
    """Labels the pairs are scored with in SGCls/SGDet: argmax over the non-background classes, except at SGDet test
    where SGB's per-class NMS on ``boxes_per_cls`` (IoU >= ``nms_thresh``) labels each box once."""
    if batch.mode == "sgdet" and not training and batch.boxes and batch.boxes[0].has_field("boxes_per_cls"):
        preds = []
        for boxes, logits in zip(batch.boxes, obj_logits.split(batch.num_boxes)):
            preds.append(object_prediction_nms(boxes.get_field("boxes_per_cls").to(logits.device), logits,
                                               nms_thresh))
        return torch.cat(preds) if preds else obj_logits.new_zeros(0, dtype=torch.long)
    if obj_logits.shape[0] == 0:
        return obj_logits.new_zeros(0, dtype=torch.long)
    return obj_logits[:, 1:].argmax(dim=1) + 1


def ground_truth_objects(batch: RelationBatch, num_classes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """PredCls: the GT labels' one-hot logits (SGB's ``to_onehot``) and the GT labels."""
    labels = gt_labels(batch)
    return to_onehot(labels, num_classes), labels


def require_object_classifier(classifier: Optional[object], batch: RelationBatch, owner: str,
                              kind: str = "object classifier") -> None:
    """A head built for PredCls has no object classifier (``classifier`` None): an SGCls/SGDet batch is an error
    naming the head (``owner``) and the config to build it with."""
    if classifier is None:
        raise ValueError(f"this {owner} was built for predcls and has no {kind} for {batch.mode}; build it with the "
                         f"{batch.mode} config")


def classify_objects(batch: RelationBatch, num_classes: int, classify: Optional[Callable[[], torch.Tensor]],
                     training: bool, nms_thresh: float, owner: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """(obj_logits, obj_preds): the GT labels in PredCls, otherwise ``classify()``'s logits decoded with
    ``decode_object_labels``. ``classify`` is None for a head built for PredCls (it has no object classifier):
    an SGCls/SGDet batch then raises an error naming ``owner``, the head."""
    if batch.mode == "predcls":
        return ground_truth_objects(batch, num_classes)
    require_object_classifier(classify, batch, owner)
    logits = classify()
    return logits, decode_object_labels(logits, batch, training, nms_thresh)
