"""IoU conventions and triplet matching."""
import numpy as np
import pytest

from sgg.evaluation import SceneGraphEvaluator, box_iou, first_match_ranks, paired_iou
from sgg.evaluation.matching import NOT_MATCHED, first_match_ranks_of_lists, sorted_contains


def test_legacy_iou_counts_the_end_pixel():
    a = np.array([[0, 0, 9, 9]])      # 10 x 10 pixels with +1
    b = np.array([[0, 0, 19, 9]])     # 20 x 10
    assert box_iou(a, b, legacy=True)[0, 0] == 0.5           # 100 / 200
    assert box_iou(a, b, legacy=False)[0, 0] == pytest.approx(81 / 171)
    c = np.array([[5, 5, 14, 14]])    # overlap 5 x 5 with a
    assert box_iou(a, c)[0, 0] == pytest.approx(25 / 175)
    assert box_iou(a, np.array([[10, 10, 20, 20]]))[0, 0] == 0.0   # touching corners, no shared pixel
    assert box_iou(a, np.array([[9, 9, 20, 20]]))[0, 0] == pytest.approx(1 / (100 + 144 - 1))


def test_pairwise_and_paired_iou_agree():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, size=(6, 2))
    boxes = np.column_stack([xy, xy + rng.uniform(1, 30, size=(6, 2))])
    full = box_iou(boxes, boxes[::-1])
    assert box_iou(boxes, boxes).diagonal() == pytest.approx(np.ones(6))
    assert paired_iou(boxes, boxes[::-1]) == pytest.approx(full.diagonal())
    assert full.dtype == np.float32


def evaluate_one(gt_subject_box, pred_subject_box, legacy):
    gt = {"boxes": np.array([gt_subject_box, [50, 50, 59, 59]], dtype=np.float32), "labels": np.array([1, 2]),
          "relations": np.array([[0, 1, 1]])}
    pred = {"boxes": np.array([pred_subject_box, [50, 50, 59, 59]], dtype=np.float32), "labels": np.array([1, 2]),
            "scores": np.ones(2), "rel_pair_idxs": np.array([[0, 1]]), "rel_scores": np.array([[0.0, 1.0]])}
    ev = SceneGraphEvaluator(mode="sgdet", num_predicates=2, ks=(1,), legacy_iou=legacy)
    ev.update(gt, pred)
    return ev.compute()["R@1"]


def test_iou_exactly_at_threshold_matches_with_legacy_convention_only():
    # legacy IoU is exactly 0.5 (passes >= 0.5); continuous IoU is 81/171 < 0.5
    assert evaluate_one([0, 0, 9, 9], [0, 0, 19, 9], legacy=True) == 1.0
    assert evaluate_one([0, 0, 9, 9], [0, 0, 19, 9], legacy=False) == 0.0
    # one pixel more and legacy fails too: 100 / 210
    assert evaluate_one([0, 0, 9, 9], [0, 0, 20, 9], legacy=True) == 0.0


def test_one_prediction_matches_several_gt_and_first_rank_wins():
    gt_boxes = np.array([[0, 0, 9, 9], [20, 20, 29, 29], [0, 0, 9, 10]], dtype=np.float32)  # box 2 ~ box 0
    gt_labels = np.array([1, 2, 1])
    gt_rels = np.array([[0, 1, 3], [0, 1, 3], [2, 1, 3], [0, 1, 4]])
    pred_boxes = gt_boxes[:2]
    pred_labels = gt_labels[:2]
    pred_rels = np.array([[1, 0, 3],   # wrong direction
                          [0, 1, 3],   # matches GT 0, its duplicate 1 and GT 2 (IoU 100/110)
                          [0, 1, 4],   # matches GT 3
                          [0, 1, 3]])  # matches again, later: ranks stay at 1
    ranks = first_match_ranks(gt_rels, gt_boxes, gt_labels, pred_rels, pred_boxes, pred_labels)
    assert ranks.tolist() == [1, 1, 1, 2]


def test_labels_must_all_agree():
    boxes = np.array([[0, 0, 9, 9], [20, 20, 29, 29]], dtype=np.float32)
    gt_rels = np.array([[0, 1, 3]])
    for pred_labels, pred_rels in ((np.array([2, 2]), [[0, 1, 3]]),   # subject class differs
                                   (np.array([1, 1]), [[0, 1, 3]]),   # object class differs
                                   (np.array([1, 2]), [[0, 1, 2]])):  # predicate differs
        ranks = first_match_ranks(gt_rels, boxes, np.array([1, 2]), np.array(pred_rels), boxes, pred_labels)
        assert ranks.tolist() == [NOT_MATCHED]


def test_empty_inputs_give_unmatched():
    boxes = np.zeros((1, 4), dtype=np.float32)
    ranks = first_match_ranks(np.array([[0, 0, 1]]), boxes, np.array([1]), np.zeros((0, 3), dtype=np.int64),
                              boxes, np.array([1]))
    assert ranks.tolist() == [NOT_MATCHED]


def loop_first_matches(gt_rels, gt_boxes, gt_labels, rows, boxes, labels, phrdet):
    """The first matching position of each GT relation, written out with Python loops and float64 IoU."""
    def iou(a, b):
        w = max(min(a[2], b[2]) - max(a[0], b[0]) + 1, 0)
        h = max(min(a[3], b[3]) - max(a[1], b[1]) + 1, 0)
        return w * h / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - w * h)

    def union(a, b):
        return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]

    out = []
    for gs, go, gp in gt_rels.tolist():
        first = NOT_MATCHED
        for i, (s, o, p) in enumerate(rows.tolist()):
            if (labels[s], p, labels[o]) != (gt_labels[gs], gp, gt_labels[go]):
                continue
            if phrdet:
                ok = iou(union(boxes[s], boxes[o]), union(gt_boxes[gs], gt_boxes[go])) >= 0.5
            else:
                ok = iou(boxes[s], gt_boxes[gs]) >= 0.5 and iou(boxes[o], gt_boxes[go]) >= 0.5
            if ok:
                first = i
                break
        out.append(first)
    return out


@pytest.mark.parametrize("phrdet", [False, True])
def test_lists_matched_together_equal_a_loop_over_each_list(phrdet):
    rng = np.random.default_rng(11)
    matched = 0
    for _ in range(40):
        num_gt, num_pred = int(rng.integers(2, 7)), int(rng.integers(2, 9))
        xy = rng.uniform(0, 100, size=(num_gt, 2))
        gt_boxes = np.column_stack([xy, xy + rng.uniform(5, 40, size=(num_gt, 2))]).astype(np.float32)
        gt_labels = rng.integers(1, 3, size=num_gt)
        subj = rng.integers(0, num_gt, size=5)
        gt_rels = np.column_stack([subj, (subj + rng.integers(1, num_gt, size=5)) % num_gt, rng.integers(1, 3, 5)])
        # predicted objects: jittered GT boxes in shuffled order (so subject/object swaps and index mix-ups show)
        source = rng.integers(0, num_gt, size=num_pred)
        boxes = (gt_boxes[source] + rng.normal(0, 4, size=(num_pred, 4))).astype(np.float32)
        labels = np.where(rng.random(num_pred) < 0.8, gt_labels[source], 3 - gt_labels[source])
        lists = [np.column_stack([rng.integers(0, num_pred, size=n), rng.integers(0, num_pred, size=n),
                                  rng.integers(1, 3, size=n)]) for n in rng.integers(0, 30, size=3)]
        got = first_match_ranks_of_lists(gt_rels, gt_boxes, gt_labels, lists, boxes, labels, phrdet=phrdet)
        assert got.shape == (5, 3) and got.dtype == np.int32
        for column, rows in enumerate(lists):
            expected = loop_first_matches(gt_rels, gt_boxes, gt_labels, rows, boxes, labels, phrdet)
            assert got[:, column].tolist() == expected
            assert first_match_ranks(gt_rels, gt_boxes, gt_labels, rows, boxes, labels,
                                     phrdet=phrdet).tolist() == expected
            matched += sum(r != NOT_MATCHED for r in expected)
    assert matched > 20  # the data exercises matching, not only misses


def test_sorted_contains_equals_isin():
    rng = np.random.default_rng(2)
    table = np.unique(rng.integers(0, 1000, size=200))
    keys = np.concatenate([rng.integers(-10, 1010, size=300), table[[0, -1]], [-1, 5000]])
    assert sorted_contains(table, keys).tolist() == np.isin(keys, table).tolist()
    assert sorted_contains(table, keys).sum() > 50
    assert sorted_contains(np.zeros(0, dtype=np.int64), keys).tolist() == [False] * len(keys)
