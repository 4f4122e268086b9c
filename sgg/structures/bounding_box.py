"""The per-image container: boxes in xyxy pixels plus named per-box and per-relation fields.

Modelled on maskrcnn-benchmark's ``BoxList`` and detectron2's ``Instances``. Three kinds of fields:

* per-box fields (``labels``, ``scores``, ``attributes`` ...): first dimension N, indexed with the boxes;
* pair-matrix fields (``relation``: an N x N predicate matrix): indexed on both axes;
* relation-tuple fields (``relation_tuple``: (R, 3) rows of subject index, object index, predicate): the box indices
  are remapped when boxes are selected, and rows that lose a box are dropped.

Keeping relations inside the container is what stops GT boxes and GT relations drifting apart when degenerate boxes are
removed (the SGB misalignment of PROTOCOL.md 1.5).
"""
from __future__ import annotations

from typing import Dict, Iterable, Sequence, Tuple

import torch

FLIP_LEFT_RIGHT = 0
FLIP_TOP_BOTTOM = 1

# Fields whose two leading dimensions both index boxes, and fields holding (subject, object, ...) rows.
PAIR_MATRIX_FIELDS = frozenset({"relation"})
RELATION_TUPLE_FIELDS = frozenset({"relation_tuple"})
# Per-pair prediction fields: their first dimension counts pairs, not boxes, so box selection cannot index them.
PAIR_PREDICTION_FIELDS = frozenset({"rel_pair_idxs", "pred_rel_scores", "pred_rel_labels", "rel_labels",
                                    "pred_rel_rank_scores"})


class BoxList:
    """Boxes of one image (``bbox``: float tensor (N, 4)) with ``size = (width, height)`` and named fields."""

    def __init__(self, bbox, image_size: Tuple[int, int], mode: str = "xyxy"):
        device = bbox.device if isinstance(bbox, torch.Tensor) else torch.device("cpu")
        bbox = torch.as_tensor(bbox, dtype=torch.float32, device=device)
        if bbox.ndim == 1 and bbox.numel() == 0:
            bbox = bbox.reshape(0, 4)
        if bbox.ndim != 2 or bbox.shape[-1] != 4:
            raise ValueError(f"BoxList: bbox must have shape (N, 4), got {tuple(bbox.shape)}")
        if mode not in ("xyxy", "xywh"):
            raise ValueError(f"BoxList: mode must be 'xyxy' or 'xywh', got {mode!r}")
        self.bbox = bbox
        self.size = (int(image_size[0]), int(image_size[1]))
        self.mode = mode
        self.extra_fields: Dict[str, torch.Tensor] = {}

    # ----------------------------------------------------------------------------------------------- fields
    def add_field(self, name: str, value) -> None:
        self.extra_fields[name] = value

    def get_field(self, name: str):
        if name not in self.extra_fields:
            raise KeyError(f"BoxList has no field {name!r}; fields: {sorted(self.extra_fields)}")
        return self.extra_fields[name]

    def has_field(self, name: str) -> bool:
        return name in self.extra_fields

    def fields(self) -> list:
        return list(self.extra_fields.keys())

    def remove_field(self, name: str) -> None:
        self.extra_fields.pop(name, None)

    def _copy_meta(self, bbox) -> "BoxList":
        return BoxList(bbox, self.size, self.mode)

    def copy_with_fields(self, fields: Iterable[str], skip_missing: bool = False) -> "BoxList":
        out = self._copy_meta(self.bbox)
        for name in fields:
            if self.has_field(name):
                out.add_field(name, self.get_field(name))
            elif not skip_missing:
                raise KeyError(f"BoxList has no field {name!r}; fields: {sorted(self.extra_fields)}")
        return out

    # ----------------------------------------------------------------------------------------------- modes
    def convert(self, mode: str) -> "BoxList":
        if mode == self.mode:
            return self
        x1, y1, a, b = self.bbox.unbind(-1)
        if mode == "xywh":  # legacy +1 pixel widths, as maskrcnn-benchmark
            bbox = torch.stack([x1, y1, a - x1 + 1, b - y1 + 1], dim=-1)
        else:
            bbox = torch.stack([x1, y1, x1 + a - 1, y1 + b - 1], dim=-1)
        out = self._copy_meta(bbox)
        out.mode = mode
        out.extra_fields = dict(self.extra_fields)
        return out

    # ----------------------------------------------------------------------------------------------- geometry
    def resize(self, size: Tuple[int, int]) -> "BoxList":
        """Scale boxes to a new image size ``(width, height)``."""
        ratio_w = float(size[0]) / self.size[0]
        ratio_h = float(size[1]) / self.size[1]
        scale = self.bbox.new_tensor([ratio_w, ratio_h, ratio_w, ratio_h])
        out = BoxList(self.bbox * scale, size, self.mode)
        out.extra_fields = dict(self.extra_fields)
        return out

    def transpose(self, method: int) -> "BoxList":
        """Flip boxes with the image (maskrcnn convention: x1' = W - x2 - 1)."""
        if method not in (FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM):
            raise ValueError(f"transpose: method must be FLIP_LEFT_RIGHT or FLIP_TOP_BOTTOM, got {method}")
        box = self.convert("xyxy").bbox
        x1, y1, x2, y2 = box.unbind(-1)
        w, h = self.size
        if method == FLIP_LEFT_RIGHT:
            flipped = torch.stack([w - x2 - 1, y1, w - x1 - 1, y2], dim=-1)
        else:
            flipped = torch.stack([x1, h - y2 - 1, x2, h - y1 - 1], dim=-1)
        out = BoxList(flipped, self.size, "xyxy")
        out.extra_fields = dict(self.extra_fields)
        return out.convert(self.mode)

    def clip_to_image(self, remove_empty: bool = True) -> "BoxList":
        """Clip to [0, W-1] x [0, H-1]; with ``remove_empty`` drop boxes left with no area (and their relations)."""
        box = self.convert("xyxy").bbox.clone()
        w, h = self.size
        box[:, 0].clamp_(min=0, max=w - 1)
        box[:, 1].clamp_(min=0, max=h - 1)
        box[:, 2].clamp_(min=0, max=w - 1)
        box[:, 3].clamp_(min=0, max=h - 1)
        out = BoxList(box, self.size, "xyxy")
        out.extra_fields = dict(self.extra_fields)
        if remove_empty:
            keep = (box[:, 3] > box[:, 1]) & (box[:, 2] > box[:, 0])
            if not bool(keep.all()):
                out = out[keep]
        return out.convert(self.mode)

    def area(self) -> torch.Tensor:
        box = self.convert("xyxy").bbox
        return (box[:, 2] - box[:, 0] + 1) * (box[:, 3] - box[:, 1] + 1)

    # ----------------------------------------------------------------------------------------------- indexing
    def __len__(self) -> int:
        return self.bbox.shape[0]

    def __getitem__(self, item) -> "BoxList":
        keep = _as_index_tensor(item, len(self), self.bbox.device)
        out = self._copy_meta(self.bbox[keep])
        for name, value in self.extra_fields.items():
            if name in PAIR_PREDICTION_FIELDS:
                raise ValueError(f"BoxList: cannot select boxes of a list that carries the per-pair field {name!r}; "
                                 "select boxes before adding relation predictions")
            if name in PAIR_MATRIX_FIELDS:
                out.add_field(name, value[keep][:, keep])
            elif name in RELATION_TUPLE_FIELDS:
                out.add_field(name, remap_relations(value, keep, len(self)))
            elif isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == len(self):
                out.add_field(name, value[keep])
            else:
                out.add_field(name, value)
        return out

    def to(self, device) -> "BoxList":
        out = BoxList(self.bbox.to(device), self.size, self.mode)
        for name, value in self.extra_fields.items():
            out.add_field(name, value.to(device) if hasattr(value, "to") else value)
        return out

    def __repr__(self) -> str:
        return (f"BoxList(num_boxes={len(self)}, image_width={self.size[0]}, image_height={self.size[1]}, "
                f"mode={self.mode}, fields={self.fields()})")


def _as_index_tensor(item, length: int, device) -> torch.Tensor:
    """Turn an int, slice, list, bool mask or index tensor into a long index tensor."""
    if isinstance(item, int):
        item = [item]
    if isinstance(item, slice):
        return torch.arange(length, device=device)[item]
    index = torch.as_tensor(item, device=device)
    if index.dtype == torch.bool:
        if index.numel() != length:
            raise IndexError(f"BoxList: boolean mask has {index.numel()} entries for {length} boxes")
        return index.nonzero().flatten()
    return index.long().flatten()


def remap_relations(relations: torch.Tensor, keep: torch.Tensor, num_boxes: int) -> torch.Tensor:
    """Re-index (R, >=2) relation rows after keeping boxes ``keep`` (in that order); drop rows that lost a box.

    A box selected twice keeps its first position.
    """
    if relations.numel() == 0:
        return relations
    new_index = torch.full((num_boxes,), -1, dtype=torch.long, device=relations.device)
    positions = torch.arange(keep.numel(), device=relations.device)
    # Scatter in reverse so the first occurrence wins for repeated indices.
    new_index[keep.flip(0)] = positions.flip(0)
    sub = new_index[relations[:, 0].long()]
    obj = new_index[relations[:, 1].long()]
    valid = (sub >= 0) & (obj >= 0)
    out = relations[valid].clone()
    out[:, 0] = sub[valid].to(out.dtype)
    out[:, 1] = obj[valid].to(out.dtype)
    return out


def cat_boxlist(boxlists: Sequence[BoxList]) -> BoxList:
    """Concatenate box lists of the same image (same size, mode and per-box fields)."""
    if not boxlists:
        raise ValueError("cat_boxlist: empty list")
    size, mode = boxlists[0].size, boxlists[0].mode
    names = set(boxlists[0].fields())
    for b in boxlists:
        if b.size != size or b.mode != mode or set(b.fields()) != names:
            raise ValueError("cat_boxlist: box lists differ in image size, mode or fields")
    out = BoxList(torch.cat([b.bbox for b in boxlists]), size, mode)
    for name in names:
        if name in PAIR_MATRIX_FIELDS or name in RELATION_TUPLE_FIELDS:
            raise ValueError(f"cat_boxlist: cannot concatenate relation field {name!r}")
        out.add_field(name, torch.cat([b.get_field(name) for b in boxlists]))
    return out
