"""Each kind of bad input is a ValueError naming the image, the field and what was expected."""
import numpy as np
import pytest
import torch

from sgg.evaluation import SceneGraphEvaluator

C = 4


def good():
    gt = {"boxes": np.array([[0, 0, 9, 9], [20, 20, 29, 29]], dtype=np.float32), "labels": np.array([1, 2]),
          "relations": np.array([[0, 1, 1]])}
    pred = {"boxes": gt["boxes"].copy(), "labels": np.array([1, 2]), "scores": np.array([0.9, 0.8]),
            "rel_pair_idxs": np.array([[0, 1], [1, 0]]),
            "rel_scores": np.array([[0.1, 0.7, 0.1, 0.1], [0.4, 0.2, 0.2, 0.2]], dtype=np.float32)}
    return gt, pred


def check(pattern, mode="sgdet", gt_change=None, pred_change=None):
    gt, pred = good()
    gt.update(gt_change or {})
    pred.update(pred_change or {})
    for key in [k for k, v in {**gt, **pred}.items() if v is None]:
        gt.pop(key, None)
        pred.pop(key, None)
    ev = SceneGraphEvaluator(mode=mode, num_predicates=C)
    with pytest.raises(ValueError, match=pattern):
        ev.update(gt, pred, image_id=17)


def test_the_good_input_passes():
    gt, pred = good()
    ev = SceneGraphEvaluator(mode="sgdet", num_predicates=C)
    ev.update(gt, {k: torch.as_tensor(v) for k, v in pred.items()}, image_id=17)  # torch tensors work too
    assert ev.compute()["R@20"] == 1.0


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown evaluation mode 'preddet'; expected one of predcls, sgcls"):
        SceneGraphEvaluator(mode="preddet")


def test_missing_prediction_field():
    check(r"image 17: prediction field 'rel_scores': missing \(the mapping has: boxes, labels, rel_pair_idxs, "
          r"scores\)", pred_change={"rel_scores": None})


def test_missing_groundtruth_field():
    check("image 17: groundtruth field 'relations': missing", gt_change={"relations": None})


def test_object_fields_are_required_outside_predcls():
    check("image 17: prediction field 'scores': missing", mode="sgcls", pred_change={"scores": None})


def test_labels_disagree_with_boxes():
    check(r"image 17: prediction field 'labels': expected shape \(2,\) like boxes, got \(3,\)",
          pred_change={"labels": np.array([1, 2, 3])})


def test_rel_scores_rows_disagree_with_pairs():
    check(r"image 17: prediction field 'rel_scores': expected shape \(2, 4\), one row per rel_pair_idxs row, "
          r"got \(3, 4\)", pred_change={"rel_scores": np.full((3, C), 0.25, dtype=np.float32)})


def test_boxes_not_xyxy():
    check(r"image 17: groundtruth field 'boxes': expected shape \(N, 4\) xyxy, got \(2, 5\)",
          gt_change={"boxes": np.zeros((2, 5))})


def test_relations_not_triplets():
    check(r"image 17: groundtruth field 'relations': expected shape \(R, 3\)",
          gt_change={"relations": np.zeros((1, 2))})


def test_pair_index_outside_the_boxes():
    check(r"image 17: prediction field 'rel_pair_idxs': index 2 is outside the 2 predicted boxes \(expected 0..1\)",
          pred_change={"rel_pair_idxs": np.array([[0, 1], [2, 0]])})
    check("image 17: prediction field 'rel_pair_idxs': index -1 is outside",
          pred_change={"rel_pair_idxs": np.array([[0, 1], [-1, 0]])})


def test_predcls_pair_index_outside_the_gt_boxes():
    check("image 17: prediction field 'rel_pair_idxs': index 5 is outside the 2 ground-truth boxes", mode="predcls",
          pred_change={"rel_pair_idxs": np.array([[0, 1], [5, 0]])})


def test_gt_relation_index_outside_the_boxes():
    check("image 17: groundtruth field 'relations': index 3 is outside the 2 ground-truth boxes",
          gt_change={"relations": np.array([[0, 3, 1]])})


def test_nan_scores():
    rel = good()[1]["rel_scores"].copy()
    rel[1, 2] = np.nan
    check("image 17: prediction field 'rel_scores': expected non-negative scores, found NaN",
          pred_change={"rel_scores": rel})
    check("image 17: prediction field 'scores': expected non-negative scores, found NaN",
          pred_change={"scores": np.array([np.nan, 0.5])})


def test_negative_scores():
    rel = good()[1]["rel_scores"].copy()
    rel[0, 3] = -0.25
    check("image 17: prediction field 'rel_scores': expected non-negative scores, found -0.25",
          pred_change={"rel_scores": rel})
    check("image 17: prediction field 'scores': expected non-negative scores, found -1.0",
          pred_change={"scores": np.array([-1.0, 0.5])})


def test_infinite_scores_and_nan_boxes():
    check("image 17: prediction field 'scores': expected finite scores, found infinity",
          pred_change={"scores": np.array([np.inf, 0.5])})
    check("image 17: prediction field 'boxes': expected finite values",
          pred_change={"boxes": np.array([[0, 0, np.nan, 9], [20, 20, 29, 29]])})


def test_predicate_dimension_differs_from_num_predicates():
    check(r"image 17: prediction field 'rel_scores': expected shape \(P, 4\) with num_predicates=4 \(column 0 "
          r"background\), got \(2, 51\)", pred_change={"rel_scores": np.full((2, 51), 0.01, dtype=np.float32)})


def test_gt_predicate_outside_the_predicate_range():
    check(r"image 17: groundtruth field 'relations': predicate labels must lie in 1..3 \(0 is background\), got 0..0",
          gt_change={"relations": np.array([[0, 1, 0]])})


def test_non_integer_labels():
    check("image 17: prediction field 'labels': expected integer values, got dtype float64",
          pred_change={"labels": np.array([1.5, 2.0])})


def test_the_same_image_twice():
    gt, pred = good()
    ev = SceneGraphEvaluator(mode="sgdet", num_predicates=C)
    ev.update(gt, pred, image_id=17)
    with pytest.raises(ValueError, match="image 17 was evaluated twice"):
        ev.update(gt, pred, image_id=17)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="predicate_names has 2 names, expected num_predicates=4"):
        SceneGraphEvaluator(num_predicates=4, predicate_names=["__background__", "on"])
    with pytest.raises(ValueError, match="predicate_counts has 3 entries, expected 4"):
        SceneGraphEvaluator(num_predicates=4, predicate_counts=[1, 2, 3])
    with pytest.raises(ValueError, match="ks must be positive"):
        SceneGraphEvaluator(ks=(0, 20))
