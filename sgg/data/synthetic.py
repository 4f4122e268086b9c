"""Synthetic Visual Genome: a small, learnable, long-tailed scene graph dataset in the exact VG150 file format.

Objects are 30 classes (6 shapes x 5 colours) drawn on low-saturation textured backgrounds. Scenes are built by
placing each object relative to an earlier one (inside it, on it, beside it, overlapping it, near it, or anywhere), so
that the interesting configurations are common. Predicates are then *read off the final geometry*: for a pair, the
valid predicates follow from the boxes, the drawing order and the classes (:func:`valid_predicates`), never from how
the pair was placed. Like VG, the vocabulary is hierarchical: a pair that is "on" is also "touching", "above" and
"near"; one that is "inside" is also "near", and its reverse "contains" is also "has". Each annotated relation draws
one valid predicate with weights that strongly prefer the general words, which gives VG's long tail: the three most
frequent predicates (near, on, has) hold about 64 % of the annotations (VG150: about 60 %) and 13 of the 22
predicates under 2 % each. Some predicates
depend on the classes ("wearing": a triangle on a hexagon; "holding": a star with a smaller circle over it; "same
color as"), so the frequency bias carries real information.

Everything but the drawing is vectorised over the whole dataset (a loop over object slots, not over images), so the
VG-scale annotation-only profile (108,073 images, about 10.6 boxes and 5.8 relations per image) takes seconds.

Profiles (:data:`PROFILES`): ``images`` (the drawn default: 2-8 objects on 128-256 px images), ``vg`` (VG's scene
statistics, for annotation-only scale tests) and ``vglike`` (VG150's scene statistics and its steeper predicate tail,
drawn on 320-448 px images: the benchmark where R@K ranks; DATASET.md compares it with VG150).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch

from sgg.config.sgg_config import ConfigError

from .synthetic_render import COLOURS, SHAPES, STYLES, render_images
from .vg_format import IMAGE_DIR, SPLIT_TEST, SPLIT_TRAIN, ZEROSHOT_FILE
from .vg_writer import VGAnnotations, default_image_ids, write_vg_annotations, zero_shot_triplets


OBJECT_CLASSES = tuple(sorted(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES))
CLASS_SHAPE = np.array([0] + [SHAPES.index(name.split(" ", 1)[1]) for name in OBJECT_CLASSES])  # by class id
CLASS_COLOUR = np.array([0] + [COLOURS.index(name.split(" ", 1)[0]) for name in OBJECT_CLASSES])
CLASS_ID = np.array([[OBJECT_CLASSES.index(f"{c} {s}") + 1 for s in SHAPES] for c in COLOURS])  # [colour, shape]
ATTRIBUTES = ("dotted", "large", "small", "striped", "tall", "wide")

# Alphabetical like VG150's. The weight is how strongly an annotator prefers a word among those that hold for a pair.
# Within each hierarchy the general word wins: has over contains/inside, on and above over on top of, near over
# next to/touching, behind/in front of kept rare. The class-dependent "wearing" and "holding" are strong (as VG's
# "wearing"), so the frequency bias knows a triangle on a hexagon is usually worn. "near" holds for almost every
# described pair, so a small weight still makes it one of the three head predicates.
PREDICATE_WEIGHTS = {
    "above": 2.5, "behind": 0.8, "below": 0.3, "bigger than": 0.1, "contains": 0.2, "far from": 0.25,
    "has": 11.0, "holding": 12.0, "in front of": 0.5, "inside": 0.5, "left of": 0.5, "near": 1.2,
    "next to": 0.3, "on": 14.0, "on top of": 0.4, "right of": 0.5, "same color as": 0.08,
    "same shape as": 0.08, "smaller than": 0.1, "touching": 0.3, "under": 0.6, "wearing": 16.0,
}
PREDICATES = tuple(sorted(PREDICATE_WEIGHTS))
# The vglike profile follows VG150's steeper tail (40 of its 50 predicates hold under 2 % each): every word but the
# five most frequent (near, on, has, above, behind) is rarer than with the weights above.
VGLIKE_PREDICATE_WEIGHTS = dict(PREDICATE_WEIGHTS, **{
    "above": 3.5, "behind": 1.4, "in front of": 0.3, "left of": 0.22, "near": 0.9, "next to": 0.2, "right of": 0.22,
    "touching": 0.22, "wearing": 9.0})
P = {name: i for i, name in enumerate(PREDICATES)}  # column of each predicate in the validity matrix

# How an object is placed relative to an earlier one ("anchor").
FREE, INSIDE, ON, BESIDE, OVERLAP, NEAR = range(6)
PLACEMENT_PROBS = np.array([0.14, 0.22, 0.32, 0.08, 0.16, 0.08])
# circle, diamond, hexagon, square, star, triangle
FIRST_SHAPE_PROBS = np.array([0.2, 0.05, 0.3, 0.15, 0.25, 0.05])
CONTAINERS = np.array([SHAPES.index(s) for s in ("circle", "hexagon", "square")])
CONTACT_TOLERANCE = 2  # pixels of gap or overlap that still count as touching
DUPLICATE_RATE = 0.06  # share of annotated pairs that get a second, different predicate (VG has such pairs)


@dataclass(frozen=True)
class SceneProfile:
    """Scene statistics. ``extra_objects_mean``: objects = min + negative binomial with this mean (clipped to max);
    None draws the count uniformly in [min, max]."""

    name: str
    min_objects: int
    max_objects: int
    extra_objects_mean: Optional[float]
    side_range: tuple  # image width and height, each uniform in this range (pixels)
    object_scale: tuple  # object size as a fraction of the image's short side
    rels_per_object: float  # mean annotated relations per object in images that have relations
    empty_fraction: float  # images annotated without any relation
    predicate_weights: Optional[Dict[str, float]] = None  # annotator preferences; None: PREDICATE_WEIGHTS


IMAGE_PROFILE = SceneProfile("images", 2, 8, None, (128, 256), (0.16, 0.4), 0.75, 0.03)
# vg and vglike: VG150's ~10.6 boxes, ~5.8 relations per image and 17.5 % of images without relations. vglike's
# images are smaller than VG's annotation-only sizes so that a CPU detector sees its objects at about drawn size.
VG_PROFILE = SceneProfile("vg", 2, 40, 8.6, (300, 500), (0.07, 0.3), 0.63, 0.17)
VGLIKE_PROFILE = SceneProfile("vglike", 2, 40, 8.6, (320, 448), (0.06, 0.24), 0.63, 0.17, VGLIKE_PREDICATE_WEIGHTS)
PROFILES = {p.name: p for p in (IMAGE_PROFILE, VG_PROFILE, VGLIKE_PROFILE)}
VG_NUM_IMAGES = 108_073


@dataclass
class SyntheticScenes:
    annotations: VGAnnotations
    shapes: np.ndarray  # (B,) shape index per box
    colours: np.ndarray  # (B,) colour index
    styles: np.ndarray  # (B,) style index
    draw_order: np.ndarray  # (B,) global box indices, grouped by image, in drawing order


# ------------------------------------------------------------------------------------------------------ layout
def _object_counts(rng: np.random.Generator, n: int, profile: SceneProfile) -> np.ndarray:
    if profile.extra_objects_mean is None:
        return rng.integers(profile.min_objects, profile.max_objects + 1, size=n)
    shape = 4.0  # negative binomial dispersion: VG's box counts are wide
    extra = rng.negative_binomial(shape, shape / (shape + profile.extra_objects_mean), size=n)
    return np.minimum(profile.min_objects + extra, profile.max_objects)


def sample_layout(rng: np.random.Generator, widths: np.ndarray, heights: np.ndarray, counts: np.ndarray,
                  profile: SceneProfile) -> Dict[str, np.ndarray]:
    """Boxes (inclusive integer xyxy), shapes, colours, styles and drawing order of every object."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    image = np.repeat(np.arange(len(counts)), counts)
    shape = rng.integers(0, len(SHAPES), size=total)
    colour = rng.integers(0, len(COLOURS), size=total)
    box = np.zeros((total, 4))  # x, y, w, h (floats) while placing
    placement = np.full(total, FREE)
    anchors = np.arange(total)
    for k in range(int(counts.max(initial=0))):
        img = np.flatnonzero(counts > k)
        obj = starts[img] + k
        m = len(obj)
        width, height = widths[img].astype(float), heights[img].astype(float)
        short = np.minimum(width, height)
        size = rng.uniform(*profile.object_scale, size=m) * short
        aspect = np.exp(rng.uniform(-0.35, 0.35, size=m))
        w, h = size * np.sqrt(aspect), size / np.sqrt(aspect)
        x, y = rng.uniform(0, 1, m) * (width - w), rng.uniform(0, 1, m) * (height - h)
        if k == 0:  # the first object sets the scene: large, usually a container, a wearer or a holder
            mode = np.full(m, FREE)
            size = size * 1.35
            w, h = np.minimum(w * 1.35, width * 0.7), np.minimum(h * 1.35, height * 0.7)
            # low in the image, leaving room for things on top of it
            x, y = rng.uniform(0, 1, m) * (width - w), rng.uniform(0.35, 1, m) * (height - h)
            shape[obj] = rng.choice(len(SHAPES), size=m, p=FIRST_SHAPE_PROBS)
        else:
            mode = rng.choice(len(PLACEMENT_PROBS), size=m, p=PLACEMENT_PROBS)
        anchor = starts[img] + (rng.uniform(0, 1, m) * max(k, 1)).astype(int)
        # the scene's first object is the anchor of choice: things go inside it, on it and over it
        to_first = rng.uniform(0, 1, m) < np.select([mode == INSIDE, (mode == ON) | (mode == OVERLAP)], [0.8, 0.5], 0)
        anchor = np.where(to_first, starts[img], anchor)
        ax, ay, aw, ah = box[anchor].T
        ashape = shape[anchor]

        # inside: only containers large enough to hold a visible object
        inside = (mode == INSIDE) & np.isin(ashape, CONTAINERS) & (np.minimum(aw, ah) >= 36)
        mode[(mode == INSIDE) & ~inside] = NEAR
        f = rng.uniform(0.3, 0.45, m)
        w, h = np.where(inside, aw * f, w), np.where(inside, ah * f * np.exp(rng.uniform(-0.2, 0.2, m)), h)
        h = np.where(inside, np.minimum(h, ah * 0.45), h)
        x = np.where(inside, ax + (aw - w) / 2 + rng.uniform(-0.08, 0.08, m) * aw, x)
        y = np.where(inside, ay + (ah - h) / 2 + rng.uniform(-0.08, 0.08, m) * ah, y)
        same = inside & (colour[obj] == colour[anchor])  # keep the contained object visible on its container
        colour[obj[same]] = (colour[obj[same]] + 1 + rng.integers(0, len(COLOURS) - 1, same.sum())) % len(COLOURS)

        # on: resting on the anchor's top edge (a triangle on a hexagon is often "wearing")
        on = mode == ON
        hat = on & (ashape == SHAPES.index("hexagon")) & (rng.uniform(0, 1, m) < 0.7)
        shape[obj[hat]] = SHAPES.index("triangle")
        shrink = np.where(on, np.minimum(1.0, aw * rng.uniform(0.35, 0.85, m) / w), 1.0)  # keeps the aspect ratio
        w, h = w * shrink, h * shrink
        x = np.where(on, ax + aw / 2 - w / 2 + rng.uniform(-0.25, 0.25, m) * aw, x)
        contact = rng.integers(0, CONTACT_TOLERANCE + 1, m)
        above_y = ay - h + contact  # bottom row of the object = top row of the anchor (+ overlap)
        below_y = ay + ah - contact
        y = np.where(on, np.where(above_y >= 0, above_y, below_y), y)

        # beside: touching the anchor's left or right edge
        beside = mode == BESIDE
        left = rng.uniform(0, 1, m) < 0.5
        left_x, right_x = ax - w + contact, ax + aw - contact
        left = np.where(left, left_x >= 0, right_x + w > width)
        x = np.where(beside, np.where(left, left_x, right_x), x)
        y = np.where(beside, ay + ah / 2 - h / 2 + rng.uniform(-0.25, 0.25, m) * ah, y)

        # overlap: partly covering the anchor (a smaller circle over a star is often "holding")
        overlap = mode == OVERLAP
        held = overlap & (ashape == SHAPES.index("star")) & (rng.uniform(0, 1, m) < 0.7)
        shape[obj[held]] = SHAPES.index("circle")
        f = rng.uniform(0.35, 0.6, m)
        w, h = np.where(held, aw * f, w), np.where(held, ah * f, h)
        sign_x, sign_y = rng.choice([-1, 1], m), rng.choice([-1, 1], m)
        x = np.where(overlap, ax + aw / 2 - w / 2 + sign_x * rng.uniform(0.3, 0.55, m) * (aw + w) / 2, x)
        y = np.where(overlap, ay + ah / 2 - h / 2 + sign_y * rng.uniform(0.0, 0.4, m) * (ah + h) / 2, y)

        # near: a small gap in one of four directions
        near = mode == NEAR
        gap = CONTACT_TOLERANCE + 2 + rng.uniform(0, 0.5, m) * np.minimum(size, np.sqrt(aw * ah))
        direction = rng.integers(0, 4, m)
        near_x = np.select([direction == 0, direction == 1], [ax - w - gap, ax + aw + gap],
                           ax + aw / 2 - w / 2 + rng.uniform(-0.3, 0.3, m) * aw)
        near_y = np.select([direction == 2, direction == 3], [ay - h - gap, ay + ah + gap],
                           ay + ah / 2 - h / 2 + rng.uniform(-0.3, 0.3, m) * ah)
        x, y = np.where(near, near_x, x), np.where(near, near_y, y)

        w, h = np.clip(w, 8, width - 1), np.clip(h, 8, height - 1)
        box[obj] = np.stack([np.clip(x, 0, width - w), np.clip(y, 0, height - h), w, h], axis=1)
        placement[obj] = mode
        anchors[obj] = anchor

    x1, y1 = np.round(box[:, 0]), np.round(box[:, 1])
    boxes = np.stack([x1, y1, x1 + np.round(box[:, 2]) - 1, y1 + np.round(box[:, 3]) - 1], axis=1).astype(np.int64)
    boxes[:, 2] = np.minimum(boxes[:, 2], widths[image] - 1)
    boxes[:, 3] = np.minimum(boxes[:, 3], heights[image] - 1)
    style = rng.choice(len(STYLES), size=total, p=[0.7, 0.15, 0.15])
    depth = _containment_depth(boxes, counts)
    slot = np.arange(total) - starts[image]
    draw_order = np.lexsort((slot, depth, image))  # containers before their contents, else placement order
    rank = np.empty(total, dtype=np.int64)
    rank[draw_order] = np.arange(total) - starts[image[draw_order]]
    return {"boxes": boxes, "shape": shape, "colour": colour, "style": style, "draw_order": draw_order,
            "z": rank, "placement": placement, "anchor": anchors, "image": image, "starts": starts}


def _containment_depth(boxes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per box: how many other boxes of its image contain it (images of equal size are processed together)."""
    depth = np.zeros(len(boxes), dtype=np.int64)
    starts = np.cumsum(counts) - counts
    for n in np.unique(counts):
        n = int(n)
        if n < 2:
            continue
        rows = starts[counts == n][:, None] + np.arange(n)
        b = boxes[rows]
        inner, outer = b[:, :, None], b[:, None, :]
        contained = ((inner[..., 0] >= outer[..., 0]) & (inner[..., 1] >= outer[..., 1])
                     & (inner[..., 2] <= outer[..., 2]) & (inner[..., 3] <= outer[..., 3]))
        contained &= ~np.eye(n, dtype=bool)
        depth[rows] = contained.sum(axis=2)
    return depth


# ------------------------------------------------------------------------------------------------------ predicates
def valid_predicates(sub_box: np.ndarray, obj_box: np.ndarray, sub_cls: np.ndarray, obj_cls: np.ndarray,
                     sub_z: np.ndarray, obj_z: np.ndarray) -> np.ndarray:
    """(M, len(PREDICATES)) bool: which predicates hold for each (subject, object) pair.

    Boxes are inclusive integer xyxy; ``*_z`` is the drawing rank (higher = drawn later, in front).
    """
    t = CONTACT_TOLERANCE
    s, o = sub_box.astype(float), obj_box.astype(float)
    sw, sh = s[:, 2] - s[:, 0] + 1, s[:, 3] - s[:, 1] + 1
    ow, oh = o[:, 2] - o[:, 0] + 1, o[:, 3] - o[:, 1] + 1
    s_area, o_area = sw * sh, ow * oh
    overlap_x = np.minimum(s[:, 2], o[:, 2]) - np.maximum(s[:, 0], o[:, 0]) + 1  # < 0: gap width
    overlap_y = np.minimum(s[:, 3], o[:, 3]) - np.maximum(s[:, 1], o[:, 1]) + 1
    inter = np.clip(overlap_x, 0, None) * np.clip(overlap_y, 0, None)
    s_in_o = (s[:, 0] >= o[:, 0]) & (s[:, 1] >= o[:, 1]) & (s[:, 2] <= o[:, 2]) & (s[:, 3] <= o[:, 3])
    o_in_s = (o[:, 0] >= s[:, 0]) & (o[:, 1] >= s[:, 1]) & (o[:, 2] <= s[:, 2]) & (o[:, 3] <= s[:, 3])
    nested = s_in_o | o_in_s
    ref = (sw + sh + ow + oh) / 4
    distance = np.maximum(np.maximum(-overlap_x, -overlap_y), 0)

    contact_y = (np.abs(overlap_y) <= t) & (overlap_x > 0.25 * np.minimum(sw, ow))
    contact_x = (np.abs(overlap_x) <= t) & (overlap_y > 0.25 * np.minimum(sh, oh))
    touching = ~nested & (contact_x | contact_y)
    s_on_o = contact_y & ~nested & (np.abs(s[:, 3] - o[:, 1]) <= t)
    o_on_s = contact_y & ~nested & (np.abs(o[:, 3] - s[:, 1]) <= t)
    above = (s[:, 3] <= o[:, 1] + t) & (overlap_x > 0) & ~nested
    below = (o[:, 3] <= s[:, 1] + t) & (overlap_x > 0) & ~nested
    left = (s[:, 2] <= o[:, 0] + t) & (overlap_y > 0) & ~nested
    right = (o[:, 2] <= s[:, 0] + t) & (overlap_y > 0) & ~nested
    occluding = ~nested & ~touching & (inter >= 0.08 * np.minimum(s_area, o_area))
    inside = s_in_o & (sub_z > obj_z)
    contains = o_in_s & (obj_z > sub_z)
    sub_shape, obj_shape = CLASS_SHAPE[sub_cls], CLASS_SHAPE[obj_cls]
    holding = ((sub_shape == SHAPES.index("star")) & (obj_shape == SHAPES.index("circle")) & (o_area < s_area)
               & ((occluding & (obj_z > sub_z)) | touching))
    wearing = (sub_shape == SHAPES.index("hexagon")) & (obj_shape == SHAPES.index("triangle")) & o_on_s

    valid = np.zeros((len(s), len(PREDICATES)), dtype=bool)
    columns = {
        "above": above, "below": below, "left of": left, "right of": right,
        "near": (distance <= 0.6 * ref) & ~(s_in_o & ~inside) & ~(o_in_s & ~contains),
        "next to": (left | right) & (distance <= 0.3 * ref) & (np.abs(overlap_y) >= 0.5 * np.minimum(sh, oh)),
        "far from": distance >= 2.0 * ref,
        "touching": touching, "on": s_on_o, "on top of": s_on_o & (s_area < o_area), "under": o_on_s,
        "in front of": occluding & (sub_z > obj_z), "behind": occluding & (sub_z < obj_z),
        "inside": inside, "contains": contains, "holding": holding, "wearing": wearing,
        "has": contains | holding | wearing,
        "bigger than": s_area >= 2.5 * o_area, "smaller than": o_area >= 2.5 * s_area,
        "same color as": CLASS_COLOUR[sub_cls] == CLASS_COLOUR[obj_cls], "same shape as": sub_shape == obj_shape,
    }
    for name, column in columns.items():
        valid[:, P[name]] = column
    return valid


def _weighted_choice(rng: np.random.Generator, valid: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One column per row, with probability proportional to ``weights`` among the row's valid columns."""
    cumulative = np.cumsum(valid * weights[None, :], axis=1)
    draw = rng.uniform(0, 1, len(valid)) * cumulative[:, -1]
    return np.minimum((cumulative <= draw[:, None]).sum(axis=1), valid.shape[1] - 1)


def annotate_relations(rng: np.random.Generator, layout: Dict[str, np.ndarray], labels: np.ndarray,
                       counts: np.ndarray, profile: SceneProfile, weights: Optional[Dict[str, float]] = None) -> tuple:
    """Pick the pairs an annotator would describe and one predicate each. Returns (rel_counts, relations) with
    image-local (subject, object, predicate id) rows grouped by image.

    Salient pairs (each object placed relative to an anchor, with that anchor) come first, then random pairs. A
    salient pair is said in the direction with the more natural words ("A on B" rather than "B under A", "A has B"
    rather than "B inside A"): the direction is drawn with probability proportional to the squared weight of its
    valid predicates.
    """
    weights = np.array([(weights or PREDICATE_WEIGHTS)[name] for name in PREDICATES])
    starts, boxes, z, image = layout["starts"], layout["boxes"], layout["z"], layout["image"]
    num_images = len(counts)

    def validity(pairs):
        s, o = pairs[:, 0], pairs[:, 1]
        return valid_predicates(boxes[s], boxes[o], labels[s], labels[o], z[s], z[o])

    placed = np.flatnonzero(layout["placement"] != FREE)
    forward = np.stack([placed, layout["anchor"][placed]], axis=1)
    valid_forward, valid_backward = validity(forward), validity(forward[:, ::-1])
    mass_forward, mass_backward = (valid_forward @ weights) ** 2, (valid_backward @ weights) ** 2
    keep_forward = rng.uniform(0, 1, len(placed)) * (mass_forward + mass_backward) < mass_forward
    salient = np.where(keep_forward[:, None], forward, forward[:, ::-1])
    n = counts[image]  # one random ordered pair per object
    first_local = (rng.uniform(0, 1, len(n)) * n).astype(int)
    second_local = (first_local + 1 + (rng.uniform(0, 1, len(n)) * (n - 1)).astype(int)) % n
    random_pairs = np.stack([first_local, second_local], axis=1) + starts[image][:, None]
    pairs = np.concatenate([salient, random_pairs])
    valid = np.concatenate([np.where(keep_forward[:, None], valid_forward, valid_backward), validity(random_pairs)])
    priority = np.concatenate([1 + rng.uniform(0, 1, len(salient)), rng.uniform(0, 1, len(random_pairs))])
    # the same pair twice (either direction) is one candidate; salient rows come first so they win
    low, high = pairs.min(axis=1), pairs.max(axis=1)
    _, unique_rows = np.unique(low * len(boxes) + high, return_index=True)
    usable = unique_rows[valid[unique_rows].any(axis=1)]
    pairs, priority, valid = pairs[usable], priority[usable], valid[usable]
    pair_image = image[pairs[:, 0]]

    wanted = rng.poisson(profile.rels_per_object * counts)
    wanted = np.where(rng.uniform(0, 1, num_images) < profile.empty_fraction, 0, np.maximum(wanted, 1))
    order = np.lexsort((-priority, pair_image))
    pair_starts = np.searchsorted(pair_image[order], np.arange(num_images))
    rank = np.arange(len(order)) - pair_starts[pair_image[order]]
    chosen = order[rank < wanted[pair_image[order]]]

    valid = valid[chosen]
    predicate = _weighted_choice(rng, valid, weights)
    rows = [np.concatenate([pairs[chosen], predicate[:, None]], axis=1)]
    # a few pairs get a second, different predicate (what SGB's filter_duplicate_rels is for)
    second = (rng.uniform(0, 1, len(chosen)) < DUPLICATE_RATE) & (valid.sum(axis=1) >= 2)
    if second.any():
        others = valid[second].copy()
        others[np.arange(len(others)), predicate[second]] = False
        rows.append(np.concatenate([pairs[chosen][second], _weighted_choice(rng, others, weights)[:, None]], axis=1))
    relations = np.concatenate(rows)
    relations = relations[np.argsort(image[relations[:, 0]], kind="stable")]
    rel_image = image[relations[:, 0]]
    local = relations[:, :2] - starts[rel_image][:, None]
    rel_counts = np.bincount(rel_image, minlength=num_images)
    return rel_counts, np.concatenate([local, relations[:, 2:] + 1], axis=1)


# ------------------------------------------------------------------------------------------------------ dataset
def sample_scenes(num_train: int, num_test: int, seed: int = 0,
                  profile: SceneProfile = IMAGE_PROFILE) -> SyntheticScenes:
    """All annotations of a synthetic dataset (train images first, then test: VG's positional split)."""
    rng = np.random.default_rng(seed)
    n = num_train + num_test
    if num_train < 1 or num_test < 0:
        raise ConfigError(f"synthetic VG: need num_train >= 1 and num_test >= 0 (--num-train / --num-test), got "
                          f"{num_train} and {num_test}")
    widths = rng.integers(profile.side_range[0], profile.side_range[1] + 1, size=n)
    heights = rng.integers(profile.side_range[0], profile.side_range[1] + 1, size=n)
    counts = _object_counts(rng, n, profile)
    layout = sample_layout(rng, widths, heights, counts, profile)
    labels = CLASS_ID[layout["colour"], layout["shape"]]
    rel_counts, relations = annotate_relations(rng, layout, labels, counts, profile, profile.predicate_weights)
    ann = VGAnnotations(
        widths=widths, heights=heights,
        split=np.where(np.arange(n) < num_train, SPLIT_TRAIN, SPLIT_TEST).astype(np.int32),
        box_counts=counts, boxes=layout["boxes"].astype(float), labels=labels, rel_counts=rel_counts,
        relations=relations, attributes=_attributes(layout, widths, heights), image_ids=default_image_ids(n))
    ann.extra_image_data = [{"url": f"{IMAGE_DIR}/{i}.jpg"} for i in ann.image_ids.tolist()]
    return SyntheticScenes(ann, layout["shape"], layout["colour"], layout["style"], layout["draw_order"])


def _attributes(layout: Dict[str, np.ndarray], widths: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Visible properties as VG-style attribute ids (0-padded): fill pattern, size relative to the image, shape."""
    boxes, image, style = layout["boxes"], layout["image"], layout["style"]
    w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    relative_area = w * h / (widths[image] * heights[image])
    flags = np.stack([style == STYLES.index("dotted"), relative_area > 0.08, relative_area < 0.015,
                      style == STYLES.index("striped"), h > 1.3 * w, w > 1.3 * h], axis=1)
    ids = np.where(flags, np.arange(1, len(ATTRIBUTES) + 1), len(ATTRIBUTES) + 1)
    ids = np.sort(ids, axis=1) % (len(ATTRIBUTES) + 1)  # the box's attribute ids first, then 0 padding
    out = np.zeros((len(boxes), 10), dtype=np.int64)
    out[:, :ids.shape[1]] = ids
    return out


def generate_synthetic_vg(output_dir: str, num_train: int = 3000, num_test: int = 1000, seed: int = 0,
                          annotations_only: bool = False, profile: Optional[str] = None,
                          workers: int = 2) -> Dict[str, object]:
    """Write a synthetic dataset into ``output_dir`` (h5, dictionaries, image_data.json, zeroshot triplets and,
    unless ``annotations_only``, ``VG_100K/*.jpg``). ``profile``: "images" (default when drawing), "vg" (default
    for annotations only) or "vglike". Returns a summary (see :func:`summarize`)."""
    begin = time.perf_counter()
    chosen = PROFILES[profile or ("vg" if annotations_only else "images")]
    scenes = sample_scenes(num_train, num_test, seed, chosen)
    ann = scenes.annotations
    paths = write_vg_annotations(output_dir, ann, OBJECT_CLASSES, PREDICATES, ATTRIBUTES)
    zeroshot = zero_shot_triplets(ann)
    paths["zeroshot_file"] = os.path.join(output_dir, ZEROSHOT_FILE)
    torch.save(zeroshot, paths["zeroshot_file"])
    annotation_seconds = time.perf_counter() - begin
    paths["img_dir"] = os.path.join(output_dir, IMAGE_DIR)
    if not annotations_only:
        render_images(scenes, paths["img_dir"], seed, workers)
    summary = summarize(ann)
    summary.update(paths=paths, profile=chosen.name, zero_shot_triplets=len(zeroshot),
                   annotation_seconds=annotation_seconds, seconds=time.perf_counter() - begin,
                   images_written=0 if annotations_only else ann.num_images)
    return summary


def summarize(ann: VGAnnotations) -> Dict[str, object]:
    """Split sizes, per-image averages and the train predicate distribution of written annotations."""
    rel_image = np.repeat(np.arange(ann.num_images), ann.rel_counts)
    train_rel = ann.split[rel_image] == SPLIT_TRAIN
    counts = np.bincount(ann.relations[train_rel, 2], minlength=len(PREDICATES) + 1)[1:]
    total = max(int(counts.sum()), 1)
    order = np.argsort(-counts, kind="stable")
    return {
        "images": {"train": int((ann.split == SPLIT_TRAIN).sum()), "test": int((ann.split == SPLIT_TEST).sum())},
        "boxes_per_image": float(ann.box_counts.mean()), "relations_per_image": float(ann.rel_counts.mean()),
        "images_without_relations": int((ann.rel_counts == 0).sum()),
        "num_classes": len(OBJECT_CLASSES), "num_predicates": len(PREDICATES), "num_attributes": len(ATTRIBUTES),
        "predicate_counts": {PREDICATES[i]: int(counts[i]) for i in order},
        "top3_share": float(counts[order[:3]].sum() / total),
        "predicates_under_2pct": int((counts / total < 0.02).sum()),
    }


def format_summary(summary: Dict[str, object]) -> str:
    lines = [f"synthetic VG ({summary['profile']} profile): {summary['images']['train']} train + "
             f"{summary['images']['test']} test images, {summary['boxes_per_image']:.1f} boxes and "
             f"{summary['relations_per_image']:.1f} relations per image "
             f"({summary['images_without_relations']} images without relations)",
             f"{summary['num_classes']} object classes, {summary['num_predicates']} predicates, "
             f"{summary['num_attributes']} attributes; {summary['zero_shot_triplets']} zero-shot test triplets",
             "", "train predicate distribution:"]
    counts = summary["predicate_counts"]
    total = max(sum(counts.values()), 1)
    widest = max(max(counts.values()), 1)
    for name, count in counts.items():
        lines.append(f"  {name:<14} {count:>9} {100 * count / total:6.2f}%  {'#' * int(round(40 * count / widest))}")
    lines.append(f"\n  top-3 predicates hold {100 * summary['top3_share']:.1f}% of the relations (VG150: ~60%); "
                 f"{summary['predicates_under_2pct']} of {summary['num_predicates']} hold < 2% each")
    written = f", {summary['images_written']} JPEG images" if summary["images_written"] else " (annotations only)"
    lines.append(f"\nwrote {os.path.dirname(summary['paths']['roidb_file'])}{written} in {summary['seconds']:.1f} s "
                 f"(annotations {summary['annotation_seconds']:.1f} s)")
    return "\n".join(lines)
