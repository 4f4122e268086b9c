"""VG150 (and any dataset in its release format) with Scene-Graph-Benchmark.pytorch's split and filter semantics.

PROTOCOL.md 1.2-1.5 is the reference. The index is built with numpy over whole h5 arrays (no Python loop over
images), so a VG-scale file opens in about a second. Two SGB quirks are fixed on purpose (DATASET.md says so):

* ``flip_img`` really flips the boxes (SGB passed it into ``evaluation`` by mistake, flipping only the image);
* val/test items carry the same boxes as the evaluation ground truth: boxes are clipped, never removed, so the
  model's GT boxes and the evaluator's GT boxes always line up (SGB dropped degenerate boxes from the model input
  only). For train, degenerate boxes are dropped together with their relations, and their number is logged.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from sgg.config.sgg_config import ConfigError
from sgg.structures import FLIP_LEFT_RIGHT, BoxList
from sgg.utils.errors import DataError

from ..statistics import compute_statistics
from ..vg_format import (BOX_SCALE, SPLIT_TEST, SPLIT_TRAIN, align_image_data, check_ids, decode_boxes,
                         load_image_data, load_vg_dicts, ranges_to_rows, read_vg_h5)

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class VGDataset(Dataset):
    """Items are ``(image, target, index)``: a PIL RGB image (or what ``transforms`` makes of it) and a
    :class:`BoxList` with ``labels``, ``attributes``, ``relation`` (N x N) and ``relation_tuple`` (R x 3).

    Options as SGB's: ``filter_empty_rels`` drops images without relations; ``filter_non_overlap`` (train only)
    keeps relations whose boxes overlap (IoU > 0, +1 convention) and drops images left without any;
    ``filter_duplicate_rels`` (train only) keeps one random predicate per (subject, object) pair, redrawn at every
    load; ``num_im`` truncates the split's image list (-1 = all) before val is carved out; ``num_val_im`` is the
    size of val, the first images of the filtered h5 train split. ``check_images`` checks that the image files exist
    when the dataset opens (turn it off to index annotations without images).
    """

    def __init__(self, split: str, img_dir: str, roidb_file: str, dict_file: str, image_file: str, transforms=None,
                 filter_empty_rels: bool = True, num_im: int = -1, num_val_im: int = 5000,
                 filter_duplicate_rels: bool = True, filter_non_overlap: bool = True, flip_aug: bool = False,
                 check_images: bool = True):
        if split not in SPLITS:
            raise ValueError(f"VGDataset: split must be one of {SPLITS}, got {split!r}")
        self.split = split
        self.img_dir, self.roidb_file, self.dict_file, self.image_file = img_dir, roidb_file, dict_file, image_file
        self.transforms = transforms
        self.filter_empty_rels = filter_empty_rels
        self.filter_non_overlap = filter_non_overlap and split == "train"
        self.filter_duplicate_rels = filter_duplicate_rels and split == "train"
        self.flip_aug = flip_aug
        # Items carry evaluation GT (boxes clipped, never removed) so model inputs and evaluator GT align. True for
        # val/test; set it to True on a train split that is being evaluated (DATASETS.TO_TEST "train").
        self.evaluation_targets = split != "train"
        self.num_im, self.num_val_im = num_im, num_val_im
        self.check_images = check_images

        dicts = load_vg_dicts(dict_file)
        self.ind_to_classes = dicts["ind_to_classes"]
        self.ind_to_predicates = dicts["ind_to_predicates"]
        self.ind_to_attributes = dicts["ind_to_attributes"]
        self.categories = {i: name for i, name in enumerate(self.ind_to_classes)}

        data = read_vg_h5(roidb_file)
        classes, predicates = len(self.ind_to_classes) - 1, len(self.ind_to_predicates) - 1
        check_ids(data["labels"], 1, classes, "labels", roidb_file, f"the {classes} object classes of {dict_file}")
        check_ids(data["predicates"], 1, predicates, "predicates", roidb_file,
                  f"the {predicates} predicates of {dict_file}")
        check_ids(data["attributes"], 0, len(self.ind_to_attributes) - 1, "attributes", roidb_file,
                  f"the {len(self.ind_to_attributes) - 1} attributes of {dict_file}, 0 = none")
        self.num_h5_images = len(data["split"])
        self._load_graphs(data)

        entries = load_image_data(image_file)
        aligned = align_image_data(entries, self.num_h5_images, img_dir, check_images, image_file, roidb_file)
        kept = np.flatnonzero(self.split_mask)
        self.img_info: List[dict] = [aligned[i] for i in kept.tolist()]
        self.filenames: List[str] = [os.path.join(img_dir, info["file_name"]) for info in self.img_info]
        self._sizes = np.array([[info["width"], info["height"]] for info in self.img_info], dtype=np.int64)
        self._sizes = self._sizes.reshape(-1, 2)
        bad = np.flatnonzero(self._sizes.min(axis=1) <= 0) if len(self._sizes) else []
        if len(bad):
            raise DataError(f"{image_file}: image {self.filenames[bad[0]]} has size {self._sizes[bad[0]].tolist()}; "
                            "expected positive width and height")
        if split == "train":
            self._log_degenerate_boxes()

    # ------------------------------------------------------------------------------------------------ index
    def _load_graphs(self, data: Dict[str, np.ndarray]) -> None:
        """Vectorised equivalent of SGB's ``load_graphs``: split mask, per-image boxes (1024 scale, xyxy), labels,
        attributes and relations (sub, obj, pred) with image-local box indices."""
        first_box, last_box = data["img_to_first_box"], data["img_to_last_box"]
        first_rel, last_rel = data["img_to_first_rel"], data["img_to_last_rel"]
        flag = SPLIT_TEST if self.split == "test" else SPLIT_TRAIN
        mask = (data["split"] == flag) & (first_box >= 0)
        if self.filter_empty_rels:
            mask &= first_rel >= 0
        image_index = np.flatnonzero(mask)
        if self.num_im > -1:
            image_index = image_index[:self.num_im]
        if self.split in ("train", "val"):
            if self.split == "val" and self.num_val_im <= 0:
                raise ConfigError("VGDataset: the val split needs num_val_im (DATASETS.VAL_SIZE) > 0; val is the first "
                                  "num_val_im filtered train-split images")
            if self.num_val_im > 0:
                if self.num_val_im >= len(image_index):
                    raise ConfigError(f"VGDataset: num_val_im (DATASETS.VAL_SIZE) = {self.num_val_im} but only "
                                      f"{len(image_index)} train-split images of {self.roidb_file} survive filtering; "
                                      "val is carved out of them, so choose a smaller DATASETS.VAL_SIZE")
                image_index = (image_index[:self.num_val_im] if self.split == "val"
                               else image_index[self.num_val_im:])

        boxes = decode_boxes(data["boxes_1024"])
        box_counts = (last_box[image_index] - first_box[image_index] + 1).astype(np.int64)
        rel_counts = np.where(first_rel[image_index] >= 0, last_rel[image_index] - first_rel[image_index] + 1, 0)
        rel_rows = ranges_to_rows(first_rel[image_index], rel_counts)
        rel_local = np.repeat(np.arange(len(image_index)), rel_counts)
        pairs = data["relationships"][rel_rows].astype(np.int64)
        if self.filter_non_overlap:
            sub, obj = boxes[pairs[:, 0]], boxes[pairs[:, 1]]
            # IoU > 0 with maskrcnn's +1 widths <=> the +1 intersection is positive on both axes
            overlap_w = np.minimum(sub[:, 2], obj[:, 2]) - np.maximum(sub[:, 0], obj[:, 0]) + 1
            overlap_h = np.minimum(sub[:, 3], obj[:, 3]) - np.maximum(sub[:, 1], obj[:, 1]) + 1
            keep_rel = (overlap_w > 0) & (overlap_h > 0)
            kept_counts = np.bincount(rel_local[keep_rel], minlength=len(image_index))
            keep_image = kept_counts > 0
            rel_rows, pairs = rel_rows[keep_rel], pairs[keep_rel]  # kept rows belong to kept images only
            image_index, box_counts = image_index[keep_image], box_counts[keep_image]
            rel_counts = kept_counts[keep_image]
            rel_local = np.repeat(np.arange(len(image_index)), rel_counts)
        self.split_mask = np.zeros(len(data["split"]), dtype=bool)
        self.split_mask[image_index] = True
        self.image_index = image_index

        box_rows = ranges_to_rows(first_box[image_index], box_counts)
        local_pairs = pairs - first_box[image_index][rel_local][:, None]
        relations = np.concatenate([local_pairs, data["predicates"][rel_rows].astype(np.int64)[:, None]], axis=1)
        box_cuts, rel_cuts = np.cumsum(box_counts)[:-1], np.cumsum(rel_counts)[:-1]
        self.gt_boxes: List[np.ndarray] = _split(boxes[box_rows], box_cuts, len(image_index))
        self.gt_classes: List[np.ndarray] = _split(data["labels"][box_rows].astype(np.int64), box_cuts,
                                                   len(image_index))
        self.gt_attributes: List[np.ndarray] = _split(data["attributes"][box_rows].astype(np.int64), box_cuts,
                                                      len(image_index))
        self.relationships: List[np.ndarray] = _split(relations, rel_cuts, len(image_index))

    def _log_degenerate_boxes(self) -> None:
        """Count the train boxes that clipping to the image leaves without area (they are dropped at load time)."""
        counts = np.array([len(b) for b in self.gt_boxes], dtype=np.int64)
        if counts.sum() == 0:
            return
        sizes = np.repeat(self._sizes, counts, axis=0).astype(np.float64)
        boxes = np.concatenate(self.gt_boxes).astype(np.float64) / BOX_SCALE * sizes.max(axis=1, keepdims=True)
        x = np.clip(boxes[:, [0, 2]], 0, sizes[:, :1] - 1)
        y = np.clip(boxes[:, [1, 3]], 0, sizes[:, 1:] - 1)
        empty = (x[:, 1] <= x[:, 0]) | (y[:, 1] <= y[:, 0])
        if empty.any():
            images = len(np.unique(np.repeat(np.arange(len(counts)), counts)[empty]))
            logger.warning("%s (train): %d box(es) in %d image(s) have no area once clipped to the image; they are "
                           "dropped with their relations when those images are loaded", self.roidb_file,
                           int(empty.sum()), images)

    def keep_images(self, keep: np.ndarray) -> None:
        """Restrict the dataset to the images where the boolean mask ``keep`` (one entry per item) is True."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self),):
            raise ValueError(f"keep_images: mask of shape {keep.shape}, expected ({len(self)},)")
        index = np.flatnonzero(keep)
        for name in ("gt_boxes", "gt_classes", "gt_attributes", "relationships", "img_info", "filenames"):
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in index.tolist()])
        self._sizes = self._sizes[index]
        self.split_mask[self.image_index[~keep]] = False
        self.image_index = self.image_index[index]

    # ------------------------------------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self.filenames)

    def get_img_info(self, index: int) -> dict:
        info = self.img_info[index]
        return {"width": int(info["width"]), "height": int(info["height"]), "image_id": info["image_id"],
                "file_name": info["file_name"]}

    def __getitem__(self, index: int):
        path = self.filenames[index]
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image file of item {index} (image_id {self.img_info[index]['image_id']}) not "
                                    f"found: {path} (listed in {self.image_file})")
        image = self._read_image(index, path)
        info = self.img_info[index]
        if image.size != (int(info["width"]), int(info["height"])):
            logger.warning("%s is %dx%d but %s says %dx%d; boxes follow %s", path, image.size[0], image.size[1],
                           self.image_file, info["width"], info["height"], self.image_file)
        flip = self.flip_aug and not self.evaluation_targets and np.random.random() > 0.5
        target = self.get_groundtruth(index, evaluation=self.evaluation_targets, flip_img=flip)
        if flip:
            image = ImageOps.mirror(image)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target, index

    def _read_image(self, index: int, path: str) -> Image.Image:
        """The RGB image of item ``index``; a file PIL cannot decode (damaged, truncated, not an image) is a
        DataError naming it, never a silently half-grey picture (PIL refuses truncated data by default)."""
        try:
            with Image.open(path) as handle:
                return handle.convert("RGB")
        except (OSError, SyntaxError, ValueError) as err:  # UnidentifiedImageError and truncation are OSErrors
            raise DataError(f"image file of item {index} (image_id {self.img_info[index]['image_id']}) could not be "
                            f"decoded: {path} ({err}); listed in {self.image_file}") from None

    def get_groundtruth(self, index: int, evaluation: bool = False, flip_img: bool = False) -> BoxList:
        """GT of item ``index`` in original pixels. ``evaluation`` (and every val/test item): boxes are clipped but
        kept; otherwise boxes left without area are dropped together with their relations. ``flip_img`` flips the
        boxes left-right (x1' = W - x2 - 1), matching a flipped image."""
        info = self.img_info[index]
        width, height = int(info["width"]), int(info["height"])
        boxes = self.gt_boxes[index].astype(np.float64) / BOX_SCALE * max(width, height)
        target = BoxList(torch.from_numpy(boxes).float().reshape(-1, 4), (width, height), "xyxy")
        if flip_img:
            target = target.transpose(FLIP_LEFT_RIGHT)
        target.add_field("labels", torch.from_numpy(self.gt_classes[index].copy()))
        target.add_field("attributes", torch.from_numpy(self.gt_attributes[index].copy()))
        relations = self.relationships[index]
        if self.filter_duplicate_rels:
            relations = one_predicate_per_pair(relations)
        target.add_field("relation", torch.from_numpy(relation_matrix(relations, len(boxes))))
        target.add_field("relation_tuple", torch.from_numpy(np.array(relations, dtype=np.int64).reshape(-1, 3)))
        return target.clip_to_image(remove_empty=not (evaluation or self.evaluation_targets))

    def get_statistics(self):
        """Frequency statistics of this dataset (PROTOCOL.md 1.6): :func:`sgg.data.statistics.compute_statistics`."""
        return compute_statistics(self)

    def __repr__(self) -> str:
        return (f"VGDataset(split={self.split}, images={len(self)}, classes={len(self.ind_to_classes)}, "
                f"predicates={len(self.ind_to_predicates)}, roidb={self.roidb_file})")


def _split(values: np.ndarray, cuts: np.ndarray, count: int) -> List[np.ndarray]:
    """Per-image views of ``values`` cut at ``cuts`` (faster than ``np.split`` for many small pieces)."""
    if count == 0:
        return []
    bounds = [0] + cuts.tolist() + [len(values)]
    return [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def one_predicate_per_pair(relations: np.ndarray) -> np.ndarray:
    """One uniformly random row per (subject, object) pair (SGB's ``filter_duplicate_rels``), pairs in order of first
    appearance. Uses numpy's global random state, as SGB, so loader workers seeded by torch differ."""
    if len(relations) < 2:
        return relations
    keys = relations[:, 0] * (int(relations[:, :2].max()) + 1) + relations[:, 1]
    _, first_seen, group = np.unique(keys, return_index=True, return_inverse=True)
    if len(first_seen) == len(relations):
        return relations
    order = np.lexsort((np.random.random(len(relations)), group))
    starts = np.concatenate([[0], np.flatnonzero(np.diff(group[order])) + 1])
    chosen = order[starts]  # per group (in key order), the row with the smallest random draw
    return relations[chosen[np.argsort(first_seen, kind="stable")]]


def relation_matrix(relations: np.ndarray, num_boxes: int) -> np.ndarray:
    """N x N predicate matrix. As SGB: when a pair appears more than once, each later row replaces the cell with
    probability 0.5."""
    matrix = np.zeros((num_boxes, num_boxes), dtype=np.int64)
    if len(relations) == 0:
        return matrix
    sub, obj, pred = relations[:, 0], relations[:, 1], relations[:, 2]
    keys = sub * num_boxes + obj
    _, first_seen = np.unique(keys, return_index=True)
    applied = np.ones(len(relations), dtype=bool)
    if len(first_seen) < len(relations):
        applied = np.random.random(len(relations)) < 0.5
        applied[first_seen] = True
    rows = np.flatnonzero(applied)
    # the last applied row of each cell wins, as in a sequential fill
    _, last_in_reversed = np.unique(keys[rows][::-1], return_index=True)
    rows = rows[len(rows) - 1 - last_in_reversed]
    matrix[sub[rows], obj[rows]] = pred[rows]
    return matrix
