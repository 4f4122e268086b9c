"""SGB's 9-d box geometry encoding of each box in its image, and the position embedding Motif, VCTree,
Transformer, HCA, VTransE and PE-Net feed to their object context."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from sgg.structures import BoxList

from .batch_norm import SmallBatchNorm1d

POS_EMBED_DIM = 128  # SGB's fixed size of the box geometry embedding


def encode_box_geometry(boxes: Sequence[BoxList]) -> torch.Tensor:
    """(sum N, 9) SGB box info per image: [w/W, h/H, cx/W, cy/H, x1/W, y1/H, x2/W, y2/H, wh/(WH)] with +1 widths."""
    encoded = []
    for image in boxes:
        xyxy = image.convert("xyxy").bbox.float()
        width, height = float(image.size[0]), float(image.size[1])
        x1, y1, x2, y2 = xyxy.unbind(dim=1)
        w, h = x2 - x1 + 1.0, y2 - y1 + 1.0
        cx, cy = x1 + 0.5 * w, y1 + 0.5 * h
        encoded.append(torch.stack([w / width, h / height, cx / width, cy / height, x1 / width, y1 / height,
                                    x2 / width, y2 / height, w * h / (width * height)], dim=1))
    if not encoded:
        return torch.zeros(0, 9)
    return torch.cat(encoded, dim=0)


class BoxPositionEncoder(nn.Module):
    """Motif's position embedding: 9-d geometry -> Linear(32) -> BN -> Linear(128) -> ReLU. The Transformer variant
    (``batch_norm=False``) uses ReLU + Dropout(0.1) after each Linear instead, as in SGB's TransformerContext."""

    def __init__(self, out_dim: int = POS_EMBED_DIM, batch_norm: bool = True, dropout: float = 0.1):
        super().__init__()
        if batch_norm:
            self.layers = nn.Sequential(nn.Linear(9, 32), SmallBatchNorm1d(32, momentum=0.001),
                                        nn.Linear(32, out_dim), nn.ReLU(inplace=True))
        else:
            self.layers = nn.Sequential(nn.Linear(9, 32), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                        nn.Linear(32, out_dim), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.out_dim = out_dim

    def forward(self, boxes: Sequence[BoxList], device) -> torch.Tensor:
        return self.layers(encode_box_geometry(boxes).to(device))
