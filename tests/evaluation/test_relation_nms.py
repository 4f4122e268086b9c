"""The optional PE-Net-style relation NMS."""
import numpy as np
import pytest

from sgg.evaluation import SceneGraphEvaluator, relation_nms

# box 2 is a near-duplicate of box 0 (IoU 100/110 > 0.6) with the same class
BOXES = np.array([[0, 0, 9, 9], [20, 20, 29, 29], [0, 0, 9, 10]], dtype=np.float32)
LABELS = np.array([1, 2, 1])
PAIRS = np.array([[0, 1], [2, 1]])
REL = np.array([[0.0, 0.9, 0.5], [0.0, 0.8, 0.6]], dtype=np.float32)


def test_duplicate_pair_loses_the_predicate_of_the_stronger_pair():
    labels, scores = relation_nms(BOXES, LABELS, PAIRS, REL)
    # (0,1) keeps p1 (0.9); (2,1) overlaps it, so p1 is suppressed there and p2 (0.6) is kept
    assert labels.tolist() == [1, 2]
    assert scores.tolist() == pytest.approx([0.9, 0.6])


def test_different_classes_or_distant_boxes_are_not_suppressed():
    labels, _ = relation_nms(BOXES, np.array([1, 2, 3]), PAIRS, REL)
    assert labels.tolist() == [1, 1]
    far = BOXES.copy()
    far[2] += 100
    labels, _ = relation_nms(far, LABELS, PAIRS, REL)
    assert labels.tolist() == [1, 1]


def test_pair_with_every_predicate_suppressed_ranks_last():
    pairs = np.array([[0, 1], [2, 1], [0, 1]])
    rel = np.array([[0, 0.9, 0.5], [0, 0.8, 0.6], [0, 0.7, 0.0]], dtype=np.float32)
    labels, scores = relation_nms(BOXES, LABELS, pairs, rel)
    # third pair: p1 suppressed by the first pair, nothing else left
    assert scores[2] == 0.0 and labels.tolist()[:2] == [1, 2]


def test_nms_is_off_by_default_and_inflates_recall_when_on():
    gt = {"boxes": BOXES, "labels": LABELS, "relations": np.array([[0, 1, 1], [2, 1, 2]])}
    pred = {"boxes": BOXES, "labels": LABELS, "scores": np.ones(3), "rel_pair_idxs": PAIRS, "rel_scores": REL}
    results = {}
    for nms in (False, True):
        ev = SceneGraphEvaluator(mode="sgcls", num_predicates=3, ks=(2,), relation_nms=nms)
        ev.update(gt, pred)
        results[nms] = ev.compute()
    # without NMS both pairs say p1 and (2,1,p2) is never predicted; with NMS the duplicate switches to p2
    assert results[False]["R@2"] == 0.5 and results[True]["R@2"] == 1.0
    assert results[True]["settings"]["relation_nms"] is True
    assert SceneGraphEvaluator().relation_nms is False


def plain_greedy(boxes, labels, pairs, rel, thr=0.6):
    """The greedy suppression written directly over the full (pair, predicate) matrix, as in PE-Net's loop."""
    def iou(a, b):
        w = max(min(a[2], b[2]) - max(a[0], b[0]) + 1, 0)
        h = max(min(a[3], b[3]) - max(a[1], b[1]) + 1, 0)
        return w * h / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - w * h)

    def close(i, j):
        return labels[i] == labels[j] and iou(boxes[i], boxes[j]) >= thr

    work = rel[:, 1:].astype(np.float64).copy()
    done = np.zeros(len(pairs), dtype=bool)
    out_labels, out_scores = np.zeros(len(pairs), dtype=int), np.zeros(len(pairs))
    for _ in range(len(pairs)):
        masked = np.where(done[:, None], -1.0, work)
        p, c = np.unravel_index(np.argmax(masked), masked.shape)
        out_labels[p], out_scores[p] = c + 1, work[p, c]
        done[p] = True
        for q in range(len(pairs)):
            if not done[q] and close(pairs[p][0], pairs[q][0]) and close(pairs[p][1], pairs[q][1]):
                work[q, c] = 0.0
    return out_labels, out_scores


def test_matches_a_plain_greedy_loop_on_crowded_random_scenes():
    rng = np.random.default_rng(11)
    for _ in range(20):
        n = int(rng.integers(2, 9))
        xy = rng.integers(0, 8, size=(n, 2)).astype(np.float32)  # small jitter: many overlapping boxes
        boxes = np.column_stack([xy, xy + 20])
        labels = rng.integers(1, 3, size=n)
        pairs = rng.integers(0, n, size=(int(rng.integers(1, 25)), 2))
        rel = (rng.integers(0, 6, size=(len(pairs), 5)) / 5).astype(np.float32)  # ties included
        got_labels, got_scores = relation_nms(boxes, labels, pairs, rel)
        want_labels, want_scores = plain_greedy(boxes, labels, pairs, rel)
        assert got_labels.tolist() == want_labels.tolist()
        assert got_scores.tolist() == pytest.approx(want_scores.tolist())
