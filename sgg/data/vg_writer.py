"""Write a scene graph dataset in the VG150 release format, so any data can go through the VG150 pipeline.

Two entry points (DATASET.md shows both):

* :func:`write_vg_dataset` takes one dict per image (pixel boxes, label ids, relations) and is what users call;
* :func:`write_vg_annotations` takes the same data as flat arrays (:class:`VGAnnotations`); the synthetic generator
  uses it to write VG-scale files without a Python loop over images.

Only annotation files are written here (h5, dictionaries, ``image_data.json``); images are the caller's business
(:func:`convert_simple_dataset` links or copies them for the custom-data converter).
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from sgg.utils.errors import DataError
from .vg_format import (BOX_SCALE, CORRUPTED_IMAGE_IDS, DICT_FILE, H5_FILE, IMAGE_DIR, IMAGE_FILE, MAX_ATTRIBUTES,
                        SMALL_BOX_SCALE, SPLIT_TEST, SPLIT_TRAIN, check_ids, encode_boxes, write_json)

logger = logging.getLogger(__name__)

SPLIT_NAMES = {"train": SPLIT_TRAIN, "test": SPLIT_TEST, SPLIT_TRAIN: SPLIT_TRAIN, SPLIT_TEST: SPLIT_TEST}


@dataclass
class VGAnnotations:
    """A whole dataset as flat arrays. Images are in h5 order; boxes and relations are grouped by image.

    ``boxes`` are pixel xyxy (x2, y2 the last covered pixel, as in VG); ``relations`` rows are
    (subject, object, predicate) with subject/object indexing the boxes of their own image (0-based).
    """

    widths: np.ndarray  # (I,)
    heights: np.ndarray  # (I,)
    split: np.ndarray  # (I,) 0 = train, 2 = test
    box_counts: np.ndarray  # (I,)
    boxes: np.ndarray  # (B, 4) float
    labels: np.ndarray  # (B,) 1..C
    rel_counts: np.ndarray  # (I,)
    relations: np.ndarray  # (R, 3)
    attributes: Optional[np.ndarray] = None  # (B, <= 10) 0-padded attribute ids
    image_ids: Optional[np.ndarray] = None  # (I,) unique, none of VG's corrupted ids; default 1, 2, ... skipping them
    file_names: Optional[List[Optional[str]]] = None  # per image; default "{image_id}.jpg"
    extra_image_data: Optional[List[dict]] = field(default=None, repr=False)  # url, coco_id, flickr_id ...

    @property
    def num_images(self) -> int:
        return len(self.widths)


def default_image_ids(num_images: int, start: int = 1) -> np.ndarray:
    """``start, start + 1, ...`` skipping VG's four corrupted ids, which the loader always drops."""
    candidates = np.arange(start, start + num_images + len(CORRUPTED_IMAGE_IDS), dtype=np.int64)
    return candidates[~np.isin(candidates, CORRUPTED_IMAGE_IDS)][:num_images]


def _as_arrays(ann: VGAnnotations) -> VGAnnotations:
    """A copy with numpy arrays of the expected dtypes (lists are accepted as input)."""
    as_int = {name: np.asarray(getattr(ann, name), dtype=np.int64).reshape(-1)
              for name in ("widths", "heights", "split", "box_counts", "labels", "rel_counts")}
    return VGAnnotations(
        **as_int, boxes=np.asarray(ann.boxes, dtype=np.float64).reshape(-1, 4),
        relations=np.asarray(ann.relations, dtype=np.int64).reshape(-1, 3),
        attributes=None if ann.attributes is None else np.asarray(ann.attributes, dtype=np.int64),
        image_ids=None if ann.image_ids is None else np.asarray(ann.image_ids, dtype=np.int64).reshape(-1),
        file_names=None if ann.file_names is None else list(ann.file_names),
        extra_image_data=ann.extra_image_data)


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


def _validate(ann: VGAnnotations, num_classes: int, num_predicates: int, num_attributes: int) -> None:
    where = "write_vg_annotations"
    n = ann.num_images
    for name in ("heights", "split", "box_counts", "rel_counts"):
        if len(getattr(ann, name)) != n:
            raise DataError(f"{where}: '{name}' has {len(getattr(ann, name))} entries for {n} images")
    if ann.image_ids is not None and len(ann.image_ids) != n:
        raise DataError(f"{where}: 'image_ids' has {len(ann.image_ids)} entries for {n} images")
    bad = np.flatnonzero((ann.widths <= 0) | (ann.heights <= 0))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{where}: image {i} has size {ann.widths[i]}x{ann.heights[i]}; expected positive sizes")
    bad = np.flatnonzero(~np.isin(ann.split, (SPLIT_TRAIN, SPLIT_TEST)))
    if bad.size:
        raise DataError(f"{where}: image {int(bad[0])} has split {ann.split[bad[0]]}; expected 0 (train) or 2 "
                        "(test). Validation images come out of train (DATASETS.VAL_SIZE)")
    num_boxes, num_rels = int(ann.box_counts.sum()), int(ann.rel_counts.sum())
    if ann.boxes.shape != (num_boxes, 4) or len(ann.labels) != num_boxes:
        raise DataError(f"{where}: box_counts sum to {num_boxes} but boxes have shape {ann.boxes.shape} and "
                        f"labels {len(ann.labels)} entries")
    if ann.relations.shape != (num_rels, 3):
        raise DataError(f"{where}: rel_counts sum to {num_rels} but relations have shape {ann.relations.shape}, "
                        "expected (R, 3) rows of (subject, object, predicate)")
    box_image = np.repeat(np.arange(n), ann.box_counts)
    size = ann.boxes[:, 2:] - ann.boxes[:, :2]
    bad = np.flatnonzero((size <= 0).any(axis=1))
    if bad.size:
        b = int(bad[0])
        raise DataError(f"{where}: box {b} of the dataset (image {box_image[b]}) is {ann.boxes[b].tolist()}: "
                        f"non-positive size, expected x2 > x1 and y2 > y1 ({bad.size} box(es))")
    check_ids(ann.labels, 1, num_classes, "labels", where, f"{num_classes} object classes")
    check_ids(ann.relations[:, 2], 1, num_predicates, "predicates", where, f"{num_predicates} predicates")
    if ann.attributes is not None:
        if ann.attributes.ndim != 2 or len(ann.attributes) != num_boxes or ann.attributes.shape[1] > MAX_ATTRIBUTES:
            raise DataError(f"{where}: attributes have shape {ann.attributes.shape}, expected ({num_boxes}, <= "
                            f"{MAX_ATTRIBUTES})")
        check_ids(ann.attributes, 0, num_attributes, "attributes", where, f"{num_attributes} attributes, 0 = none")
    rel_image = np.repeat(np.arange(n), ann.rel_counts)
    limit = ann.box_counts[rel_image]
    pairs = ann.relations[:, :2]
    bad = np.flatnonzero(((pairs < 0) | (pairs >= limit[:, None])).any(axis=1))
    if bad.size:
        r = int(bad[0])
        raise DataError(f"{where}: relation {r} (image {rel_image[r]}) is {ann.relations[r].tolist()}; subject "
                        f"and object must index the image's {limit[r]} boxes")
    bad = np.flatnonzero(pairs[:, 0] == pairs[:, 1])
    if bad.size:
        r = int(bad[0])
        raise DataError(f"{where}: relation {r} (image {rel_image[r]}) relates box {pairs[r, 0]} to itself")


def write_vg_annotations(output_dir: str, ann: VGAnnotations, object_classes: Sequence[str],
                         predicate_classes: Sequence[str], attribute_classes: Sequence[str] = (),
                         file_prefix: str = "") -> Dict[str, str]:
    """Write ``VG-SGG-with-attri.h5``, ``VG-SGG-dicts-with-attri.json`` and ``image_data.json`` into
    ``output_dir``. Class lists are given without background, in id order (id = position + 1).

    Boxes outside the image are clipped (the count is logged). Returns the paths written.
    """
    import h5py  # lazy: only the converters write h5 files, and h5py adds ~50 ms to every import of sgg.data

    object_classes, predicate_classes = list(object_classes), list(predicate_classes)
    attribute_classes = list(attribute_classes)
    for what, names in (("object", object_classes), ("predicate", predicate_classes),
                        ("attribute", attribute_classes)):
        if len(set(names)) != len(names):
            raise DataError(f"write_vg_annotations: duplicate {what} class names")
    ann = _as_arrays(ann)
    _validate(ann, len(object_classes), len(predicate_classes), len(attribute_classes))
    n = ann.num_images
    image_ids = default_image_ids(n) if ann.image_ids is None else np.asarray(ann.image_ids, dtype=np.int64)
    if len(np.unique(image_ids)) != n:
        raise DataError("write_vg_annotations: image ids must be unique")
    names = ann.file_names or [None] * n
    corrupted = {f"{i}.jpg" for i in CORRUPTED_IMAGE_IDS}
    for i, (image_id, name) in enumerate(zip(image_ids.tolist(), names)):
        if (name or f"{image_id}.jpg") in corrupted:
            raise DataError(f"write_vg_annotations: image {i} has id {image_id} and file {name or f'{image_id}.jpg'}"
                            f", one of VG's corrupted images ({', '.join(sorted(corrupted))}) that every VG loader "
                            "skips; choose another id or file name")

    box_image = np.repeat(np.arange(n), ann.box_counts)
    widths = ann.widths[box_image].astype(np.float64)
    heights = ann.heights[box_image].astype(np.float64)
    limit = np.stack([widths, heights, widths, heights], axis=1)
    clipped = np.clip(ann.boxes, 0, limit)
    changed = int((clipped != ann.boxes).any(axis=1).sum())
    if changed:
        logger.warning("write_vg_annotations: %d box(es) reach outside their image and were clipped", changed)

    os.makedirs(output_dir, exist_ok=True)
    paths = {"roidb_file": os.path.join(output_dir, file_prefix + H5_FILE),
             "dict_file": os.path.join(output_dir, file_prefix + DICT_FILE),
             "image_file": os.path.join(output_dir, file_prefix + IMAGE_FILE)}
    first_box = np.where(ann.box_counts > 0, _offsets(ann.box_counts), -1).astype(np.int32)
    last_box = np.where(ann.box_counts > 0, first_box + ann.box_counts - 1, -1).astype(np.int32)
    first_rel = np.where(ann.rel_counts > 0, _offsets(ann.rel_counts), -1).astype(np.int32)
    last_rel = np.where(ann.rel_counts > 0, first_rel + ann.rel_counts - 1, -1).astype(np.int32)
    rel_image = np.repeat(np.arange(n), ann.rel_counts)
    global_pairs = ann.relations[:, :2] + first_box[rel_image][:, None]
    attributes = np.zeros((len(ann.labels), MAX_ATTRIBUTES), dtype=np.int64)
    if ann.attributes is not None:
        attributes[:, :ann.attributes.shape[1]] = ann.attributes
    arrays = {
        "split": ann.split.astype(np.int32),
        "img_to_first_box": first_box, "img_to_last_box": last_box,
        "img_to_first_rel": first_rel, "img_to_last_rel": last_rel,
        "labels": ann.labels.astype(np.int64).reshape(-1, 1),
        "boxes_1024": encode_boxes(clipped, widths, heights, BOX_SCALE),
        "boxes_512": encode_boxes(clipped, widths, heights, SMALL_BOX_SCALE),
        "active_object_mask": np.ones((len(ann.labels), 1), dtype=bool),
        "attributes": attributes,
        "relationships": global_pairs.astype(np.int32),
        "predicates": ann.relations[:, 2].astype(np.int64).reshape(-1, 1),
    }
    tmp = paths["roidb_file"] + ".tmp"
    with h5py.File(tmp, "w") as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=value)
    os.replace(tmp, paths["roidb_file"])

    write_json(paths["dict_file"], build_dicts(object_classes, predicate_classes, attribute_classes, ann.labels,
                                               ann.relations[:, 2], attributes))
    write_json(paths["image_file"], _image_data(ann, image_ids))
    return paths


def build_dicts(object_classes: Sequence[str], predicate_classes: Sequence[str], attribute_classes: Sequence[str],
                labels: np.ndarray, predicates: np.ndarray, attributes: np.ndarray) -> dict:
    """The dictionaries json, with every key of the real file; counts are over the whole written dataset."""
    def counted(names, ids):
        counts = np.bincount(np.asarray(ids, dtype=np.int64).reshape(-1), minlength=len(names) + 1)
        return {name: int(counts[i + 1]) for i, name in enumerate(names)}

    def maps(names):
        return {name: i + 1 for i, name in enumerate(names)}, {str(i + 1): name for i, name in enumerate(names)}

    label_to_idx, idx_to_label = maps(object_classes)
    predicate_to_idx, idx_to_predicate = maps(predicate_classes)
    attribute_to_idx, idx_to_attribute = maps(attribute_classes)
    return {"object_count": counted(object_classes, labels), "idx_to_label": idx_to_label,
            "predicate_to_idx": predicate_to_idx, "predicate_count": counted(predicate_classes, predicates),
            "idx_to_predicate": idx_to_predicate, "label_to_idx": label_to_idx,
            "attribute_count": counted(attribute_classes, attributes), "idx_to_attribute": idx_to_attribute,
            "attribute_to_idx": attribute_to_idx}


def _image_data(ann: VGAnnotations, image_ids: np.ndarray) -> List[dict]:
    entries = []
    extras = ann.extra_image_data or [{}] * ann.num_images
    names = ann.file_names or [None] * ann.num_images
    for width, height, image_id, extra, name in zip(ann.widths.tolist(), ann.heights.tolist(), image_ids.tolist(),
                                                    extras, names):
        entry = {"width": int(width), "height": int(height), "url": extra.get("url", f"{image_id}.jpg"),
                 "image_id": int(image_id), "coco_id": extra.get("coco_id"), "flickr_id": extra.get("flickr_id")}
        if name and name != f"{image_id}.jpg":
            entry["file_name"] = name
        entries.append(entry)
    return entries


def write_vg_dataset(output_dir: str, images: Sequence[Mapping], object_classes: Sequence[str],
                     predicate_classes: Sequence[str], attribute_classes: Sequence[str] = ()) -> Dict[str, str]:
    """Write a dataset given one dict per image, in the order the images should have in the h5:

    ``{"width", "height", "split": "train" | "test", "boxes": (N, 4) pixel xyxy, "labels": (N,) ids 1..C,
    "relations": (R, 3) rows (subject index, object index, predicate id 1..P), optional "attributes": (N, <= 10) ids
    0-padded, optional "image_id", "file_name" (image file inside the image folder; default "{image_id}.jpg"),
    "url", "coco_id", "flickr_id"}``.

    Class lists are given without background, in id order. Returns the paths written (see
    :func:`write_vg_annotations`).
    """
    if len(images) == 0:
        raise DataError("write_vg_dataset: no images")
    box_counts, rel_counts, boxes, labels, relations, attributes = [], [], [], [], [], []
    ids = [img.get("image_id") for img in images]
    if any(i is None for i in ids) and not all(i is None for i in ids):
        raise DataError("write_vg_dataset: give 'image_id' for every image or for none")
    for index, img in enumerate(images):
        for key in ("width", "height", "split", "boxes", "labels"):
            if key not in img:
                raise DataError(f"write_vg_dataset: image {index} has no '{key}'")
        if img["split"] not in SPLIT_NAMES:
            raise DataError(f"write_vg_dataset: image {index} has split {img['split']!r}; expected 'train' or "
                            "'test' (validation images come out of train, DATASETS.VAL_SIZE)")
        box = np.asarray(img["boxes"], dtype=np.float64).reshape(-1, 4)
        rel = np.asarray(img.get("relations", ()), dtype=np.int64).reshape(-1, 3)
        att = np.zeros((len(box), MAX_ATTRIBUTES), dtype=np.int64)
        given = img.get("attributes")
        if given is not None:
            for row, values in enumerate(given):
                values = [int(v) for v in values if int(v) != 0][:MAX_ATTRIBUTES]
                att[row, :len(values)] = values
        if len(np.asarray(img["labels"]).reshape(-1)) != len(box):
            raise DataError(f"write_vg_dataset: image {index} has {len(box)} boxes but "
                            f"{len(np.asarray(img['labels']).reshape(-1))} labels")
        box_counts.append(len(box))
        rel_counts.append(len(rel))
        boxes.append(box)
        labels.append(np.asarray(img["labels"], dtype=np.int64).reshape(-1))
        relations.append(rel)
        attributes.append(att)
    ann = VGAnnotations(
        widths=np.array([img["width"] for img in images], dtype=np.int64),
        heights=np.array([img["height"] for img in images], dtype=np.int64),
        split=np.array([SPLIT_NAMES[img["split"]] for img in images], dtype=np.int32),
        box_counts=np.array(box_counts, dtype=np.int64), boxes=np.concatenate(boxes),
        labels=np.concatenate(labels), rel_counts=np.array(rel_counts, dtype=np.int64),
        relations=np.concatenate(relations), attributes=np.concatenate(attributes),
        image_ids=None if ids[0] is None else np.array(ids, dtype=np.int64),
        file_names=[img.get("file_name") for img in images],
        extra_image_data=[{k: img[k] for k in ("url", "coco_id", "flickr_id") if k in img} for img in images])
    return write_vg_annotations(output_dir, ann, object_classes, predicate_classes, attribute_classes)


def zero_shot_triplets(ann: VGAnnotations) -> torch.Tensor:
    """(sub_cls, obj_cls, pred) triplets of the test split that never occur in the train split, as LongTensor
    (M, 3) sorted like the released ``zeroshot_triplet.pytorch``."""
    starts = np.cumsum(ann.box_counts) - ann.box_counts
    rel_image = np.repeat(np.arange(ann.num_images), ann.rel_counts)
    sub = ann.labels[starts[rel_image] + ann.relations[:, 0]]
    obj = ann.labels[starts[rel_image] + ann.relations[:, 1]]
    triplets = np.stack([sub, obj, ann.relations[:, 2]], axis=1).astype(np.int64)
    is_test = ann.split[rel_image] == SPLIT_TEST
    seen = {tuple(t) for t in np.unique(triplets[~is_test], axis=0).tolist()}
    test = np.unique(triplets[is_test], axis=0) if is_test.any() else np.zeros((0, 3), np.int64)
    unseen = [t for t in test.tolist() if tuple(t) not in seen]
    return torch.tensor(unseen, dtype=torch.long).reshape(-1, 3)


# ------------------------------------------------------------------------------------------------------ converter
def _class_list(description: Mapping, key: str, found: List[str]) -> List[str]:
    given = description.get(key)
    if given is None:
        return sorted(set(found))  # alphabetical ids, as VG150's
    unknown = sorted(set(found) - set(given))
    if unknown:
        raise DataError(f"convert: names {unknown[:5]} are used but not listed in '{key}'")
    return list(given)


def convert_simple_dataset(description: Mapping, output_dir: str, image_root: Optional[str] = None,
                           images: str = "link") -> Dict[str, str]:
    """Convert the simple JSON description of DATASET.md ("Bring your own data") into the VG150 files.

    ``images``: "link" (symlink each image into ``output_dir/VG_100K``), "copy", or "none". Image sizes missing
    from the description are read from the image files.
    """
    if images not in ("link", "copy", "none"):
        raise DataError(f"convert: images must be 'link', 'copy' or 'none', got {images!r}")
    entries = description.get("images")
    if not isinstance(entries, list) or not entries:
        raise DataError("convert: the description needs a non-empty list 'images'")
    image_root = image_root or "."
    names = {"objects": [], "predicates": [], "attributes": []}
    for i, img in enumerate(entries):
        if "file_name" not in img:
            raise DataError(f"convert: images[{i}] has no 'file_name'")
        for j, obj in enumerate(img.get("objects", [])):
            if "box" not in obj or "label" not in obj:
                raise DataError(f"convert: images[{i}].objects[{j}] needs 'box' [x1, y1, x2, y2] and 'label'")
            names["objects"].append(obj["label"])
            names["attributes"].extend(obj.get("attributes", []))
        for j, rel in enumerate(img.get("relations", [])):
            if any(k not in rel for k in ("subject", "object", "predicate")):
                raise DataError(f"convert: images[{i}].relations[{j}] needs 'subject', 'object' (object indices) "
                                "and 'predicate'")
            names["predicates"].append(rel["predicate"])
    object_classes = _class_list(description, "object_classes", names["objects"])
    predicate_classes = _class_list(description, "predicate_classes", names["predicates"])
    attribute_classes = _class_list(description, "attribute_classes", names["attributes"])
    obj_id = {n: k + 1 for k, n in enumerate(object_classes)}
    pred_id = {n: k + 1 for k, n in enumerate(predicate_classes)}
    att_id = {n: k + 1 for k, n in enumerate(attribute_classes)}

    records = []
    for i, img in enumerate(entries):
        source = os.path.join(image_root, img["file_name"])
        width, height = img.get("width"), img.get("height")
        if width is None or height is None:
            if not os.path.isfile(source):
                raise FileNotFoundError(f"convert: images[{i}] gives no width/height and its image {source} does "
                                        "not exist")
            with Image.open(source) as handle:
                width, height = handle.size
        objects = img.get("objects", [])
        record = {"width": int(width), "height": int(height), "split": img.get("split", "train"),
                  "file_name": img["file_name"],
                  "boxes": np.array([o["box"] for o in objects], dtype=np.float64).reshape(-1, 4),
                  "labels": [obj_id[o["label"]] for o in objects],
                  "attributes": [[att_id[a] for a in o.get("attributes", [])] for o in objects],
                  "relations": [[r["subject"], r["object"], pred_id[r["predicate"]]]
                                for r in img.get("relations", [])]}
        if "image_id" in img:
            record["image_id"] = img["image_id"]
        records.append(record)
    paths = write_vg_dataset(output_dir, records, object_classes, predicate_classes, attribute_classes)

    img_dir = os.path.join(output_dir, IMAGE_DIR)
    paths["img_dir"] = img_dir
    if images != "none":
        os.makedirs(img_dir, exist_ok=True)
        for i, img in enumerate(entries):
            source = os.path.abspath(os.path.join(image_root, img["file_name"]))
            target = os.path.join(img_dir, img["file_name"])
            if not os.path.isfile(source):
                raise FileNotFoundError(f"convert: image of images[{i}] not found: {source} (--image-root)")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.lexists(target):
                os.remove(target)
            if images == "link":
                os.symlink(source, target)
            else:
                shutil.copyfile(source, target)
    return paths
