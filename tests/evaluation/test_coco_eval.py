"""Detector AP through pycocotools with SGB's conventions, on cases with known answers."""
import numpy as np
import pytest


from sgg.evaluation import evaluate_detections

GT = [{"boxes": np.array([[0, 0, 9, 9], [30, 30, 59, 49]]), "labels": np.array([1, 1])},
      {"boxes": np.array([[10, 10, 39, 39]]), "labels": np.array([2])}]


def det(boxes, labels, scores):
    return {"boxes": np.array(boxes, dtype=np.float32).reshape(-1, 4), "labels": np.array(labels),
            "scores": np.array(scores, dtype=np.float32)}


def test_perfect_detections_give_ap_one(capsys):
    preds = [det(g["boxes"], g["labels"], [1.0] * len(g["labels"])) for g in GT]
    out = evaluate_detections(GT, preds, num_classes=4)
    assert out["mAP"] == pytest.approx(1.0) and out["AP50"] == out["mAP"] and out["AP"] == pytest.approx(1.0)
    assert set(out) == {"mAP", "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}
    assert capsys.readouterr().out == ""  # pycocotools' printing is captured


def test_one_of_two_gt_missed():
    # class 1: precision 1 up to recall 0.5, nothing after -> 51 of COCO's 101 recall points; class 2 has no GT
    preds = [det([[0, 0, 9, 9]], [1], [0.9]), det([], [], [])]
    out = evaluate_detections(GT[:1] + [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0)}], preds, num_classes=4)
    assert out["mAP"] == pytest.approx(51 / 101)


def test_false_positive_ranked_first_lowers_precision():
    preds = [det([[100, 100, 120, 120], [0, 0, 9, 9], [30, 30, 59, 49]], [1, 1, 1], [0.95, 0.9, 0.8]),
             det([[10, 10, 39, 39]], [2], [0.5])]
    out = evaluate_detections(GT, preds, num_classes=4)
    # class 1: precision 1/2 at recall .5 and 2/3 at recall 1 -> interpolated 2/3 everywhere; class 2: 1
    assert out["mAP"] == pytest.approx((2 / 3 + 1.0) / 2)


def test_boxes_use_the_plus_one_width():
    # [0,0,19,9] vs GT [0,0,9,9] is IoU 100/200 = 0.5 with +1 widths: a hit at 0.5, a miss from 0.55 on
    gt = [{"boxes": np.array([[0, 0, 9, 9]]), "labels": np.array([1])}]
    out = evaluate_detections(gt, [det([[0, 0, 19, 9]], [1], [1.0])], num_classes=2)
    assert out["AP50"] == pytest.approx(1.0) and out["AP75"] == 0.0
    assert out["AP"] == pytest.approx(0.1)  # 1 of the 10 IoU thresholds


def test_no_detections_at_all_gives_zero():
    out = evaluate_detections(GT, [det([], [], []), det([], [], [])], num_classes=4)
    assert out["mAP"] == 0.0 and out["AR100"] == 0.0


def test_mismatched_inputs_are_rejected():
    with pytest.raises(ValueError, match="2 ground truths but 1 predictions"):
        evaluate_detections(GT, [det([], [], [])], num_classes=4)
    with pytest.raises(ValueError, match="image 0: prediction field 'scores': missing"):
        evaluate_detections(GT[:1], [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0)}], num_classes=4)
