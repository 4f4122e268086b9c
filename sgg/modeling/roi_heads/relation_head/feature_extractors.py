"""Pair features: the union box pooled from the feature maps plus the two boxes drawn as masks (PROTOCOL.md 4.4)."""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn
from torchvision.ops import MultiScaleRoIAlign, roi_align

from sgg.modeling.registry import ROI_RELATION_FEATURE_EXTRACTORS
from sgg.structures import BoxList, union_boxes


def infer_scale(feature: torch.Tensor, image_shape: Tuple[int, int]) -> float:
    """The power-of-two ratio between a feature map and the padded image (torchvision's rule)."""
    approx = float(feature.shape[-2]) / float(image_shape[0])
    return 2.0 ** round(math.log2(approx))


def rect_masks(heads: torch.Tensor, tails: torch.Tensor, image_sizes: torch.Tensor, rect_size: int) -> torch.Tensor:
    """(P, 2, S, S) binary masks of the subject and object boxes, drawn on an S x S canvas of the whole image.

    A cell (x, y) is inside a box when floor(x1) <= x <= ceil(x2) and floor(y1) <= y <= ceil(y2), with the box
    scaled from the image (w, h) to the canvas, as SGB's RelationFeatureExtractor.
    """
    scale = rect_size / image_sizes.float()  # (P, 2): canvas / (w, h)
    grid = torch.arange(rect_size, device=heads.device, dtype=torch.float32)

    def draw(boxes: torch.Tensor) -> torch.Tensor:
        x1 = torch.floor(boxes[:, 0] * scale[:, 0])[:, None]
        y1 = torch.floor(boxes[:, 1] * scale[:, 1])[:, None]
        x2 = torch.ceil(boxes[:, 2] * scale[:, 0])[:, None]
        y2 = torch.ceil(boxes[:, 3] * scale[:, 1])[:, None]
        inside_x = (grid[None, :] >= x1) & (grid[None, :] <= x2)  # (P, S)
        inside_y = (grid[None, :] >= y1) & (grid[None, :] <= y2)
        return (inside_y[:, :, None] & inside_x[:, None, :]).float()

    return torch.stack([draw(heads), draw(tails)], dim=1)


@ROI_RELATION_FEATURE_EXTRACTORS.register()
class RelationFeatureExtractor(nn.Module):
    """Union-box RoIAlign (on every FPN level, concatenated and reduced, or on the mapped level) + a small conv on
    the two box masks, summed, then a two-layer MLP to ``out_dim`` per pair.

    ``separate_spatial`` (Causal TDE's SEPARATE_SPATIAL, SGB's ``spatial_fc``): the MLP reads the pooled union alone
    and the mask features go through their own two-layer MLP; ``forward`` then returns both (region, spatial)."""

    def __init__(self, in_channels: int, featmap_names: Sequence[str], resolution: int, sampling_ratio: int,
                 mlp_dim: int, pool_all_levels: bool = True, separate_spatial: bool = False):
        super().__init__()
        self.featmap_names = list(featmap_names)
        self.resolution = resolution
        self.sampling_ratio = sampling_ratio
        self.pool_all_levels = pool_all_levels and len(self.featmap_names) > 1
        self.rect_size = 4 * resolution - 1
        if self.pool_all_levels:
            self.reduce_channel = nn.Sequential(
                nn.Conv2d(in_channels * len(self.featmap_names), in_channels, 3, padding=1), nn.ReLU(inplace=True))
        else:
            self.pooler = MultiScaleRoIAlign(self.featmap_names, resolution, sampling_ratio)
        half = max(in_channels // 2, 1)
        self.rect_conv = nn.Sequential(
            nn.Conv2d(2, half, kernel_size=7, stride=2, padding=3), nn.ReLU(inplace=True),
            nn.BatchNorm2d(half, momentum=0.01),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            nn.Conv2d(half, in_channels, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.BatchNorm2d(in_channels, momentum=0.01),
        )
        self.fc6 = nn.Linear(in_channels * resolution * resolution, mlp_dim)
        self.fc7 = nn.Linear(mlp_dim, mlp_dim)
        self.out_channels = mlp_dim
        self.spatial_fc = None
        if separate_spatial:  # maskrcnn-benchmark's make_fc layers
            self.spatial_fc = nn.Sequential(nn.Linear(in_channels * resolution * resolution, mlp_dim // 2),
                                            nn.ReLU(inplace=True), nn.Linear(mlp_dim // 2, mlp_dim),
                                            nn.ReLU(inplace=True))
            for layer in (self.spatial_fc[0], self.spatial_fc[2]):
                nn.init.kaiming_uniform_(layer.weight, a=1)
                nn.init.zeros_(layer.bias)

    @classmethod
    def from_config(cls, cfg, in_channels: int, featmap_names: Sequence[str]):
        box = cfg.MODEL.ROI_BOX_HEAD
        return cls(in_channels, featmap_names, box.POOLER_RESOLUTION, box.POOLER_SAMPLING_RATIO, box.MLP_HEAD_DIM,
                   cfg.MODEL.ROI_RELATION_HEAD.POOLING_ALL_LEVELS, cfg.MODEL.ROI_RELATION_HEAD.CAUSAL.SEPARATE_SPATIAL)

    def _pool(self, features: Dict[str, torch.Tensor], boxes: List[torch.Tensor],
              image_shapes: List[Tuple[int, int]]) -> torch.Tensor:
        if not self.pool_all_levels:
            return self.pooler(features, boxes, image_shapes)
        padded = (max(s[0] for s in image_shapes), max(s[1] for s in image_shapes))
        levels = []
        for name in self.featmap_names:
            feature = features[name]
            levels.append(roi_align(feature, boxes, self.resolution, spatial_scale=infer_scale(feature, padded),
                                    sampling_ratio=self.sampling_ratio, aligned=False))
        return self.reduce_channel(torch.cat(levels, dim=1))

    def forward(self, features: Dict[str, torch.Tensor], proposals: List[BoxList],
                pair_idxs: List[torch.Tensor], image_shapes: List[Tuple[int, int]],
                max_pairs_per_chunk: int = 1024) -> torch.Tensor:
        """(sum P, out_dim) features of every pair, images in order. ``image_shapes`` are (h, w) before padding.

        Outside training the pairs go through in chunks of ``max_pairs_per_chunk``, so SGDet's 6,320 pairs per
        image never hold all pooled maps at once (the results are the same).
        """
        if sum(len(p) for p in pair_idxs) == 0:
            empty = features[self.featmap_names[0]].new_zeros(0, self.out_channels)
            return (empty, empty) if self.spatial_fc is not None else empty
        if self.training:
            return self._features(features, proposals, pair_idxs, image_shapes)
        outputs = []
        empty = [p[:0] for p in pair_idxs]
        for image, pairs in enumerate(pair_idxs):
            for start in range(0, len(pairs), max_pairs_per_chunk):
                chunk = list(empty)
                chunk[image] = pairs[start:start + max_pairs_per_chunk]
                outputs.append(self._features(features, proposals, chunk, image_shapes))
        if self.spatial_fc is not None:
            return torch.cat([region for region, _ in outputs]), torch.cat([spatial for _, spatial in outputs])
        return torch.cat(outputs)

    def _features(self, features, proposals, pair_idxs, image_shapes) -> torch.Tensor:
        unions, heads, tails, sizes = [], [], [], []
        for boxes, pairs in zip(proposals, pair_idxs):
            head = boxes.bbox[pairs[:, 0]]
            tail = boxes.bbox[pairs[:, 1]]
            unions.append(union_boxes(head, tail))
            heads.append(head)
            tails.append(tail)
            sizes.append(head.new_tensor(boxes.size).expand(len(pairs), 2))
        pooled = self._pool(features, unions, image_shapes)
        masks = rect_masks(torch.cat(heads), torch.cat(tails), torch.cat(sizes), self.rect_size)
        mask_features = self.rect_conv(masks.to(pooled.dtype))
        if self.spatial_fc is not None:
            return self._mlp(pooled), self.spatial_fc(mask_features.flatten(1))
        return self._mlp(pooled + mask_features)

    def _mlp(self, pooled: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc7(torch.relu(self.fc6(pooled.flatten(1)))))


def init_union_mlp_from_box_head(extractor: nn.Module, box_head: nn.Module) -> None:
    """Start the union MLP from the detector's fc6/fc7 where the shapes agree (SGB's load_mapping)."""
    for name in ("fc6", "fc7"):
        source, target = getattr(box_head, name, None), getattr(extractor, name, None)
        if source is not None and target is not None and source.weight.shape == target.weight.shape:
            target.load_state_dict(source.state_dict())
