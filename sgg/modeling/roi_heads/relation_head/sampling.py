"""Which (subject, object) box pairs the relation head sees: sampled in training, all ordered pairs at test.

PROTOCOL.md 4.3 describes SGB's ``RelationSampling``; this is a vectorised rewrite with the same rules.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from sgg.structures import BoxList, boxlist_iou


@dataclass
class PairSample:
    """Per-image training pairs: indices into the image's boxes, predicate labels (0 = background), and the
    symmetric N x N matrix marking pairs that carry a GT relation (VCTree-style binary targets)."""

    pair_idxs: torch.Tensor  # (P, 2) int64
    labels: torch.Tensor  # (P,) int64
    binary: torch.Tensor  # (N, N) float


def all_ordered_pairs(num_boxes: int, device=None) -> torch.Tensor:
    """Every (i, j) with i != j, row-major, as SGB's ``prepare_test_pairs``."""
    idx = torch.arange(num_boxes, device=device)
    pairs = torch.cartesian_prod(idx, idx) if num_boxes > 0 else torch.zeros(0, 2, dtype=torch.long, device=device)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def inference_pairs(boxes: BoxList, require_overlap: bool = False) -> torch.Tensor:
    """All ordered pairs; with ``require_overlap`` (SGDet's TEST.RELATION.REQUIRE_OVERLAP) only IoU > 0 pairs.

    Unlike SGB, an image with no pair gets an empty (0, 2) tensor, not the ``[[0, 0]]`` placeholder.
    """
    pairs = all_ordered_pairs(len(boxes), boxes.bbox.device)
    if require_overlap and len(pairs):
        iou = boxlist_iou(boxes, boxes)
        pairs = pairs[iou[pairs[:, 0], pairs[:, 1]] > 0]
    return pairs


def _random_subset(n: int, k: int, generator: Optional[torch.Generator], device) -> torch.Tensor:
    return torch.randperm(n, generator=generator, device="cpu")[:k].to(device)


def sample_gt_box_pairs(target: BoxList, batch_size: int, positive_fraction: float,
                        generator: Optional[torch.Generator] = None) -> PairSample:
    """PredCls / SGCls training pairs (SGB ``gtbox_relsample``): the boxes are the GT boxes.

    Foreground: the non-zero cells of the GT ``relation`` matrix (one predicate per pair after the train-time
    duplicate filter), at most ``int(batch_size * positive_fraction)`` at random. Background: ``batch_size - num_fg``
    random ordered pairs that are not GT pairs.
    """
    num_boxes = len(target)
    device = target.bbox.device
    relation = target.get_field("relation")
    num_pos = int(batch_size * positive_fraction)

    fg_pairs = relation.nonzero()
    fg_labels = relation[fg_pairs[:, 0], fg_pairs[:, 1]] if len(fg_pairs) else relation.new_zeros(0)
    if len(fg_pairs) > num_pos:
        keep = _random_subset(len(fg_pairs), num_pos, generator, device)
        fg_pairs, fg_labels = fg_pairs[keep], fg_labels[keep]

    candidates = all_ordered_pairs(num_boxes, device)
    is_gt_pair = relation[candidates[:, 0], candidates[:, 1]] > 0 if len(candidates) else candidates[:, 0] > 0
    bg_pairs = candidates[~is_gt_pair]
    num_bg = min(max(batch_size - len(fg_pairs), 0), len(bg_pairs))
    bg_pairs = bg_pairs[_random_subset(len(bg_pairs), num_bg, generator, device)]

    binary = torch.zeros(num_boxes, num_boxes, device=device)
    gt_pairs = relation.nonzero()
    binary[gt_pairs[:, 0], gt_pairs[:, 1]] = 1
    binary[gt_pairs[:, 1], gt_pairs[:, 0]] = 1
    pairs = torch.cat([fg_pairs, bg_pairs]).long()
    labels = torch.cat([fg_labels.long(), torch.zeros(len(bg_pairs), dtype=torch.long, device=device)])
    return PairSample(pairs, labels, binary)


def sample_detection_pairs(proposals: BoxList, target: BoxList, batch_size: int, positive_fraction: float,
                           num_sample_per_gt_rel: int = 4, require_overlap: bool = False, fg_iou: float = 0.5,
                           generator: Optional[torch.Generator] = None) -> PairSample:
    """SGDet training pairs (SGB ``detect_relsample``, a port of neural-motifs' ``rel_assignments``).

    ``proposals`` need a ``labels`` field (the class of the matched GT box, 0 for background). A proposal matches a
    GT box when their labels are equal and IoU > ``fg_iou``. Each GT relation labels every (matched subject,
    matched object) proposal pair; more than ``num_sample_per_gt_rel`` are sampled with probability proportional to
    IoU_subject x IoU_object. Foreground is capped at ``batch_size * positive_fraction``; background fills the rest
    from the remaining pairs of foreground-labelled proposals.
    """
    device = proposals.bbox.device
    num_props = len(proposals)
    num_pos = int(batch_size * positive_fraction)
    prop_labels = proposals.get_field("labels").long()
    gt_labels = target.get_field("labels").long()
    gt_rels = target.get_field("relation_tuple").long()

    iou = boxlist_iou(target, proposals) if len(target) and num_props else torch.zeros(len(target), num_props)
    iou = iou.to(device)
    is_match = (gt_labels[:, None] == prop_labels[None, :]) & (iou > fg_iou)

    # Candidate pairs for background: distinct proposals, both labelled foreground, optionally overlapping.
    candidate = torch.ones(num_props, num_props, dtype=torch.bool, device=device)
    candidate.fill_diagonal_(False)
    if require_overlap and num_props:
        prop_iou = boxlist_iou(proposals, proposals)
        candidate &= (prop_iou > 0) & (prop_iou < 1)
    candidate[prop_labels == 0, :] = False
    candidate[:, prop_labels == 0] = False

    binary = torch.zeros(num_props, num_props, device=device)
    fg_pairs: List[torch.Tensor] = []
    fg_labels: List[torch.Tensor] = []
    for sub, obj, predicate in gt_rels.tolist():
        heads = is_match[sub].nonzero().flatten()
        tails = is_match[obj].nonzero().flatten()
        if len(heads) == 0 or len(tails) == 0:
            continue
        combos = torch.cartesian_prod(heads, tails)
        combos = combos[combos[:, 0] != combos[:, 1]]
        if len(combos) == 0:
            continue
        binary[combos[:, 0], combos[:, 1]] = 1
        binary[combos[:, 1], combos[:, 0]] = 1
        candidate[combos[:, 0], combos[:, 1]] = False
        if len(combos) > num_sample_per_gt_rel:
            weights = iou[sub, combos[:, 0]] * iou[obj, combos[:, 1]]
            pick = torch.multinomial(weights.cpu().double() + 1e-12, num_sample_per_gt_rel, replacement=False,
                                     generator=generator).to(device)
            combos = combos[pick]
        fg_pairs.append(combos)
        fg_labels.append(torch.full((len(combos),), predicate, dtype=torch.long, device=device))

    fg = torch.cat(fg_pairs) if fg_pairs else torch.zeros(0, 2, dtype=torch.long, device=device)
    fg_lab = torch.cat(fg_labels) if fg_labels else torch.zeros(0, dtype=torch.long, device=device)
    if len(fg) > num_pos:
        keep = _random_subset(len(fg), num_pos, generator, device)
        fg, fg_lab = fg[keep], fg_lab[keep]

    bg_all = candidate.nonzero()
    num_bg = min(max(batch_size - len(fg), 0), len(bg_all))
    bg = bg_all[_random_subset(len(bg_all), num_bg, generator, device)]
    pairs = torch.cat([fg, bg]).long()
    labels = torch.cat([fg_lab, torch.zeros(len(bg), dtype=torch.long, device=device)])
    return PairSample(pairs, labels, binary)


def split_pairs(pairs_per_image: List[torch.Tensor]) -> Tuple[List[int], torch.Tensor]:
    """Pair counts per image and the concatenation, for predictors that work on the whole batch."""
    return [len(p) for p in pairs_per_image], torch.cat(pairs_per_image) if pairs_per_image else torch.zeros(0, 2)


@dataclass(frozen=True)
class PairSampler:
    """The relation head's pair rules for one protocol: sampled training pairs (``sample``) and test pairs
    (``test_pairs``). Built from the ``MODEL.ROI_RELATION_HEAD`` sampling keys by ``from_config``."""

    mode: str
    batch_size_per_image: int = 64
    positive_fraction: float = 0.25
    num_sample_per_gt_rel: int = 4
    require_overlap_train: bool = True  # SGDet training pairs overlap
    require_overlap_test: bool = False  # SGDet test pairs overlap
    fg_iou_threshold: float = 0.5  # SGDet: a detection matches a GT box at IoU >= this

    @classmethod
    def from_config(cls, cfg, mode: str) -> "PairSampler":
        head = cfg.MODEL.ROI_RELATION_HEAD
        return cls(mode, head.BATCH_SIZE_PER_IMAGE, head.POSITIVE_FRACTION, head.NUM_SAMPLE_PER_GT_REL,
                   head.REQUIRE_BOX_OVERLAP, cfg.TEST.RELATION.REQUIRE_OVERLAP and mode == "sgdet",
                   cfg.MODEL.ROI_HEADS.FG_IOU_THRESHOLD)

    def sample(self, proposals: List[BoxList], targets: List[BoxList]) -> List[PairSample]:
        samples = []
        for boxes, target in zip(proposals, targets):
            if self.mode == "sgdet":
                samples.append(sample_detection_pairs(
                    boxes, target, self.batch_size_per_image, self.positive_fraction, self.num_sample_per_gt_rel,
                    self.require_overlap_train, self.fg_iou_threshold))
            else:
                samples.append(sample_gt_box_pairs(boxes, self.batch_size_per_image, self.positive_fraction))
        return samples

    def test_pairs(self, proposals: List[BoxList]) -> List[torch.Tensor]:
        return [inference_pairs(boxes, self.require_overlap_test) for boxes in proposals]
