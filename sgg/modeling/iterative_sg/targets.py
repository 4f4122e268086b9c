"""GT triplets of one image in the form the matcher and the losses read (METHODS.md 6.1-6.2).

Boxes are (cx, cy, w, h) divided by the unpadded image's width and height. The relation box of a triplet is the box
spanned by the subject and object *centres*: centre the midpoint, size |dx| x |dy|; when it has no area (the centres
share a row or a column, within 1e-5 pixels) it is the subject box instead, as in the reference.

More GT triplets than queries: only ``max_triplets`` (= MODEL.DETR.NUM_RELATION_QUERIES) can be matched, so the first
``max_triplets`` in annotation order (the order of the ``relation_tuple`` field) are kept and the rest are dropped
with a logged warning giving the counts. (On VG150 with 300 queries this never happens.)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Tuple

import torch
from torchvision.ops import box_convert

from sgg.structures import BoxList

logger = logging.getLogger(__name__)

DEGENERATE_PIXELS = 1e-5


@dataclass
class TripletTargets:
    """(G,) labels in the dataset's label spaces (objects 1..C-1, predicates 1..R-1) and (G, 4) normalised boxes."""
    subject_labels: torch.Tensor
    object_labels: torch.Tensor
    predicate_labels: torch.Tensor
    subject_boxes: torch.Tensor
    object_boxes: torch.Tensor
    relation_boxes: torch.Tensor

    def __len__(self) -> int:
        return int(self.predicate_labels.numel())


def relation_boxes_from_centres(subject_xyxy: torch.Tensor, object_xyxy: torch.Tensor,
                                image_wh: Tuple[float, float]) -> torch.Tensor:
    """(G, 4) normalised (cx, cy, w, h) of the box between the subject and object centres (see module docstring)."""
    width, height = float(image_wh[0]), float(image_wh[1])
    sub_centre = (subject_xyxy[:, :2] + subject_xyxy[:, 2:]) / 2
    obj_centre = (object_xyxy[:, :2] + object_xyxy[:, 2:]) / 2
    centre = (sub_centre + obj_centre) / 2
    size = (sub_centre - obj_centre).abs()
    scale = subject_xyxy.new_tensor([width, height, width, height])
    boxes = torch.cat([centre, size], dim=1) / scale
    degenerate = (size <= DEGENERATE_PIXELS).any(dim=1)
    subject_boxes = box_convert(subject_xyxy, "xyxy", "cxcywh") / scale
    return torch.where(degenerate[:, None], subject_boxes, boxes)


def build_triplet_targets(target: BoxList, max_triplets: int, image_index: int = 0) -> TripletTargets:
    """Triplet targets of one image from its BoxList (``labels`` and ``relation_tuple`` (R, 3) fields, boxes in the
    resized image whose (w, h) is ``target.size``)."""
    for field in ("labels", "relation_tuple"):
        if not target.has_field(field):
            raise ValueError(f"IterativeSG training target {image_index} has no {field!r} field (fields: "
                             f"{target.fields()}); the relation data loader provides it")
    relations = target.get_field("relation_tuple").long().reshape(-1, 3)
    if len(relations) > max_triplets:
        logger.warning("image %d has %d GT triplets but MODEL.DETR.NUM_RELATION_QUERIES is %d: the first %d (in "
                       "annotation order) are matched, %d dropped", image_index, len(relations), max_triplets,
                       max_triplets, len(relations) - max_triplets)
        relations = relations[:max_triplets]
    boxes = target.convert("xyxy").bbox.float()
    labels = target.get_field("labels").long()
    if len(relations) and int(relations[:, :2].max()) >= len(boxes):
        raise ValueError(f"IterativeSG training target {image_index}: relation_tuple refers to box "
                         f"{int(relations[:, :2].max())} but the image has {len(boxes)} boxes")
    sub, obj = relations[:, 0], relations[:, 1]
    width, height = target.size
    scale = boxes.new_tensor([width, height, width, height])
    normalised = box_convert(boxes, "xyxy", "cxcywh") / scale
    return TripletTargets(
        subject_labels=labels[sub], object_labels=labels[obj], predicate_labels=relations[:, 2],
        subject_boxes=normalised[sub], object_boxes=normalised[obj],
        relation_boxes=relation_boxes_from_centres(boxes[sub], boxes[obj], (width, height)))
