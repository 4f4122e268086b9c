"""The VG150 release format (Xu et al. 2017, as distributed with Scene-Graph-Benchmark.pytorch): constants, readers
and checks.

Three annotation files and an image folder make a dataset (DATASET.md documents every field):

* ``VG-SGG-with-attri.h5``: per-image index arrays into global per-box and per-relation arrays;
* ``VG-SGG-dicts-with-attri.json``: the label spaces (1-based; background 0 is implicit);
* ``image_data.json``: one metadata dict per image, in h5 order (plus entries for VG's four corrupted images);
* ``VG_100K/{image_id}.jpg``: the images.

Everything here reads whole arrays at once and checks them with numpy, so a VG-scale file (108k images, 1.1M boxes)
is read and validated in well under a second. Every error names the file, the field, the offending index and what
was expected.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np

from sgg.utils.errors import DataError

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------------ constants
H5_FILE = "VG-SGG-with-attri.h5"
DICT_FILE = "VG-SGG-dicts-with-attri.json"
IMAGE_FILE = "image_data.json"
IMAGE_DIR = "VG_100K"
ZEROSHOT_FILE = "zeroshot_triplet.pytorch"

BOX_SCALE = 1024  # boxes_1024: the image's long side scaled to 1024
SMALL_BOX_SCALE = 512
MAX_ATTRIBUTES = 10  # attribute slots per box, 0-padded
SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST = 0, 1, 2  # values of the h5 ``split`` array (1 exists but is never used)
BACKGROUND = "__background__"

# Images of VG's image_data.json that have no row in the h5 (unreadable in the original release).
CORRUPTED_IMAGE_IDS = (1592, 1722, 4616, 4617)

# name -> (dtype, trailing shape, what the first axis counts, meaning). The order is the order of the real file.
H5_SCHEMA: Dict[str, Tuple[str, Tuple[int, ...], str, str]] = {
    "split": ("int32", (), "image", "0 = train, 2 = test (val is carved out of train by the loader)"),
    "img_to_first_box": ("int32", (), "image", "first row of the image's boxes in the box arrays; -1 = no boxes"),
    "img_to_last_box": ("int32", (), "image", "last row (inclusive) of the image's boxes; -1 = no boxes"),
    "img_to_first_rel": ("int32", (), "image", "first row of the image's relations; -1 = no relations"),
    "img_to_last_rel": ("int32", (), "image", "last row (inclusive) of the image's relations; -1 = none"),
    "labels": ("int64", (1,), "box", "object class id, 1..C (0 = background is never stored)"),
    "boxes_1024": ("int32", (4,), "box", "(cx, cy, w, h) with the image's long side scaled to 1024"),
    "boxes_512": ("int32", (4,), "box", "the same at long side 512 (not read by the loader)"),
    "active_object_mask": ("bool", (1,), "box", "True for every stored box (not read by the loader)"),
    "attributes": ("int64", (MAX_ATTRIBUTES,), "box", "up to 10 attribute ids 1..A per box, 0-padded"),
    "relationships": ("int32", (2,), "relation", "(subject, object) as global box rows"),
    "predicates": ("int64", (1,), "relation", "predicate id, 1..P"),
}
IMAGE_ARRAYS = ("split", "img_to_first_box", "img_to_last_box", "img_to_first_rel", "img_to_last_rel")
REQUIRED_H5 = IMAGE_ARRAYS + ("labels", "boxes_1024", "relationships", "predicates")
DICT_KEYS = ("label_to_idx", "idx_to_label", "predicate_to_idx", "idx_to_predicate", "object_count",
             "predicate_count", "attribute_to_idx", "idx_to_attribute", "attribute_count")


# ------------------------------------------------------------------------------------------------------ boxes
def encode_boxes(boxes_xyxy: np.ndarray, widths: np.ndarray, heights: np.ndarray,
                 scale: int = BOX_SCALE) -> np.ndarray:
    """Pixel xyxy boxes -> int32 (cx, cy, w, h) at long side ``scale`` (one image size per box).

    Corners are rounded (error <= half a unit of the scaled canvas) and the centre is stored as ``x1 + ceil(w / 2)``,
    so the loader's truncating decode (:func:`decode_boxes`) gives back exactly the rounded corners. The upstream
    VG encoder floors x1 and ceils w instead; both decode the same way.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    factor = scale / np.maximum(np.asarray(widths, np.float64), np.asarray(heights, np.float64))
    corners = np.rint(boxes * factor[:, None])
    corners = np.clip(corners, 0, scale)
    x1, y1 = np.minimum(corners[:, 0], scale - 1), np.minimum(corners[:, 1], scale - 1)
    w = np.maximum(corners[:, 2] - x1, 1)
    h = np.maximum(corners[:, 3] - y1, 1)
    out = np.stack([x1 + np.ceil(w / 2), y1 + np.ceil(h / 2), w, h], axis=1)
    return out.astype(np.int32)


def decode_boxes(boxes_cxcywh: np.ndarray) -> np.ndarray:
    """int (cx, cy, w, h) -> int32 xyxy as SGB does it: ``x1 = int(cx - w / 2)`` (truncated), ``x2 = x1 + w``."""
    boxes = np.asarray(boxes_cxcywh)
    xy1 = (boxes[:, :2] - boxes[:, 2:] / 2).astype(np.int32)  # C cast: truncation towards zero, like SGB's in-place
    return np.concatenate([xy1, xy1 + boxes[:, 2:].astype(np.int32)], axis=1)


# ------------------------------------------------------------------------------------------------------ h5
def require_file(path: str, what: str) -> None:
    if not os.path.isfile(path):
        where = os.path.dirname(os.path.abspath(path))
        hint = "" if os.path.isdir(where) else f" (the folder {where} does not exist either)"
        raise FileNotFoundError(f"{what} not found: {path}{hint}. See DATASET.md for where the VG150 files go, "
                                "or run tools/make_synthetic_vg.py for the synthetic dataset")


def read_json(path: str):
    """The content of a JSON file; a DataError names the file when it is not valid JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err


def read_vg_h5(roidb_file: str, with_attributes: bool = True) -> Dict[str, np.ndarray]:
    """Read and check the arrays the loader needs, each in one bulk read. Per-box/per-relation columns of width 1
    (``labels``, ``predicates``) are flattened. A missing ``attributes`` dataset (the attribute-free ``VG-SGG.h5``)
    becomes zeros, with a warning."""
    import h5py  # lazy: only reading the h5 needs it, and it adds ~50 ms to every import of sgg.data

    require_file(roidb_file, "VG roidb (h5)")
    wanted = list(REQUIRED_H5) + (["attributes"] if with_attributes else [])
    try:
        handle = h5py.File(roidb_file, "r")
    except OSError as err:
        raise DataError(f"{roidb_file}: not a readable HDF5 file ({err})") from err
    with handle:
        missing = [name for name in REQUIRED_H5 if name not in handle]
        if missing:
            raise DataError(f"{roidb_file}: missing h5 dataset(s) {', '.join(missing)}; a VG150 roidb needs "
                            f"{', '.join(REQUIRED_H5)} (DATASET.md lists every dataset)")
        data = {name: handle[name][:] for name in wanted if name in handle}
    check_vg_arrays(data, roidb_file)
    if with_attributes and "attributes" not in data:
        logger.warning("%s has no 'attributes' dataset: every box gets attribute ids 0", roidb_file)
        data["attributes"] = np.zeros((len(data["labels"]), MAX_ATTRIBUTES), dtype=np.int64)
    return data


def _column(data: Dict[str, np.ndarray], name: str, width: int, path: str) -> np.ndarray:
    value = data[name]
    if width == 1 and value.ndim == 2 and value.shape[1] == 1:
        value = value[:, 0]
    expected = (value.shape[0],) if width == 1 else (value.shape[0], width)
    if value.ndim == 0 or value.shape != expected:
        want = "(N,) or (N, 1)" if width == 1 else f"(N, {width})"
        raise DataError(f"{path}: h5 dataset '{name}' has shape {value.shape}, expected {want}")
    return value


def check_vg_arrays(data: Dict[str, np.ndarray], path: str) -> None:
    """Shapes, index ranges and box sizes of a roidb read by :func:`read_vg_h5` (modifies ``data`` in place to
    flatten width-1 columns)."""
    for name in IMAGE_ARRAYS:
        data[name] = _column(data, name, 1, path)
    num_images = len(data["split"])
    for name in IMAGE_ARRAYS[1:]:
        if len(data[name]) != num_images:
            raise DataError(f"{path}: h5 dataset '{name}' has {len(data[name])} entries but 'split' has "
                            f"{num_images}; every per-image array must have one entry per image")
    data["labels"] = _column(data, "labels", 1, path)
    data["boxes_1024"] = _column(data, "boxes_1024", 4, path)
    data["relationships"] = _column(data, "relationships", 2, path)
    data["predicates"] = _column(data, "predicates", 1, path)
    num_boxes, num_rels = len(data["labels"]), len(data["predicates"])
    if len(data["boxes_1024"]) != num_boxes:
        raise DataError(f"{path}: 'boxes_1024' has {len(data['boxes_1024'])} rows but 'labels' has {num_boxes}; "
                        "per-box datasets must have the same number of rows")
    if "attributes" in data:
        attributes = data["attributes"]
        if attributes.ndim != 2 or attributes.shape[0] != num_boxes:
            raise DataError(f"{path}: 'attributes' has shape {attributes.shape}, expected ({num_boxes}, "
                            f"{MAX_ATTRIBUTES}) (one row per box)")
    if len(data["relationships"]) != num_rels:
        raise DataError(f"{path}: 'relationships' has {len(data['relationships'])} rows but 'predicates' has "
                        f"{num_rels}; per-relation datasets must have the same number of rows")
    _check_ranges(data["img_to_first_box"], data["img_to_last_box"], num_boxes, "box", path)
    _check_ranges(data["img_to_first_rel"], data["img_to_last_rel"], num_rels, "rel", path)
    _check_relation_rows(data, path)
    _check_box_sizes(data, path)


def _check_ranges(first: np.ndarray, last: np.ndarray, total: int, kind: str, path: str) -> None:
    names = f"'img_to_first_{kind}'/'img_to_last_{kind}'"
    rows = "boxes" if kind == "box" else "relations"
    bad = np.flatnonzero((first == -1) != (last == -1))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}: {names} of image {i} are ({first[i]}, {last[i]}); both must be -1 (no {rows}) "
                        "or both valid row indices")
    has = first >= 0
    checks = [((first < -1) | (last < -1), "below -1"),
              (has & (first > last), "first > last"),
              (has & (last >= total), f"past the last row ({total} {rows} in the file)")]
    for mask, what in checks:
        bad = np.flatnonzero(mask)
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{path}: {names} of image {i} are ({first[i]}, {last[i]}): {what}; expected "
                            f"0 <= first <= last < {total} or -1 ({bad.size} image(s) affected)")


def image_of_rows(first: np.ndarray, last: np.ndarray, num_rows: int) -> np.ndarray:
    """For every global row, the image whose inclusive [first, last] range holds it (-1 for orphan rows)."""
    owner = np.full(num_rows, -1, dtype=np.int64)
    images = np.flatnonzero(first >= 0)
    lengths = (last[images] - first[images] + 1).astype(np.int64)
    rows = ranges_to_rows(first[images], lengths)
    owner[rows] = np.repeat(images, lengths)
    return owner


def ranges_to_rows(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + n)`` for every (s, n) without a Python loop."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(offsets - np.asarray(starts, np.int64), lengths)


def _check_relation_rows(data: Dict[str, np.ndarray], path: str) -> None:
    first_box, last_box = data["img_to_first_box"], data["img_to_last_box"]
    first_rel, last_rel = data["img_to_first_rel"], data["img_to_last_rel"]
    bad = np.flatnonzero((first_rel >= 0) & (first_box < 0))
    if bad.size:
        raise DataError(f"{path}: image {int(bad[0])} has relations but no boxes (img_to_first_box = -1)")
    rel_image = image_of_rows(first_rel, last_rel, len(data["predicates"]))
    rels = data["relationships"]
    valid = rel_image >= 0
    lo = np.where(valid, first_box[np.maximum(rel_image, 0)], 0)
    hi = np.where(valid, last_box[np.maximum(rel_image, 0)], -1)
    outside = valid & ((rels[:, 0] < lo) | (rels[:, 0] > hi) | (rels[:, 1] < lo) | (rels[:, 1] > hi))
    bad = np.flatnonzero(outside)
    if bad.size:
        r = int(bad[0])
        i = int(rel_image[r])
        raise DataError(f"{path}: 'relationships' row {r} (image {i}) is {rels[r].tolist()}, expected global box rows "
                        f"of its own image, {lo[r]}..{hi[r]} ({bad.size} relation(s) affected)")


def _check_box_sizes(data: Dict[str, np.ndarray], path: str) -> None:
    boxes = data["boxes_1024"]
    problems = [(boxes[:, 2:].min(axis=1) <= 0, "non-positive width or height; expected w > 0 and h > 0"),
                (boxes[:, :2].min(axis=1) < 0, "a negative centre; expected cx >= 0 and cy >= 0")]
    for mask, what in problems:
        bad = np.flatnonzero(mask)
        if bad.size:
            row = int(bad[0])
            owner = image_of_rows(data["img_to_first_box"], data["img_to_last_box"], len(boxes))[row]
            raise DataError(f"{path}: 'boxes_1024' row {row} (image {owner}) is (cx, cy, w, h) = "
                            f"{boxes[row].tolist()}: {what} ({bad.size} box(es) affected)")


def check_ids(values: np.ndarray, low: int, high: int, field: str, path: str, names: str) -> None:
    """Raise if any id is outside ``low..high`` (inclusive); ``names`` says which dictionary defines them."""
    values = np.asarray(values)
    if values.size == 0:
        return
    bad = np.flatnonzero((values < low) | (values > high))
    if bad.size:
        flat = int(bad[0])
        row = flat // values.shape[1] if values.ndim == 2 else flat
        raise DataError(f"{path}: '{field}' row {row} holds id {int(values.reshape(-1)[flat])}, expected "
                        f"{low}..{high} ({names}); {bad.size} value(s) out of range")


# ------------------------------------------------------------------------------------------------------ dicts
def _index_list(mapping: dict, key: str, path: str) -> List[str]:
    """name->index map (1-based) -> list of names by index with the background at 0."""
    try:
        items = [(str(name), int(index)) for name, index in mapping.items()]
    except (TypeError, ValueError, AttributeError) as err:
        raise DataError(f"{path}: '{key}' must map names to integer ids ({err})") from err
    indices = sorted(index for _, index in items)
    if indices != list(range(1, len(items) + 1)):
        gaps = sorted(set(range(1, len(items) + 1)) - set(indices))
        raise DataError(f"{path}: '{key}' ids must be exactly 1..{len(items)}, each once; "
                        f"missing {gaps[:5]}, got range {indices[:1]}..{indices[-1:]}")
    names = [BACKGROUND] * (len(items) + 1)
    for name, index in items:
        names[index] = name
    return names


def load_vg_dicts(dict_file: str) -> Dict[str, List[str]]:
    """``{"ind_to_classes", "ind_to_predicates", "ind_to_attributes"}``: names by id, ``__background__`` at 0.

    As SGB's ``load_info``: built from ``label_to_idx``, ``predicate_to_idx`` and ``attribute_to_idx``. A file without
    attributes (the attribute-free ``VG-SGG-dicts.json``) gives an attribute list holding only the background.
    """
    require_file(dict_file, "VG dictionary file")
    info = read_json(dict_file)
    for key in ("label_to_idx", "predicate_to_idx"):
        if key not in info:
            raise DataError(f"{dict_file}: missing key '{key}'; expected the keys {', '.join(DICT_KEYS)}")
    out = {"ind_to_classes": _index_list(info["label_to_idx"], "label_to_idx", dict_file),
           "ind_to_predicates": _index_list(info["predicate_to_idx"], "predicate_to_idx", dict_file)}
    if "attribute_to_idx" in info:
        out["ind_to_attributes"] = _index_list(info["attribute_to_idx"], "attribute_to_idx", dict_file)
    else:
        out["ind_to_attributes"] = [BACKGROUND]
    return out


# ------------------------------------------------------------------------------------------------------ images
def load_image_data(image_file: str) -> List[dict]:
    """The list of image metadata dicts; each needs ``width``, ``height`` and ``image_id``."""
    require_file(image_file, "VG image metadata file")
    entries = read_json(image_file)
    if not isinstance(entries, list):
        raise DataError(f"{image_file}: expected a JSON list of image dicts, got {type(entries).__name__}")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or any(k not in entry for k in ("width", "height", "image_id")):
            raise DataError(f"{image_file}: entry {i} is {str(entry)[:80]}; expected a dict with width, height "
                            "and image_id")
    return entries


def image_file_name(entry: dict) -> str:
    """File name inside the image folder: ``file_name`` when given (converted datasets), else VG's
    ``{image_id}.jpg``."""
    return entry.get("file_name") or f"{entry['image_id']}.jpg"


def align_image_data(entries: Sequence[dict], num_images: int, img_dir: str, check_images: bool, image_file: str,
                     roidb_file: str) -> List[dict]:
    """The image entries of the h5 images, in h5 order, as SGB aligns them: the four corrupted VG images are
    skipped and, with ``check_images``, so are entries whose file is missing; what is left must be exactly one entry
    per h5 image. Returns copies of the entries with ``file_name`` set."""
    names = [image_file_name(e) for e in entries]
    corrupted = {f"{i}.jpg" for i in CORRUPTED_IMAGE_IDS}
    keep = np.array([n not in corrupted for n in names], dtype=bool)
    missing = np.zeros(len(names), dtype=bool)
    if check_images:
        if not os.path.isdir(img_dir):
            raise FileNotFoundError(f"image folder not found: {img_dir} (DATASETS.DATA_DIR / SGG_DATA_DIR chooses "
                                    "the data root; set DATASETS.CHECK_IMAGES False to index annotations without "
                                    "images)")
        on_disk = set(os.listdir(img_dir))  # one listing instead of 100k stat calls; sub-folders are stat'ed
        present = [n in on_disk if "/" not in n else os.path.isfile(os.path.join(img_dir, n)) for n in names]
        missing = keep & ~np.array(present, dtype=bool)
        keep &= ~missing
    kept = np.flatnonzero(keep)
    if len(kept) != num_images:
        detail = (f"{image_file} has {len(entries)} entries; {int((~keep).sum() - missing.sum())} corrupted VG "
                  f"image(s) skipped")
        if missing.any():
            first_missing = int(np.flatnonzero(missing)[0])
            position = int(keep[:first_missing].sum())
            detail += (f", {int(missing.sum())} entr(y/ies) skipped because the image is missing from {img_dir} "
                       f"(first: entry {first_missing}, {names[first_missing]}), so h5 image {position} onwards "
                       "is misaligned")
        else:
            detail += f"; the lists differ from h5 image {min(len(kept), num_images)} on"
        raise DataError(f"{image_file} does not align with {roidb_file}: {len(kept)} usable image entries for "
                        f"{num_images} h5 images ({detail}). image_data.json must list the h5 images in h5 order")
    out = []
    for index in kept.tolist():
        entry = dict(entries[index])
        entry["file_name"] = names[index]
        out.append(entry)
    return out


def write_json(path: str, value) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def dataset_paths(root: str) -> Dict[str, str]:
    """The file layout of one dataset folder (VGDataset's constructor arguments, minus the split)."""
    return {"img_dir": os.path.join(root, IMAGE_DIR), "roidb_file": os.path.join(root, H5_FILE),
            "dict_file": os.path.join(root, DICT_FILE), "image_file": os.path.join(root, IMAGE_FILE)}
