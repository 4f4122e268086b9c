"""Shared pieces of the evaluator tests: random scene graph images and the real VG150 label files."""
import json
import os

import numpy as np
import pytest

VG_DIR = "/work/shared/data/vg150"
DICT_FILE = os.path.join(VG_DIR, "VG-SGG-dicts-with-attri.json")
ZEROSHOT_FILE = os.path.join(VG_DIR, "zeroshot_triplet.pytorch")


def random_image(rng, num_gt=5, num_pred=8, num_rel=5, num_predicates=11, num_classes=4, jitter=3.0,
                 all_pairs=True):
    """A random image whose predicted boxes partly overlap the GT boxes, so that some triplets match.

    Scores are continuous random numbers, so rankings have no ties.
    """
    xy = rng.uniform(0, 200, size=(num_gt, 2))
    gt_boxes = np.column_stack([xy, xy + rng.uniform(10, 60, size=(num_gt, 2))])
    gt_labels = rng.integers(1, num_classes, size=num_gt)
    subj = rng.integers(0, num_gt, size=num_rel)
    obj = (subj + rng.integers(1, num_gt, size=num_rel)) % num_gt
    pred = rng.integers(1, num_predicates, size=num_rel)
    gt = {"boxes": gt_boxes, "labels": gt_labels, "relations": np.column_stack([subj, obj, pred])}
    boxes = np.empty((num_pred, 4))
    n = min(num_gt, num_pred)
    boxes[:n] = gt_boxes[:n] + rng.normal(0, jitter, size=(n, 4))
    if num_pred > n:
        xy = rng.uniform(0, 200, size=(num_pred - n, 2))
        boxes[n:] = np.column_stack([xy, xy + rng.uniform(10, 60, size=(num_pred - n, 2))])
    labels = rng.integers(1, num_classes, size=num_pred)
    labels[:n] = np.where(rng.random(n) < 0.8, gt_labels[:n], labels[:n])
    if all_pairs:
        s, o = np.nonzero(~np.eye(num_pred, dtype=bool))
        pairs = np.column_stack([s, o])
    else:
        pairs = rng.integers(0, num_pred, size=(num_pred * 3, 2))
    rel = rng.random((len(pairs), num_predicates)) ** 3
    if all_pairs:  # half of the GT relations get a boost on their predicted pair (box i is a copy of GT box i)
        for s_, o_, p_ in gt["relations"]:
            if s_ < num_pred and o_ < num_pred and rng.random() < 0.5:
                rel[s_ * (num_pred - 1) + o_ - (o_ > s_), p_] += rng.uniform(0.5, 2.0)
    rel /= rel.sum(axis=1, keepdims=True)
    prediction = {"boxes": boxes, "labels": labels, "scores": rng.uniform(0.1, 1.0, size=num_pred),
                  "rel_pair_idxs": pairs, "rel_scores": rel.astype(np.float32)}
    return gt, prediction


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def vg_predicate_names():
    if not os.path.exists(DICT_FILE):
        raise FileNotFoundError(f"{DICT_FILE} is missing: the tests read the real VG150 files from ../shared")
    with open(DICT_FILE) as f:
        idx_to_predicate = json.load(f)["idx_to_predicate"]
    return ["__background__"] + [idx_to_predicate[str(i)] for i in range(1, len(idx_to_predicate) + 1)]


@pytest.fixture(scope="session")
def vg_zeroshot():
    if not os.path.exists(ZEROSHOT_FILE):
        raise FileNotFoundError(f"{ZEROSHOT_FILE} is missing: the tests read the real VG150 files from ../shared")
    import torch

    return torch.load(ZEROSHOT_FILE, map_location="cpu").long().numpy()


@pytest.fixture(scope="session")
def make_image():
    """The :func:`random_image` factory (a fixture, so test files need not import this conftest)."""
    return random_image
