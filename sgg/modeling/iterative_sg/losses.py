"""IterativeSG losses (METHODS.md 6.3): deep supervision with one shared assignment.

For every supervised decoder layer, with the queries matched to GT triplets by the matcher:

* subject and object: cross-entropy over the object classes (index 0 = "no object", class weight
  NO_OBJECT_WEIGHT; unmatched queries are "no object"), x COST_CLASS; L1 (x L1_WEIGHT) and 1 - GIoU (x GIOU_WEIGHT) of
  the matched boxes;
* predicate: cross-entropy over the predicates (index 0 = "no relation", class weight REWEIGHT_REL_EOS_COEF; the
  other classes weighted w_c below when REWEIGHT_RELATIONS), x 1; L1 and GIoU of the relation (centre-to-centre) box.

Cross-entropies are weighted means (``F.cross_entropy`` with class weights: sum w_y * nll / sum w_y over all
queries); box losses are sums over matched queries divided by the number of GT triplets in the batch (averaged over
processes, at least 1). The layers are equally weighted; each named term is summed over the layers.

Predicate weights (the reference's ``IterativeRelationCriterion``), with f_c the fraction of training triplets whose
predicate is c, alpha = OVERSAMPLE_PARAM and U = UNDERSAMPLE_PARAM:

    w_c = max( sqrt(alpha / (f_c + 1e-5)), 1 ) ** U

The reference README asks for U = 2 beta, so that w_c = max(1, (alpha / f_c) ** beta) (up to the 1e-5 that keeps
unseen predicates finite). alpha = 0.07, U = 1.5: f = 0.2 -> 1; f = 1e-3 -> about 24.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert, generalized_box_iou

from sgg.config.sgg_config import ConfigError
from sgg.utils import comm

from .matcher import BRANCHES
from .targets import TripletTargets

FREQUENCY_EPS = 1e-5
TERM_NAMES = {"subject": ("loss_subject_ce", "loss_subject_l1", "loss_subject_giou"),
              "object": ("loss_object_ce", "loss_object_l1", "loss_object_giou"),
              "relation": ("loss_predicate_ce", "loss_relation_l1", "loss_relation_giou")}


def predicate_loss_weights(predicate_counts, alpha: float, undersample_param: float, no_relation_weight: float,
                           reweight: bool = True) -> torch.Tensor:
    """(R,) class weights of the predicate cross-entropy; index 0 (no relation) gets ``no_relation_weight``.

    ``predicate_counts`` (R,): training triplets per predicate, entry 0 ignored."""
    counts = torch.as_tensor(predicate_counts, dtype=torch.float64).flatten().clone()
    if counts.numel() < 2:
        raise ValueError(f"predicate counts must have one entry per predicate plus background, got {counts.numel()}")
    if bool((counts < 0).any()):
        raise ValueError("predicate counts must be non-negative")
    weights = torch.ones_like(counts)
    if reweight:
        if alpha <= 0:
            raise ConfigError(f"MODEL.DETR.OVERSAMPLE_PARAM (alpha) must be positive, got {alpha}")
        counts[0] = 0
        total = counts.sum()
        if total <= 0:
            raise ConfigError("MODEL.DETR.REWEIGHT_RELATIONS needs predicate counts of the training split, but all "
                              "are zero")
        frequency = counts / total
        weights = torch.clamp((alpha / (frequency + FREQUENCY_EPS)).sqrt(), min=1.0) ** undersample_param
    weights[0] = no_relation_weight
    return weights.float()


def object_class_weights(num_classes: int, no_object_weight: float) -> torch.Tensor:
    weights = torch.ones(num_classes)
    weights[0] = no_object_weight
    return weights


def num_gt_triplets(targets: Sequence[TripletTargets], device) -> float:
    """GT triplets in the batch, averaged over processes, at least 1 (the box-loss normaliser)."""
    count = float(sum(len(t) for t in targets))
    if comm.get_world_size() > 1:  # the reference's all-reduce; its .item() is the one host sync this costs
        total = torch.tensor([count], device=device)
        torch.distributed.all_reduce(total)
        count = float(total.item()) / comm.get_world_size()
    return max(count, 1.0)


class IterativeSGCriterion(nn.Module):
    def __init__(self, num_obj_classes: int, predicate_weights: torch.Tensor, no_object_weight: float = 0.1,
                 class_weight: float = 1.0, l1_weight: float = 5.0, giou_weight: float = 2.0):
        super().__init__()
        # Not persistent: they follow the config (and the training statistics), not the checkpoint.
        self.register_buffer("object_weights", object_class_weights(num_obj_classes, no_object_weight),
                             persistent=False)
        self.register_buffer("predicate_weights", predicate_weights.float().clone(), persistent=False)
        self.class_weight = class_weight
        self.l1_weight = l1_weight
        self.giou_weight = giou_weight

    def layer_losses(self, outputs: Dict[str, torch.Tensor], targets: Sequence[TripletTargets],
                     matches: List[Tuple[torch.Tensor, torch.Tensor]], normaliser: float) -> Dict[str, torch.Tensor]:
        """Losses of one layer; ``outputs`` holds (B, Q, ...) tensors."""
        batch_index = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(matches)])
        query_index = torch.cat([q for q, _ in matches])
        losses = {}
        for name, label_key, box_key in BRANCHES:
            logits = outputs[f"{name}_logits"].float()
            labels = torch.zeros(logits.shape[:2], dtype=torch.long, device=logits.device)
            matched_labels = torch.cat([getattr(t, label_key)[gt] for t, (_, gt) in zip(targets, matches)])
            labels[batch_index, query_index] = matched_labels
            weights = self.predicate_weights if name == "relation" else self.object_weights
            ce_name, l1_name, giou_name = TERM_NAMES[name]
            ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), weight=weights)
            losses[ce_name] = ce * (1.0 if name == "relation" else self.class_weight)
            pred_boxes = outputs[f"{name}_boxes"].float()[batch_index, query_index]
            gt_boxes = torch.cat([getattr(t, box_key)[gt] for t, (_, gt) in zip(targets, matches)]).float()
            if len(gt_boxes):
                l1 = F.l1_loss(pred_boxes, gt_boxes, reduction="sum") / normaliser
                giou = torch.diag(generalized_box_iou(box_convert(pred_boxes, "cxcywh", "xyxy"),
                                                      box_convert(gt_boxes, "cxcywh", "xyxy")))
                giou_loss = (1 - giou).sum() / normaliser
            else:  # keeps every box parameter in the graph (DDP) with a zero gradient
                l1 = giou_loss = outputs[f"{name}_boxes"].sum() * 0.0
            losses[l1_name] = l1 * self.l1_weight
            losses[giou_name] = giou_loss * self.giou_weight
        return losses

    def forward(self, outputs: Dict[str, torch.Tensor], targets: Sequence[TripletTargets],
                matches: List[Tuple[torch.Tensor, torch.Tensor]], layers: Sequence[int]) -> Dict[str, torch.Tensor]:
        """Named loss terms summed over ``layers`` (indices into the outputs' first dimension), every layer with the
        same ``matches``."""
        normaliser = num_gt_triplets(targets, outputs["relation_logits"].device)
        total: Dict[str, torch.Tensor] = {}
        for layer in layers:
            per_layer = self.layer_losses({k: v[layer] for k, v in outputs.items()}, targets, matches, normaliser)
            for key, value in per_layer.items():
                total[key] = total[key] + value if key in total else value
        return total
