"""Frequency statistics against hand-counted matrices (PROTOCOL.md 1.6) and the cache."""
import os

import numpy as np
import pytest
import torch
from vg_cases import image, write_case

import sgg.data.statistics as statistics
from sgg.data.datasets import VGDataset
from sgg.data.statistics import compute_statistics, load_or_compute_statistics

A, B, C = 1, 2, 3
STATS_CASE = [
    # image 0: A-B overlap, C apart. Relations A->B p1, A->C p2, B->A p1
    image("train", [[0, 0, 50, 50], [25, 25, 75, 75], [80, 80, 99, 99]], [A, B, C], [[0, 1, 1], [0, 2, 2], [1, 0, 1]]),
    # image 1: two A boxes apart: no overlapping pair, so every ordered pair counts for bg. Relation A->A p2
    image("train", [[0, 0, 20, 20], [50, 50, 70, 70]], [A, A], [[0, 1, 2]]),
    # image 2: B and C only touch (x = 25): no strict overlap, but IoU > 0 with the +1 convention; A inside B.
    image("train", [[0, 0, 25, 25], [25, 0, 50, 25], [0, 0, 10, 10]], [B, C, A], [[0, 1, 1]]),
    image("test", [[0, 0, 50, 50], [25, 25, 75, 75]], [C, C], [[0, 1, 2]]),
]


@pytest.fixture
def stats_case(tmp_path):
    return write_case(tmp_path, STATS_CASE)


def train_split(paths, **options):
    return VGDataset("train", **paths, num_val_im=0, filter_duplicate_rels=False, check_images=False, **options)


def test_fg_bg_and_pred_dist_without_overlap_filter(stats_case):
    stats = compute_statistics(train_split(stats_case, filter_non_overlap=False))
    fg, bg = stats["fg_matrix"].numpy(), stats["bg_matrix"].numpy()
    expected_fg = np.zeros((4, 4, 4), dtype=np.int64)
    expected_fg[A, B, 1] = expected_fg[B, A, 1] = expected_fg[A, C, 2] = expected_fg[A, A, 2] = 1
    expected_fg[B, C, 1] = 1
    expected_bg = np.zeros((4, 4), dtype=np.int64)
    expected_bg[A, B] = expected_bg[B, A] = 2  # image 0 (A-B) and image 2 (B-A inside): strict overlap only
    expected_bg[A, A] = 2  # image 1: no overlapping pair, so both ordered pairs
    assert np.array_equal(bg, expected_bg)
    assert np.array_equal(fg[:, :, 1:], expected_fg[:, :, 1:])
    assert np.array_equal(fg[:, :, 0], expected_bg + 1)  # SGB: the background channel is bg_matrix + 1
    assert stats["fg_matrix"].dtype == torch.int64 and stats["pred_dist"].dtype == torch.float32
    assert stats["pred_dist"].shape == (4, 4, 4)
    # (A, B): counts [bg + 1 = 3, p1 = 1, 0, 0] / 4
    expected = np.log(np.array([3, 1, 0, 0]) / 4 + 1e-3)
    assert np.allclose(stats["pred_dist"][A, B].numpy(), expected, atol=1e-6)
    assert np.allclose(stats["pred_dist"][C, C].numpy(), np.log(np.array([1, 0, 0, 0]) + 1e-3), atol=1e-6)
    assert stats["predicate_counts"].tolist() == [0, 3, 2, 0]
    assert stats["obj_classes"] == ["__background__", "a", "b", "c"]
    assert stats["rel_classes"] == ["__background__", "p1", "p2", "p3"]
    assert stats["att_classes"] == ["__background__", "red", "big"]
    assert stats["predicate_groups"] == {"head": [1], "body": [2], "tail": [3]}


def test_sgb_setting_removes_non_overlapping_relations_with_the_plus_one_convention(stats_case):
    stats = compute_statistics(train_split(stats_case, filter_non_overlap=True))
    fg = stats["fg_matrix"].numpy()[:, :, 1:]
    # image 0 keeps A->B and B->A; image 1 has no overlapping relation and is dropped; image 2 keeps the touching B->C
    assert {tuple(i) for i in np.argwhere(fg)} == {(A, B, 0), (B, A, 0), (B, C, 0)}
    expected_bg = np.zeros((4, 4), dtype=np.int64)
    expected_bg[A, B] = expected_bg[B, A] = 2
    assert np.array_equal(stats["bg_matrix"].numpy(), expected_bg)


def test_statistics_are_cached_by_their_inputs(stats_case, tmp_path, monkeypatch):
    dataset = train_split(stats_case)
    first = load_or_compute_statistics(dataset, str(tmp_path / "out"), "train_statistics")
    assert os.path.isfile(tmp_path / "out" / "train_statistics.cache")

    def fail(_):
        raise AssertionError("recomputed although the cache is valid")

    monkeypatch.setattr(statistics, "compute_statistics", fail)
    again = load_or_compute_statistics(dataset, str(tmp_path / "out"), "train_statistics")
    assert torch.equal(again["pred_dist"], first["pred_dist"])
    monkeypatch.undo()

    calls = []
    original = statistics.compute_statistics
    monkeypatch.setattr(statistics, "compute_statistics", lambda d: calls.append(1) or original(d))
    other = train_split(stats_case, filter_non_overlap=False)  # other options: a new key
    load_or_compute_statistics(other, str(tmp_path / "out"), "train_statistics")
    os.utime(stats_case["roidb_file"], ns=(1, 1))  # a changed file: a new key
    load_or_compute_statistics(other, str(tmp_path / "out"), "train_statistics")
    assert len(calls) == 2


def test_vg_scale_statistics_are_fast(synthetic_annotations):
    """The whole computation is vectorised; on the 300-image set it must match a naive per-pair count."""
    from sgg.data.vg_format import dataset_paths

    ds = train_split(dataset_paths(synthetic_annotations[0]), filter_non_overlap=True)
    stats = compute_statistics(ds)
    bg = np.zeros_like(stats["bg_matrix"].numpy())
    for boxes, labels in zip(ds.gt_boxes, ds.gt_classes):
        pairs = [(i, j) for i in range(len(boxes)) for j in range(len(boxes)) if i != j and
                 min(boxes[i][2], boxes[j][2]) > max(boxes[i][0], boxes[j][0]) and
                 min(boxes[i][3], boxes[j][3]) > max(boxes[i][1], boxes[j][1])]
        if not pairs:
            pairs = [(i, j) for i in range(len(boxes)) for j in range(len(boxes)) if i != j]
        for i, j in pairs:
            bg[labels[i], labels[j]] += 1
    assert np.array_equal(stats["bg_matrix"].numpy(), bg)
    assert int(stats["fg_matrix"][:, :, 1:].sum()) == sum(len(r) for r in ds.relationships)
