"""The synthetic VG generator: format, determinism, the long-tail targets, predicate semantics, and the CLI."""
import filecmp
import importlib.util
import json
import os

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from sgg.data import synthetic
from sgg.data.datasets import VGDataset
from sgg.data.synthetic import (IMAGE_PROFILE, PREDICATES, VG_PROFILE, generate_synthetic_vg, sample_scenes,
                                summarize, valid_predicates)
from sgg.data.vg_format import H5_SCHEMA, dataset_paths

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "make_synthetic_vg.py")


def h5_arrays(root):
    with h5py.File(os.path.join(root, "VG-SGG-with-attri.h5"), "r") as f:
        return {name: f[name][:] for name in f}


def test_same_seed_gives_identical_annotations_and_jpeg_bytes(tmp_path, synthetic_images):
    root, _ = synthetic_images
    again = str(tmp_path / "again")
    generate_synthetic_vg(again, num_train=48, num_test=16, seed=3, workers=2)  # other worker count, same bytes
    first, second = h5_arrays(root), h5_arrays(again)
    assert set(first) == set(second) == set(H5_SCHEMA)
    for name in first:
        assert np.array_equal(first[name], second[name]), name
    for name in ("VG-SGG-dicts-with-attri.json", "image_data.json", "zeroshot_triplet.pytorch"):
        assert filecmp.cmp(os.path.join(root, name), os.path.join(again, name), shallow=False), name
    jpegs = sorted(os.listdir(os.path.join(root, "VG_100K")))
    assert len(jpegs) == 64 and jpegs == sorted(os.listdir(os.path.join(again, "VG_100K")))
    for name in jpegs:
        assert filecmp.cmp(os.path.join(root, "VG_100K", name), os.path.join(again, "VG_100K", name), shallow=False)
    same, other = sample_scenes(48, 16, seed=3).annotations, sample_scenes(48, 16, seed=4).annotations
    assert np.array_equal(same.relations, sample_scenes(48, 16, seed=3).annotations.relations)
    assert not np.array_equal(same.boxes[:20], other.boxes[:20])


def test_drawn_dataset_loads_with_images_of_the_listed_sizes(synthetic_images):
    root, summary = synthetic_images
    paths = dataset_paths(root)
    train = VGDataset("train", **paths, num_val_im=8, filter_non_overlap=False)
    val = VGDataset("val", **paths, num_val_im=8)
    test = VGDataset("test", **paths)
    assert len(val) == 8 and len(train) + len(val) <= 48 and 0 < len(test) <= 16
    assert len(train.ind_to_classes) == 31 and len(train.ind_to_predicates) == len(PREDICATES) + 1
    for ds in (train, test):
        img, target, _ = ds[0]
        info = ds.get_img_info(0)
        assert img.size == (info["width"], info["height"]) and 128 <= min(img.size) and max(img.size) <= 256
        assert 2 <= len(target) <= 8
    with open(os.path.join(root, "image_data.json")) as f:
        entries = json.load(f)
    assert {"width", "height", "url", "image_id", "coco_id", "flickr_id"} <= set(entries[0])
    assert summary["images_written"] == 64


def test_objects_are_drawn_inside_their_boxes(synthetic_images):
    """An object whose box no other box touches: saturated object pixels reach its box edges, the ring around the
    box is background (low saturation)."""
    root, _ = synthetic_images
    options = dict(filter_empty_rels=False, filter_non_overlap=False, num_val_im=0)
    checked = 0
    for ds, i in [(ds, i) for ds in (VGDataset(split, **dataset_paths(root), **options) for split in ("train", "test"))
                  for i in range(len(ds))]:
        target = ds.get_groundtruth(i, evaluation=True)
        hsv = np.asarray(Image.open(ds.filenames[i]).convert("HSV")).astype(int)
        boxes = target.bbox.round().long().tolist()
        for k, (x1, y1, x2, y2) in enumerate(boxes):
            others = [b for j, b in enumerate(boxes) if j != k]
            margin = 6
            if x1 < margin or y1 < margin or x2 + margin >= hsv.shape[1] or y2 + margin >= hsv.shape[0] or any(
                    b[0] <= x2 + margin and b[2] >= x1 - margin and b[1] <= y2 + margin and b[3] >= y1 - margin
                    for b in others):
                continue
            saturation = hsv[..., 1]
            inner = saturation[y1:y2 + 1, x1:x2 + 1]
            assert inner[:3].max() > 110 and inner[-3:].max() > 110, (i, k)
            assert inner[:, :3].max() > 110 and inner[:, -3:].max() > 110, (i, k)
            ring = np.concatenate([saturation[y1 - 5:y1 - 3, x1:x2 + 1].ravel(), saturation[y2 + 4:y2 + 6,
                                   x1:x2 + 1].ravel(), saturation[y1:y2 + 1, x1 - 5:x1 - 3].ravel(),
                                   saturation[y1:y2 + 1, x2 + 4:x2 + 6].ravel()])
            assert np.percentile(ring, 90) < 110, (i, k)
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("profile", [IMAGE_PROFILE, VG_PROFILE])
def test_long_tail_targets(profile):
    summary = summarize(sample_scenes(1500, 500, seed=11, profile=profile).annotations)
    assert 15 <= summary["num_predicates"] <= 25 and 20 <= summary["num_classes"] <= 40
    assert 0.55 <= summary["top3_share"] <= 0.70
    assert summary["predicates_under_2pct"] >= summary["num_predicates"] / 3
    assert set(list(summary["predicate_counts"])[:3]) == {"near", "on", "has"}


def test_targets_hold_on_the_small_annotation_only_set(synthetic_annotations):
    _, summary = synthetic_annotations
    assert summary["images"] == {"train": 210, "test": 90}
    assert 0.55 <= summary["top3_share"] <= 0.70
    assert summary["predicates_under_2pct"] >= summary["num_predicates"] / 3


def test_vg_profile_matches_vg_averages():
    ann = sample_scenes(2100, 900, seed=5, profile=VG_PROFILE).annotations
    assert 10.1 <= ann.box_counts.mean() <= 11.1
    assert 5.4 <= ann.rel_counts.mean() <= 6.2
    assert 0.1 <= (ann.rel_counts == 0).mean() <= 0.25  # VG has images without relations too
    image = sample_scenes(300, 100, seed=5).annotations
    assert image.box_counts.min() >= 2 and image.box_counts.max() <= 8
    assert image.widths.min() >= 128 and image.heights.max() <= 256


def test_annotations_follow_the_scene_and_the_hierarchy():
    scenes = sample_scenes(400, 100, seed=2)
    ann = scenes.annotations
    starts = np.cumsum(ann.box_counts) - ann.box_counts
    rel_image = np.repeat(np.arange(ann.num_images), ann.rel_counts)
    sub, obj = starts[rel_image] + ann.relations[:, 0], starts[rel_image] + ann.relations[:, 1]
    z = np.empty(len(ann.labels), dtype=np.int64)
    z[scenes.draw_order] = np.arange(len(z))  # global drawing rank is enough for ordering within an image
    valid = valid_predicates(ann.boxes[sub].astype(int), ann.boxes[obj].astype(int), ann.labels[sub],
                             ann.labels[obj], z[sub], z[obj])
    column = {name: i for i, name in enumerate(PREDICATES)}
    # every annotated predicate holds for its pair
    assert valid[np.arange(len(valid)), ann.relations[:, 2] - 1].all()
    # the hierarchy: specific words imply general ones
    for specific, general in [("on", "above"), ("on", "near"), ("on", "touching"), ("on top of", "on"),
                              ("contains", "has"), ("wearing", "has"), ("holding", "has"), ("inside", "near"),
                              ("next to", "near")]:
        rows = valid[:, column[specific]]
        assert rows.any() and valid[rows, column[general]].all(), (specific, general)
    # class-dependent predicates: wearing only from hexagons to triangles
    wearing = ann.relations[:, 2] == column["wearing"] + 1
    shapes = scenes.shapes
    assert wearing.any()
    assert set(zip(shapes[sub[wearing]].tolist(), shapes[obj[wearing]].tolist())) == {(2, 5)}


def test_zero_shot_triplets_are_test_triplets_unseen_in_train(synthetic_annotations):
    root, summary = synthetic_annotations
    zeroshot = torch.load(os.path.join(root, "zeroshot_triplet.pytorch"))
    assert zeroshot.dtype == torch.int64 and zeroshot.shape == (summary["zero_shot_triplets"], 3)
    assert len(zeroshot) > 0
    data = h5_arrays(root)
    labels = data["labels"][:, 0]
    owner = np.zeros(len(data["predicates"]), dtype=int)
    for i, (a, b) in enumerate(zip(data["img_to_first_rel"], data["img_to_last_rel"])):
        if a >= 0:
            owner[a:b + 1] = data["split"][i]
    triplets = np.stack([labels[data["relationships"][:, 0]], labels[data["relationships"][:, 1]],
                         data["predicates"][:, 0]], axis=1)
    train = {tuple(t) for t in triplets[owner == 0].tolist()}
    test = {tuple(t) for t in triplets[owner == 2].tolist()}
    assert {tuple(t) for t in zeroshot.tolist()} == test - train


def test_cli_prints_statistics_and_distribution(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_synthetic_vg", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(["--output-dir", str(tmp_path), "--annotations-only", "--num-images", "100", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "70 train + 30 test images" in out and "train predicate distribution" in out and "top-3" in out
    assert os.path.isfile(tmp_path / "VG-SGG-with-attri.h5") and not os.path.exists(tmp_path / "VG_100K")
    assert synthetic.VG_NUM_IMAGES == 108_073
