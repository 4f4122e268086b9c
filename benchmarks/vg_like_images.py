"""VG-like random images for the evaluator benchmarks (bench_eval.py, bench_eval_vs_sgb.py): the ground truth and the
boxes a detector would give, drawn from a numpy ``Generator`` (each benchmark draws its scores after these)."""
import numpy as np

NUM_PREDICATES = 51
NUM_CLASSES = 151
WIDTH, HEIGHT = 800.0, 600.0


def random_groundtruth(rng):
    """6-18 GT boxes, 1-20 relations (about 6) with long-tailed predicates, roughly like VG150. Returns the GT mapping
    and its relations' subject, object and predicate columns."""
    num_gt = int(rng.integers(6, 19))
    xy = rng.uniform(0, [WIDTH - 40, HEIGHT - 40], size=(num_gt, 2))
    wh = rng.uniform(20, 300, size=(num_gt, 2))
    gt_boxes = np.column_stack([xy, np.minimum(xy + wh, [WIDTH - 1, HEIGHT - 1])]).astype(np.float32)
    gt_labels = rng.integers(1, NUM_CLASSES, size=num_gt)
    num_rel = int(np.clip(rng.poisson(6), 1, 20))
    subj = rng.integers(0, num_gt, size=num_rel)
    obj = (subj + rng.integers(1, num_gt, size=num_rel)) % num_gt
    weights = 1.0 / np.arange(1, NUM_PREDICATES) ** 1.5
    pred = rng.choice(np.arange(1, NUM_PREDICATES), size=num_rel, p=weights / weights.sum())
    gt = {"boxes": gt_boxes, "labels": gt_labels, "relations": np.column_stack([subj, obj, pred])}
    return gt, subj, obj, pred


def detected_boxes(rng, gt_boxes, num_boxes):
    """(num_boxes, 4) float32: a jittered copy of every GT box first (same order), then random boxes."""
    num_gt = len(gt_boxes)
    boxes = np.empty((num_boxes, 4), dtype=np.float32)
    boxes[:num_gt] = gt_boxes + rng.normal(0, 4, size=(num_gt, 4))
    xy = rng.uniform(0, [WIDTH - 40, HEIGHT - 40], size=(num_boxes - num_gt, 2))
    wh = rng.uniform(20, 300, size=(num_boxes - num_gt, 2))
    boxes[num_gt:] = np.column_stack([xy, xy + wh])
    return boxes


def ordered_pairs(num_boxes):
    """All (subject, object) index pairs with subject != object, subject-major; the pair (s, o) is at row
    ``s * (num_boxes - 1) + o - (o > s)``."""
    idx = np.arange(num_boxes)
    s, o = np.meshgrid(idx, idx, indexing="ij")
    off_diag = s != o
    return np.column_stack([s[off_diag], o[off_diag]])
