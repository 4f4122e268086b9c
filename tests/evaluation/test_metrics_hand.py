"""Hand-computed values for every metric (numbers worked out in the comments)."""
import math

import numpy as np
import pytest

from sgg.evaluation import SceneGraphEvaluator, split_head_body_tail

C = 6  # background + predicates 1..5
BOXES = np.array([[0, 0, 9, 9], [20, 20, 29, 29], [40, 40, 49, 49]], dtype=np.float32)
LABELS = np.array([1, 2, 3])


def prediction(rows, num_boxes=3, scores=None):
    """rows: list of (subject, object, {predicate: score}); object scores 1 unless given."""
    pairs = np.array([[s, o] for s, o, _ in rows], dtype=np.int64).reshape(-1, 2)
    rel = np.zeros((len(rows), C), dtype=np.float32)
    for i, (_, _, scores_by_pred) in enumerate(rows):
        for p, v in scores_by_pred.items():
            rel[i, p] = v
    return {"boxes": BOXES[:num_boxes], "labels": LABELS[:num_boxes],
            "scores": np.ones(num_boxes, dtype=np.float32) if scores is None else np.asarray(scores),
            "rel_pair_idxs": pairs, "rel_scores": rel}


# Image A: GT (0,1,p1) twice (duplicate), (1,2,p2), (0,2,p3).
GT_A = {"boxes": BOXES, "labels": LABELS, "relations": np.array([[0, 1, 1], [0, 1, 1], [1, 2, 2], [0, 2, 3]])}
# graph list: (0,1,p1) .9 | (0,2,p4) .6 | (1,2,p2) .5      -> GT ranks 0, 0, 2, never
# ng list:    (0,1,p1) .9 | (0,2,p4) .6 | (1,2,p2) .5 | (0,2,p3) .3  -> GT ranks 0, 0, 2, 3
PRED_A = prediction([(0, 1, {1: 0.9}), (1, 2, {2: 0.5}), (0, 2, {4: 0.6, 3: 0.3})])
# Image B: GT (0,1,p1), (1,2,p3); graph = ng list: (1,2,p3) .8 | (0,1,p1) .2 -> GT ranks 1, 0
GT_B = {"boxes": BOXES, "labels": LABELS, "relations": np.array([[0, 1, 1], [1, 2, 3]])}
PRED_B = prediction([(0, 1, {1: 0.2}), (1, 2, {3: 0.8})])
# Image C has no GT relation: skipped everywhere.
GT_C = {"boxes": BOXES, "labels": LABELS, "relations": np.zeros((0, 3), dtype=np.int64)}


def evaluate_ab(**kwargs):
    ev = SceneGraphEvaluator(mode="sgdet", num_predicates=C, ks=(1, 2, 4), **kwargs)
    ev.update(GT_A, PRED_A, image_id="A")
    ev.update(GT_B, PRED_B, image_id="B")
    ev.update(GT_C, PRED_B, image_id="C")
    return ev.compute()


def test_recall_counts_duplicate_gt_and_averages_per_image():
    r = evaluate_ab()
    assert r["num_images"] == 2 and r["num_gt_relations"] == 6
    # A: 2/4, 2/4, 3/4; B: 1/2, 2/2, 2/2
    assert r["R@1"] == pytest.approx((0.5 + 0.5) / 2)
    assert r["R@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert r["R@4"] == pytest.approx((0.75 + 1.0) / 2)


def test_no_graph_constraint_recall_uses_second_predicates():
    r = evaluate_ab()
    # A: 2/4, 2/4, 4/4 (the second predicate p3 of pair (0,2) at position 3); B: 1/2, 1, 1
    assert r["ngR@1"] == pytest.approx(0.5)
    assert r["ngR@2"] == pytest.approx(0.75)
    assert r["ngR@4"] == pytest.approx(1.0)


def test_mean_recall_per_image_then_per_predicate_absent_predicates_count_zero():
    r = evaluate_ab()
    # @1: p1 = mean(A 2/2, B 0/1) = .5, p2 = A 0/1 = 0, p3 = mean(A 0/1, B 1/1) = .5, p4 = p5 = 0 (absent)
    assert r["mR@1"] == pytest.approx((0.5 + 0 + 0.5) / 5)
    # @2: p1 = mean(1, 1) = 1, p2 = 0, p3 = mean(0, 1) = .5
    assert r["mR@2"] == pytest.approx(1.5 / 5)
    # @4: p1 = 1, p2 = 1, p3 = .5
    assert r["mR@4"] == pytest.approx(2.5 / 5)
    assert r["per_predicate"]["R@4"] == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])
    assert r["per_predicate"]["num_images"] == [2, 1, 2, 0, 0]
    assert r["per_predicate"]["gt_count"] == [3, 1, 2, 0, 0]
    # ng @4: every GT is found -> p1 = p2 = p3 = 1
    assert r["ngmR@4"] == pytest.approx(3 / 5)
    assert r["ngmR@2"] == pytest.approx(1.5 / 5)


def test_zero_shot_recall_averages_only_images_with_zero_shot_gt():
    # (subject class 1, object class 3, predicate 3) is A's GT (0,2,p3); B has no zero-shot GT
    r = evaluate_ab(zeroshot_triplets=np.array([[1, 3, 3], [3, 3, 5]]))
    assert r["num_zero_shot_images"] == 1
    assert [r[f"zR@{k}"] for k in (1, 2, 4)] == [0.0, 0.0, 0.0]  # graph list never has (0,2,p3)
    assert [r[f"ngzR@{k}"] for k in (1, 2, 4)] == [0.0, 0.0, 1.0]  # ng list has it at position 3


def test_zero_shot_recall_is_nan_without_zero_shot_images():
    r = evaluate_ab()
    assert math.isnan(r["zR@1"]) and math.isnan(r["ngzR@4"])


def test_f_at_k_is_harmonic_mean_of_recall_and_mean_recall():
    r = evaluate_ab()
    R, mR = 0.875, 0.5
    assert r["F@4"] == pytest.approx(2 * R * mR / (R + mR))
    assert r["ngF@4"] == pytest.approx(2 * 1.0 * 0.6 / 1.6)


def test_f_at_k_is_zero_when_both_are_zero():
    gt = {"boxes": BOXES, "labels": LABELS, "relations": np.array([[0, 1, 1]])}
    ev = SceneGraphEvaluator(mode="sgdet", num_predicates=C, ks=(1,))
    ev.update(gt, prediction([(0, 1, {2: 0.9})]))
    r = ev.compute()
    assert r["R@1"] == 0.0 and r["mR@1"] == 0.0 and r["F@1"] == 0.0


def test_head_body_tail_mean_recall_from_training_counts():
    # sorted by count: p1, p2 | p3, p4 | p5  (thirds of 5 predicates: 2 / 2 / 1)
    r = evaluate_ab(predicate_counts=[0, 100, 50, 10, 5, 1])
    assert r["predicate_groups"] == {"head": [1, 2], "body": [3, 4], "tail": [5]}
    assert r["head_mR@4"] == pytest.approx(1.0)
    assert r["body_mR@4"] == pytest.approx(0.25)
    assert r["tail_mR@4"] == 0.0
    assert r["head_ngmR@4"] == pytest.approx(1.0) and r["body_ngmR@4"] == pytest.approx(0.5)


def test_split_head_body_tail_rules():
    counts = [7, 20000, 10000, 600, 500, 499, 499]
    assert split_head_body_tail(counts) == {"head": [1, 2], "body": [3, 4], "tail": [5, 6]}
    assert split_head_body_tail(counts, rule="thresholds") == {"head": [1], "body": [2, 3, 4], "tail": [5, 6]}
    # ties keep index order; background (index 0) never appears
    assert split_head_body_tail([10**6, 1, 1, 1]) == {"head": [1], "body": [2], "tail": [3]}
    sizes = [len(v) for v in split_head_body_tail(np.arange(51)).values()]
    assert sizes == [17, 17, 16]
    with pytest.raises(ValueError, match="unknown head/body/tail rule"):
        split_head_body_tail(counts, rule="quartiles")


def test_pair_accuracy_is_sum_of_hits_over_sum_of_counts():
    # image 1 (sgcls): (2,0) is not a GT pair, so it takes graph rank 0 but is absent from the accuracy list
    gt1 = {"boxes": BOXES, "labels": LABELS, "relations": np.array([[0, 1, 1], [1, 2, 2]])}
    pred1 = prediction([(2, 0, {5: 0.95}), (0, 1, {1: 0.9}), (1, 2, {3: 0.8})])
    # image 2: four GT relations on pair (0,1) / (1,2), one predicted right at accuracy rank 0
    gt2 = {"boxes": BOXES, "labels": LABELS,
           "relations": np.array([[0, 1, 1], [0, 1, 2], [1, 2, 3], [1, 2, 4]])}
    pred2 = prediction([(1, 2, {3: 0.7}), (0, 1, {5: 0.6})])
    ev = SceneGraphEvaluator(mode="sgcls", num_predicates=C, ks=(1, 2, 3))
    ev.update(gt1, pred1, image_id=1)
    ev.update(gt2, pred2, image_id=2)
    r = ev.compute()
    # graph: image 1 ranks GT (0,1,p1) at 1, GT (1,2,p2) never -> 0, .5, .5; image 2 -> 1/4 from K=1
    assert [r["R@1"], r["R@2"]] == pytest.approx([(0 + 0.25) / 2, (0.5 + 0.25) / 2])
    # accuracy list of image 1: (0,1,p1), (1,2,p3) -> 1 hit at K=1; image 2: 1 hit. A = (1+1)/(2+4)
    assert r["A@1"] == pytest.approx(2 / 6)
    assert r["A@3"] == pytest.approx(2 / 6)


def test_pair_accuracy_only_for_gt_box_modes():
    assert "A@4" not in evaluate_ab()


def test_image_with_gt_but_no_predicted_pair_counts_recall_zero():
    ev = SceneGraphEvaluator(mode="sgdet", num_predicates=C, ks=(1, 2, 4))
    ev.update(GT_B, PRED_B, image_id="B")
    ev.update(GT_A, prediction([]), image_id="A")
    r = ev.compute()
    assert r["num_images"] == 2
    assert r["R@4"] == pytest.approx((1.0 + 0.0) / 2)
    assert r["mR@4"] == pytest.approx((0.5 + 0 + 0.5) / 5)


def test_predcls_substitutes_gt_boxes_labels_and_unit_object_scores():
    # predicted boxes/labels/scores are garbage and ignored; without the substitution the object scores would
    # put pair (1,2) first (0.9 * 0.9 * 0.5 > 0.1 * 0.1 * 0.9)
    pred = prediction([(0, 1, {1: 0.9}), (1, 2, {2: 0.5})], scores=[0.1, 0.9, 0.9])
    pred["boxes"] = pred["boxes"] + 100
    pred["labels"] = np.array([5, 5, 5])
    gt = {"boxes": BOXES, "labels": LABELS, "relations": np.array([[0, 1, 1], [1, 2, 2]])}
    ev = SceneGraphEvaluator(mode="predcls", num_predicates=C, ks=(1, 2))
    ev.update(gt, pred)
    r = ev.compute()
    assert r["R@1"] == pytest.approx(0.5) and r["R@2"] == pytest.approx(1.0)
    # the object fields may also be left out in predcls
    ev2 = SceneGraphEvaluator(mode="predcls", num_predicates=C, ks=(1, 2))
    ev2.update(gt, {k: pred[k] for k in ("rel_pair_idxs", "rel_scores")})
    assert ev2.compute()["R@1"] == pytest.approx(0.5)


def test_object_scores_enter_the_ranking_in_sgdet():
    # 0.1 * 1 * 0.9 = 0.09 < 1 * 1 * 0.5: pair (1,2) now comes first
    pred = prediction([(0, 1, {1: 0.9}), (1, 2, {2: 0.5})], scores=[0.1, 1.0, 1.0])
    gt = {"boxes": BOXES, "labels": LABELS, "relations": np.array([[0, 1, 1]])}
    ev = SceneGraphEvaluator(mode="sgdet", num_predicates=C, ks=(1, 2))
    ev.update(gt, pred)
    r = ev.compute()
    assert (r["R@1"], r["R@2"]) == (0.0, 1.0)


def test_phrase_detection_matches_union_boxes():
    # subject box shifted so its own IoU is < .5, but the union box of the pair still overlaps >= .5
    gt = {"boxes": np.array([[0, 0, 9, 9], [0, 0, 99, 99]], dtype=np.float32), "labels": np.array([1, 2]),
          "relations": np.array([[0, 1, 1]])}
    pred = {"boxes": np.array([[10, 10, 19, 19], [0, 0, 99, 99]], dtype=np.float32), "labels": np.array([1, 2]),
            "scores": np.ones(2, dtype=np.float32), "rel_pair_idxs": np.array([[0, 1]]),
            "rel_scores": np.array([[0, 1, 0, 0, 0, 0]], dtype=np.float32)}
    for mode, expected in (("sgdet", 0.0), ("phrdet", 1.0)):
        ev = SceneGraphEvaluator(mode=mode, num_predicates=C, ks=(1,))
        ev.update(gt, pred)
        assert ev.compute()["R@1"] == expected, mode


def test_no_images_gives_nan_recall_and_zero_mean_recall():
    r = SceneGraphEvaluator(mode="predcls", num_predicates=C, ks=(5,)).compute()
    assert r["num_images"] == 0 and math.isnan(r["R@5"]) and r["mR@5"] == 0.0 and math.isnan(r["A@5"])
