"""Reading a RelationBatch: the protocol names, per-box fields (GT labels, detector logits), global pair indices,
per-image padding, and the class names of the dataset statistics."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch

from ..types import RelationBatch

MODES = ("predcls", "sgcls", "sgdet")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown relation protocol {mode!r}; expected one of {', '.join(MODES)}")
    return mode


def box_field(batch: RelationBatch, name: str) -> torch.Tensor:
    """A per-box field concatenated over images, with an error naming the field and the mode when it is absent."""
    values = []
    for image, boxes in enumerate(batch.boxes):
        if not boxes.has_field(name):
            raise KeyError(f"{batch.mode}: image {image} of the relation batch has no box field {name!r}")
        values.append(boxes.get_field(name))
    return torch.cat(values, dim=0)


def gt_labels(batch: RelationBatch) -> torch.Tensor:
    return box_field(batch, "labels").long().to(batch.roi_features.device)


def detector_logits(batch: RelationBatch) -> torch.Tensor:
    """The detector's class logits, detached (SGB does not back-propagate into the frozen box predictor)."""
    return box_field(batch, "predict_logits").detach().float().to(batch.roi_features.device)


def global_pair_indices(batch: RelationBatch) -> torch.Tensor:
    """(sum P, 2) pair indices into the concatenated boxes of the batch."""
    device = batch.roi_features.device
    pairs, offset = [], 0
    for num_boxes, pair_idxs in zip(batch.num_boxes, batch.pair_idxs):
        pairs.append(pair_idxs.to(device).long().reshape(-1, 2) + offset)
        offset += num_boxes
    if not pairs:
        return torch.zeros(0, 2, dtype=torch.long, device=device)
    return torch.cat(pairs, dim=0)


def pack_per_image(features: torch.Tensor, num_boxes: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(sum N, D) -> zero-padded (B, max N, D) and a (B, max N) bool mask of real boxes."""
    batch_size, longest = len(num_boxes), max(num_boxes, default=0)
    padded = features.new_zeros(batch_size, longest, features.shape[-1])
    mask = torch.zeros(batch_size, longest, dtype=torch.bool, device=features.device)
    for image, chunk in enumerate(features.split(list(num_boxes))):
        padded[image, : chunk.shape[0]] = chunk
        mask[image, : chunk.shape[0]] = True
    return padded, mask


def class_counts(statistics) -> Tuple[List[str], List[str]]:
    """Object and predicate class names (background first) from the dataset statistics, checked against pred_dist."""
    obj_classes, rel_classes = list(statistics["obj_classes"]), list(statistics["rel_classes"])
    pred_dist = statistics.get("pred_dist")
    if pred_dist is not None:
        shape = tuple(pred_dist.shape)
        if shape != (len(obj_classes), len(obj_classes), len(rel_classes)):
            raise ValueError(f"statistics: pred_dist has shape {shape} but there are {len(obj_classes)} object and "
                             f"{len(rel_classes)} predicate classes")
    return obj_classes, rel_classes
