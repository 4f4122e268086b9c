"""VGDataset: round trip through the writer, SGB's split/filter semantics on hand-built cases, the two fixed SGB
quirks (flip, GT alignment) and image alignment."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from sgg.data.datasets import VGDataset, one_predicate_per_pair, relation_matrix
from sgg.data.synthetic_render import draw_object

from vg_cases import ATTRIBUTES, OBJECTS, PREDICATES, image, write_case


def open_split(paths, split, **options):
    options.setdefault("check_images", False)
    return VGDataset(split, **paths, **options)


def h5_indices(ds):
    return np.flatnonzero(ds.split_mask).tolist()


def test_round_trip_gives_boxes_labels_relations_and_attributes(tmp_path):
    rng = np.random.default_rng(0)
    images = []
    for i in range(6):
        width, height = int(rng.integers(60, 900)), int(rng.integers(60, 900))
        n = int(rng.integers(2, 6))
        x1, y1 = rng.uniform(0, width * 0.6, n), rng.uniform(0, height * 0.6, n)
        boxes = np.stack([x1, y1, x1 + rng.uniform(5, width * 0.4, n), y1 + rng.uniform(5, height * 0.4, n)], 1)
        rels = [[0, 1, 1 + i % 3], [n - 1, 0, 2]]
        images.append(image("test", np.round(boxes, 1), (1 + np.arange(n) % 3).tolist(), rels, (width, height),
                            attributes=[[1 + j % 2] for j in range(n)]))
    paths = write_case(tmp_path, images)
    ds = open_split(paths, "test")
    assert len(ds) == 6
    for i, img in enumerate(images):
        target = ds.get_groundtruth(i, evaluation=True)
        assert target.size == (img["width"], img["height"]) and target.mode == "xyxy"
        # 1024-encoding: each corner is rounded to the 1024 canvas, so it is off by at most half a canvas unit
        tolerance = 0.5 * max(img["width"], img["height"]) / 1024 + 1e-4
        assert torch.allclose(target.bbox, torch.tensor(img["boxes"], dtype=torch.float32), atol=tolerance)
        assert target.get_field("labels").tolist() == img["labels"]
        assert target.get_field("labels").dtype == torch.int64
        assert target.get_field("relation_tuple").tolist() == img["relations"].tolist()
        attributes = target.get_field("attributes")
        assert attributes.shape == (len(img["labels"]), 10) and attributes.dtype == torch.int64
        assert attributes[:, 0].tolist() == [a[0] for a in img["attributes"]]
        matrix = target.get_field("relation")
        assert matrix.shape == (len(img["labels"]),) * 2 and matrix.dtype == torch.int64
        for s, o, p in img["relations"].tolist():
            assert matrix[s, o] == p
        info = ds.get_img_info(i)
        assert (info["width"], info["height"], info["file_name"]) == (img["width"], img["height"], f"{i + 1}.jpg")
    assert ds.ind_to_classes == ["__background__"] + OBJECTS
    assert ds.ind_to_predicates == ["__background__"] + PREDICATES
    assert ds.ind_to_attributes == ["__background__"] + ATTRIBUTES
    assert ds.categories == {0: "__background__", 1: "a", 2: "b", 3: "c"}


def test_decode_truncates_like_sgb(tmp_path):
    """cx=10, w=5 -> x1 = int(7.5) = 7, x2 = 12 (PROTOCOL 1.5); written with h5py directly."""
    import h5py

    paths = write_case(tmp_path, [image("test", [[0, 0, 10, 10]], [1], size=(1024, 512))])
    with h5py.File(paths["roidb_file"], "r+") as f:
        f["boxes_1024"][0] = [10, 20, 5, 7]
    target = open_split(paths, "test", filter_empty_rels=False).get_groundtruth(0, evaluation=True)
    assert target.bbox.tolist() == [[7.0, 16.0, 12.0, 23.0]]


def test_filter_empty_rels_and_boxless_images(filter_case):
    assert h5_indices(open_split(filter_case, "train", num_val_im=0, filter_non_overlap=False)) == [0, 1, 3]
    assert h5_indices(open_split(filter_case, "train", num_val_im=0, filter_non_overlap=False,
                                 filter_empty_rels=False)) == [0, 1, 2, 3]
    assert h5_indices(open_split(filter_case, "test")) == [4]
    assert h5_indices(open_split(filter_case, "test", filter_empty_rels=False)) == [4, 5]


def test_filter_non_overlap_keeps_overlapping_relations_only(filter_case):
    ds = open_split(filter_case, "train", num_val_im=0, filter_duplicate_rels=False)
    assert h5_indices(ds) == [0, 3]  # image 1 lost its only relation
    assert ds.relationships[0].tolist() == [[0, 1, 1], [0, 1, 2]]
    # train only: the test split ignores the flag
    assert open_split(filter_case, "test", filter_non_overlap=True).relationships[0].tolist() == [[0, 1, 1]] * 2


def test_val_is_the_first_filtered_train_images(filter_case):
    val = open_split(filter_case, "val", num_val_im=1, filter_non_overlap=False)
    train = open_split(filter_case, "train", num_val_im=1, filter_non_overlap=False)
    assert h5_indices(val) == [0] and h5_indices(train) == [1, 3]
    # val is carved out before the train-only overlap filter
    assert h5_indices(open_split(filter_case, "val", num_val_im=2)) == [0, 1]
    assert h5_indices(open_split(filter_case, "train", num_val_im=1)) == [3]
    # num_im truncates before the val split
    assert h5_indices(open_split(filter_case, "train", num_val_im=1, num_im=2, filter_non_overlap=False)) == [1]
    with pytest.raises(ValueError, match="VAL_SIZE"):
        open_split(filter_case, "train", num_val_im=3, filter_non_overlap=False)
    with pytest.raises(ValueError, match="VAL_SIZE"):
        open_split(filter_case, "val", num_val_im=0)


def test_filter_duplicate_rels_draws_one_predicate_per_pair_at_each_load(filter_case):
    ds = open_split(filter_case, "train", num_val_im=0, filter_non_overlap=False)
    np.random.seed(0)
    seen = set()
    for _ in range(60):
        target = ds.get_groundtruth(0)
        rels = target.get_field("relation_tuple").tolist()
        assert len(rels) == 2 and rels[1] == [0, 2, 2]
        assert rels[0][:2] == [0, 1]
        assert target.get_field("relation")[0, 1] == rels[0][2]
        seen.add(rels[0][2])
    assert seen == {1, 2}
    keep_all = open_split(filter_case, "train", num_val_im=0, filter_non_overlap=False, filter_duplicate_rels=False)
    assert keep_all.get_groundtruth(0).get_field("relation_tuple").tolist() == [[0, 1, 1], [0, 2, 2], [0, 1, 2]]


def test_duplicate_helpers():
    rels = np.array([[0, 1, 1], [2, 0, 4], [0, 1, 2], [0, 1, 3]])
    np.random.seed(1)
    picks = {tuple(map(tuple, one_predicate_per_pair(rels).tolist())) for _ in range(100)}
    assert picks == {((0, 1, p), (2, 0, 4)) for p in (1, 2, 3)}
    values = {int(relation_matrix(rels, 3)[0, 1]) for _ in range(100)}
    assert values == {1, 2, 3} and relation_matrix(rels, 3)[2, 0] == 4


def test_test_relations_are_not_deduplicated(filter_case):
    target = open_split(filter_case, "test").get_groundtruth(0, evaluation=True)
    assert target.get_field("relation_tuple").tolist() == [[0, 1, 1], [0, 1, 1]]


DEGENERATE = [image("train", [[0, 0, 50, 50], [99, 10, 100, 20], [20, 20, 60, 60]], [1, 2, 3],
                    [[0, 1, 1], [0, 2, 2], [1, 2, 3]])]


def test_train_drops_degenerate_boxes_with_their_relations(tmp_path):
    paths = write_case(tmp_path, DEGENERATE)
    ds = open_split(paths, "train", num_val_im=0, filter_non_overlap=False)
    target = ds.get_groundtruth(0)
    assert len(target) == 2  # the box squeezed onto the last column has no area once clipped
    assert target.get_field("labels").tolist() == [1, 3]
    assert target.get_field("relation_tuple").tolist() == [[0, 1, 2]]
    assert target.get_field("relation").tolist() == [[0, 2], [0, 0]]


def test_a_train_split_under_evaluation_keeps_every_box(tmp_path):
    ds = open_split(write_case(tmp_path, DEGENERATE), "train", num_val_im=0, filter_non_overlap=False)
    ds.evaluation_targets = True
    assert len(ds.get_groundtruth(0)) == 3


def test_eval_keeps_every_box_so_model_input_and_gt_align(tmp_path):
    paths = write_case(tmp_path, [dict(d, split="test") for d in DEGENERATE])
    ds = open_split(paths, "test")
    gt = ds.get_groundtruth(0, evaluation=True)
    assert len(gt) == 3 and gt.get_field("relation_tuple").tolist() == [[0, 1, 1], [0, 2, 2], [1, 2, 3]]
    assert gt.bbox[:, 2].max() <= 99  # clipped to the image
    # the item a model gets for val/test carries exactly the evaluation boxes
    os.makedirs(paths["img_dir"])
    Image.new("RGB", (100, 100)).save(os.path.join(paths["img_dir"], "1.jpg"))
    _, item_target, index = ds[0]
    assert index == 0 and torch.equal(item_target.bbox, gt.bbox)
    assert torch.equal(item_target.get_field("relation_tuple"), gt.get_field("relation_tuple"))


def _drawn_extents(pixels, channel):
    """Extents of the pixels of the object drawn in a pure primary colour (fill and darker outline)."""
    others = [c for c in range(3) if c != channel]
    ys, xs = np.nonzero((pixels[..., channel] > 0) & (pixels[..., others] == 0).all(axis=2))
    return [xs.min(), ys.min(), xs.max(), ys.max()]


def test_flip_moves_boxes_with_the_drawn_objects(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    boxes = [[10, 20, 40, 60], [55, 5, 95, 30], [0, 70, 30, 99]]
    canvas = np.zeros((100, 120, 3), dtype=np.uint8)
    rng = np.random.default_rng(0)
    for box, shape, rgb in zip(boxes, ["circle", "triangle", "star"], colours):
        draw_object(canvas, box, shape, np.array(rgb), "solid", rng)
    paths = write_case(tmp_path, [image("train", boxes, [1, 2, 3], [[0, 1, 1]], (120, 100), file_name="scene.png")])
    os.makedirs(paths["img_dir"])
    Image.fromarray(canvas).save(os.path.join(paths["img_dir"], "scene.png"))
    ds = VGDataset("train", **paths, num_val_im=0, filter_non_overlap=False, flip_aug=True)
    np.random.seed(0)
    flips = set()
    for _ in range(12):
        img, target, _ = ds[0]
        pixels = np.asarray(img)
        flipped = not np.array_equal(pixels, canvas)
        flips.add(flipped)
        if flipped:
            assert np.array_equal(pixels, canvas[:, ::-1])
        for channel, box in enumerate(target.bbox.tolist()):
            drawn = _drawn_extents(pixels, channel)
            assert np.allclose(box, drawn, atol=0.13), (flipped, box, drawn)
    assert flips == {True, False}
    # get_groundtruth(flip_img=True) flips boxes: x1' = W - x2 - 1
    flipped = ds.get_groundtruth(0, flip_img=True).bbox
    assert np.allclose(flipped[0].tolist(), [120 - 40 - 1, 20, 120 - 10 - 1, 60], atol=0.13)


def test_items_are_pil_images_or_transformed(synthetic_images):
    root, _ = synthetic_images
    from sgg.data.vg_format import dataset_paths

    ds = VGDataset("test", **dataset_paths(root))
    img, target, index = ds[3]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == target.size and index == 3
    calls = []

    def transform(image, tgt):
        calls.append(1)
        return torch.zeros(3, 2, 2), tgt

    ds.transforms = transform
    out, _, _ = ds[0]
    assert calls and tuple(out.shape) == (3, 2, 2)
    assert len(ds.filenames) == len(ds.img_info) == len(ds.gt_boxes) == len(ds.gt_classes) == len(ds.relationships)


def test_corrupted_vg_images_are_skipped_when_aligning(tmp_path):
    paths = write_case(tmp_path, [image("test", [[0, 0, 10, 10]], [1], [], size=(50, 40)),
                                  image("test", [[0, 0, 10, 10]], [2], [], size=(60, 30))])
    with open(paths["image_file"]) as f:
        entries = json.load(f)
    entries.insert(1, {"width": 9, "height": 9, "image_id": 1592})
    entries.append({"width": 9, "height": 9, "image_id": 4617})
    with open(paths["image_file"], "w") as f:
        json.dump(entries, f)
    ds = open_split(paths, "test", filter_empty_rels=False)
    assert [ds.get_img_info(i)["width"] for i in range(2)] == [50, 60]


def test_missing_images_are_skipped_like_sgb_when_counts_still_match(tmp_path):
    paths = write_case(tmp_path, [image("test", [[0, 0, 10, 10]], [1], size=(50, 40))])
    with open(paths["image_file"]) as f:
        entries = json.load(f)
    entries.insert(0, {"width": 9, "height": 9, "image_id": 77})  # listed, but no file: skipped
    with open(paths["image_file"], "w") as f:
        json.dump(entries, f)
    os.makedirs(paths["img_dir"])
    Image.new("RGB", (50, 40)).save(os.path.join(paths["img_dir"], "1.jpg"))
    ds = VGDataset("test", **paths, filter_empty_rels=False)
    assert ds.get_img_info(0)["width"] == 50
