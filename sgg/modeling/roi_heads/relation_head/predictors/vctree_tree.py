"""VCTree's per-image tree (Tang et al., CVPR 2019, Sec. 3.2) as SGB builds it (``utils_vctree.py``): a greedy
maximum-score tree on the pair score matrix, turned into a binary tree, plus the level schedules the batched
TreeLSTMs (tree_lstm.py) walk.

Conventions (SGB's, kept exactly):

* ``scores[i, j]`` is the score of attaching node ``j`` below node ``i``; a node's score is its row mean.
* The root is the node of highest row mean. The other nodes are inserted one at a time: the (already inserted node,
  remaining node) pair of highest score wins, ties going to the earliest inserted parent, then the lowest remaining
  index (the first maximum of the row-major flattened sub-matrix, as ``torch.max`` returns it).
* Binary tree (left-child right-sibling, SGB's ``arbForest_to_biForest``): a node's first child becomes its left
  child; each later child becomes the right child of the child inserted before it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch

from sgg.structures import BoxList

NO_NODE = -1
OVERLAP_IMAGE_SCALE = 1024.0  # SGB's fixed IM_SCALE in get_overlap_info


def greedy_tree(scores: np.ndarray) -> Tuple[int, List[List[int]]]:
    """The arbitrary tree of one image: (root, children of each node in insertion order)."""
    num_nodes = scores.shape[0]
    root = int(np.argmax(scores.mean(axis=1)))
    children: List[List[int]] = [[] for _ in range(num_nodes)]
    inserted, remaining = [root], [i for i in range(num_nodes) if i != root]
    while remaining:
        best = int(np.argmax(scores[np.ix_(inserted, remaining)]))
        parent, child = inserted[best // len(remaining)], remaining[best % len(remaining)]
        children[parent].append(child)
        inserted.append(child)
        remaining.remove(child)
    return root, children


def binary_tree(children: Sequence[Sequence[int]]) -> Tuple[List[int], List[int]]:
    """Left-child right-sibling form of an arbitrary tree: (left child, right child) of each node, NO_NODE if none."""
    left, right = [NO_NODE] * len(children), [NO_NODE] * len(children)
    for node, kids in enumerate(children):
        if kids:
            left[node] = kids[0]
        for previous, kid in zip(kids, kids[1:]):
            right[previous] = kid
    return left, right


@dataclass
class Forest:
    """The binary trees of a batch over the concatenated boxes (global indices, NO_NODE = none), and the level
    schedules of the TreeLSTMs: ``upward`` lists the nodes by height (leaves first; a node comes after both
    children), ``downward`` by depth (roots first; a node comes after its parent). ``image`` is each node's image."""

    roots: List[int]
    left: torch.Tensor  # (N,)
    right: torch.Tensor  # (N,)
    parent: torch.Tensor  # (N,)
    image: torch.Tensor  # (N,)
    upward: List[torch.Tensor]
    downward: List[torch.Tensor]

    @property
    def num_nodes(self) -> int:
        return int(self.left.shape[0])


def _levels(left: List[int], right: List[int], roots: List[int]) -> Tuple[List[List[int]], List[List[int]]]:
    """Nodes grouped by height (upward) and by depth (downward), each group in ascending index order."""
    height, depth = {}, {}
    for root in roots:
        stack, order = [(root, 0)], []
        while stack:  # iterative pre-order: trees can be as deep as the number of boxes
            node, level = stack.pop()
            depth[node] = level
            order.append(node)
            stack.extend((kid, level + 1) for kid in (right[node], left[node]) if kid != NO_NODE)
        for node in reversed(order):  # children before parents
            kids = [height[k] for k in (left[node], right[node]) if k != NO_NODE]
            height[node] = 1 + max(kids) if kids else 0

    def group(level_of):
        groups: List[List[int]] = [[] for _ in range(max(level_of.values(), default=-1) + 1)]
        for node in sorted(level_of):
            groups[level_of[node]].append(node)
        return groups

    return group(height), group(depth)


def build_forest(pair_scores: Sequence[torch.Tensor], device) -> Forest:
    """One binary tree per image from its (N_i, N_i) pair scores (an image without boxes has no tree). The scores
    are copied to the host once for the whole batch: the greedy construction is sequential and data dependent."""
    sizes = [int(s.shape[0]) for s in pair_scores]
    flat = [s.detach().float().reshape(-1) for s in pair_scores]
    host = torch.cat(flat).cpu().numpy() if flat else np.zeros(0, np.float32)  # the one host sync of the tree
    host_scores = [chunk.reshape(n, n) for chunk, n in zip(np.split(host, np.cumsum([n * n for n in sizes])[:-1]),
                                                           sizes)]
    roots, left, right, parent, image = [], [], [], [], []
    offset = 0
    for index, scores in enumerate(host_scores):
        num_nodes = scores.shape[0]
        if num_nodes:
            root, children = greedy_tree(scores)
            lefts, rights = binary_tree(children)
            roots.append(root + offset)
            left += [k + offset if k != NO_NODE else NO_NODE for k in lefts]
            right += [k + offset if k != NO_NODE else NO_NODE for k in rights]
            parents = [NO_NODE] * num_nodes
            for node in range(num_nodes):
                for kid in (lefts[node], rights[node]):
                    if kid != NO_NODE:
                        parents[kid] = node + offset
            parent += parents
            image += [index] * num_nodes
        offset += num_nodes
    upward, downward = _levels(left, right, roots)

    def as_tensor(values):
        return torch.tensor(values, dtype=torch.long, device=device)

    return Forest(roots, as_tensor(left), as_tensor(right), as_tensor(parent), as_tensor(image),
                  [as_tensor(level) for level in upward], [as_tensor(level) for level in downward])


# ------------------------------------------------------------------------------------------------ overlap features
def overlap_info(boxes: Sequence[BoxList], device) -> torch.Tensor:
    """(sum N, 6) SGB's ``get_overlap_info`` per box: [number of boxes it intersects (itself included), summed
    intersection / 1024^2, summed IoU, the two sums divided by that number, area / 1024^2]. Intersections and IoUs
    use +1 widths; the area does not (as SGB)."""
    info = []
    for image in boxes:
        xyxy = image.convert("xyxy").bbox.float().to(device)
        low = torch.max(xyxy[:, None, :2], xyxy[None, :, :2])
        high = torch.min(xyxy[:, None, 2:], xyxy[None, :, 2:])
        inter = (high - low + 1.0).clamp(min=0).prod(dim=2)
        plus_one_area = ((xyxy[:, 2] - xyxy[:, 0] + 1.0) * (xyxy[:, 3] - xyxy[:, 1] + 1.0))
        iou = inter / (plus_one_area[:, None] + plus_one_area[None, :] - inter + 1e-9)
        count = (inter > 0).float().sum(dim=1)
        inter_sum = inter.sum(dim=1) / OVERLAP_IMAGE_SCALE ** 2
        iou_sum = iou.sum(dim=1)
        area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1]) / OVERLAP_IMAGE_SCALE ** 2
        info.append(torch.stack([count, inter_sum, iou_sum, inter_sum / (count + 1e-9), iou_sum / (count + 1e-9),
                                 area], dim=1))
    if not info:
        return torch.zeros(0, 6, device=device)
    return torch.cat(info, dim=0)
