"""benchmarks/sgdet_entity_reach.py: which GT triplets an SGDet run's detections can reach, counted by hand."""
import importlib.util
import os

import numpy as np

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks", "sgdet_entity_reach.py")
spec = importlib.util.spec_from_file_location("sgdet_entity_reach", PATH)
reach = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reach)

# three GT objects: 0 (label 1) at 0-10, 1 (label 2) at 20-30, 2 (label 1) at 40-50; squares of side 10
GT_BOXES = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]
GT_LABELS = [1, 2, 1]
RELATIONS = [[0, 1, 3], [1, 2, 4], [2, 0, 5], [0, 1, 6]]  # the pair (0, 1) twice, as the test split keeps it


def test_a_triplet_needs_both_ends_matched_with_label_and_iou():
    # object 0 found exactly; object 1 found with IoU 8/12 = 0.667; object 2 found with the wrong label
    pred_boxes = [[0, 0, 10, 10], [22, 0, 30, 10], [40, 0, 50, 10]]
    assert reach.reached_triplets(GT_BOXES, GT_LABELS, RELATIONS, pred_boxes, [1, 2, 2]) == 2  # (0, 1) twice
    # with the right label for object 2 every triplet is reached
    assert reach.reached_triplets(GT_BOXES, GT_LABELS, RELATIONS, pred_boxes, [1, 2, 1]) == 4


def test_iou_threshold_is_inclusive_and_applied_to_both_ends():
    # object 1 covered with IoU exactly 0.5 without the +1 convention (box 25-30 inside 20-30: 5 / 10)
    pred_boxes = [[0, 0, 10, 10], [25, 0, 30, 10]]
    assert reach.reached_triplets(GT_BOXES, GT_LABELS, [[0, 1, 3]], pred_boxes, [1, 2], legacy_iou=False) == 1
    assert reach.reached_triplets(GT_BOXES, GT_LABELS, [[0, 1, 3]], pred_boxes, [1, 2], iou_threshold=0.51,
                                  legacy_iou=False) == 0
    # a subject found but not its object (IoU 4/10 = 0.4) is not reached, in either direction
    assert reach.reached_triplets(GT_BOXES, GT_LABELS, [[0, 1, 3], [1, 0, 3]], [[0, 0, 10, 10], [26, 0, 30, 10]],
                                  [1, 2], legacy_iou=False) == 0


def test_the_evaluators_legacy_iou_is_the_default():
    # maskrcnn's +1 pixel convention: box 25-30 in 20-30 gives (6 x 11) / (11 x 11) = 0.545 instead of 0.5
    pred_boxes = [[0, 0, 10, 10], [25, 0, 30, 10]]
    assert reach.reached_triplets(GT_BOXES, GT_LABELS, [[0, 1, 3]], pred_boxes, [1, 2], iou_threshold=0.54) == 1
    assert reach.reached_triplets(GT_BOXES, GT_LABELS, [[0, 1, 3]], pred_boxes, [1, 2], iou_threshold=0.55) == 0
    assert reach.reached_triplets(GT_BOXES, GT_LABELS, [[0, 1, 3]], pred_boxes, [1, 2], iou_threshold=0.54,
                                  legacy_iou=False) == 0


def test_one_box_cannot_be_both_ends():
    # two GT objects of one label on top of each other, one detection covering both
    gt_boxes, gt_labels = [[0, 0, 10, 10], [0, 0, 10, 9]], [1, 1]
    assert reach.reached_triplets(gt_boxes, gt_labels, [[0, 1, 3]], [[0, 0, 10, 10]], [1]) == 0
    assert reach.reached_triplets(gt_boxes, gt_labels, [[0, 1, 3]], [[0, 0, 10, 10], [0, 0, 10, 9]], [1, 1]) == 1


def test_empty_inputs():
    assert reach.reached_triplets(GT_BOXES, GT_LABELS, np.zeros((0, 3)), [[0, 0, 10, 10]], [1]) == 0
    assert reach.reached_triplets(GT_BOXES, GT_LABELS, RELATIONS, np.zeros((0, 4)), []) == 0
