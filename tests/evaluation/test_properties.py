"""Properties of the evaluator, and a cross-check against a slow loop-based reimplementation of SGB's algorithm."""
import pickle

import numpy as np
import pytest

from sgg.evaluation import SceneGraphEvaluator, stable_topk
from sgg.evaluation.ranking import foreground_max, gt_pair_mask, rank_relations

C = 11
KS = (3, 10, 25)


def reference_metrics(images, mode, ks, num_predicates, zeroshot=()):
    """SGB's evaluation written out with plain loops (PROTOCOL.md 2.1-2.3), independent of the package."""
    def iou(a, b):
        w = max(min(a[2], b[2]) - max(a[0], b[0]) + 1, 0)
        h = max(min(a[3], b[3]) - max(a[1], b[1]) + 1, 0)
        inter = w * h
        union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
        return inter / union

    zeroshot = {tuple(int(v) for v in t) for t in zeroshot}
    recall = {k: [] for k in ks}
    ng_recall = {k: [] for k in ks}
    zs_recall = {k: [] for k in ks}
    ng_zs_recall = {k: [] for k in ks}
    collect = {k: [[] for _ in range(num_predicates)] for k in ks}
    ng_collect = {k: [[] for _ in range(num_predicates)] for k in ks}
    acc_hit, acc_count = {k: 0 for k in ks}, {k: 0 for k in ks}
    for gt, pred in images:
        gt_rels = [tuple(int(v) for v in r) for r in gt["relations"]]
        if not gt_rels:
            continue
        gt_boxes, gt_labels = gt["boxes"].tolist(), gt["labels"].tolist()
        if mode == "predcls":
            boxes, labels, scores = gt_boxes, gt_labels, [1.0] * len(gt_labels)
        else:
            boxes, labels, scores = pred["boxes"].tolist(), pred["labels"].tolist(), pred["scores"].tolist()
        pairs = pred["rel_pair_idxs"].tolist()
        rel = pred["rel_scores"].tolist()

        def matches(s, o, p):
            found = []
            for g, (gs, go, gp) in enumerate(gt_rels):
                if (labels[s], p, labels[o]) != (gt_labels[gs], gp, gt_labels[go]):
                    continue
                if iou(boxes[s], gt_boxes[gs]) >= 0.5 and iou(boxes[o], gt_boxes[go]) >= 0.5:
                    found.append(g)
            return found

        graph = []
        for (s, o), row in zip(pairs, rel):
            best = max(range(1, num_predicates), key=lambda c: row[c])
            graph.append((scores[s] * scores[o] * row[best], s, o, best))
        graph.sort(key=lambda t: -t[0])
        pred_to_gt = [matches(s, o, p) for _, s, o, p in graph]
        entries = [(scores[s] * scores[o] * row[c], s, o, c)
                   for (s, o), row in zip(pairs, rel) for c in range(1, num_predicates)]
        entries.sort(key=lambda t: -t[0])
        ng_pred_to_gt = [matches(s, o, p) for _, s, o, p in entries[:max(ks)]]
        zs_idx = {g for g, (gs, go, gp) in enumerate(gt_rels) if (gt_labels[gs], gt_labels[go], gp) in zeroshot}
        gt_pairs = {(gs, go) for gs, go, _ in gt_rels}
        in_gt_pair = [m for m, (_, s, o, _) in zip(pred_to_gt, graph) if (s, o) in gt_pairs]
        for k in ks:
            for p2g, rec, zrec, coll in ((pred_to_gt, recall, zs_recall, collect),
                                         (ng_pred_to_gt, ng_recall, ng_zs_recall, ng_collect)):
                hit = set()
                for m in p2g[:k]:
                    hit.update(m)
                rec[k].append(len(hit) / len(gt_rels))
                if zs_idx:
                    zrec[k].append(len(hit & zs_idx) / len(zs_idx))
                for c in range(1, num_predicates):
                    of_c = [g for g, r in enumerate(gt_rels) if r[2] == c]
                    if of_c:
                        coll[k][c].append(sum(1 for g in of_c if g in hit) / len(of_c))
            hit = set()
            for m in in_gt_pair[:k]:
                hit.update(m)
            acc_hit[k] += len(hit)
            acc_count[k] += len(gt_rels)
    out = {}
    for k in ks:
        out[f"R@{k}"] = float(np.mean(recall[k]))
        out[f"ngR@{k}"] = float(np.mean(ng_recall[k]))
        out[f"zR@{k}"] = float(np.mean(zs_recall[k])) if zs_recall[k] else float("nan")
        out[f"ngzR@{k}"] = float(np.mean(ng_zs_recall[k])) if ng_zs_recall[k] else float("nan")
        out[f"mR@{k}"] = sum(float(np.mean(v)) if v else 0.0 for v in collect[k][1:]) / (num_predicates - 1)
        out[f"ngmR@{k}"] = sum(float(np.mean(v)) if v else 0.0 for v in ng_collect[k][1:]) / (num_predicates - 1)
        if mode in ("predcls", "sgcls"):
            out[f"A@{k}"] = acc_hit[k] / acc_count[k]
    return out


def make_images(make_image, rng, n=25, **kwargs):
    return [make_image(rng, num_predicates=C, **kwargs) for _ in range(n)]


@pytest.mark.parametrize("mode, num_pred, n", [("predcls", 5, 30), ("sgcls", 5, 30), ("sgdet", 8, 30),
                                               ("sgdet", 40, 4)])  # 1,560 pairs: the large-input code paths
def test_matches_independent_reference_implementation(make_image, rng, mode, num_pred, n):
    images = make_images(make_image, rng, n=n, num_gt=5, num_pred=num_pred, num_rel=6)
    if num_pred > 8:  # among 1,560 pairs the boosted GT pairs need confident boxes (the GT copies) to reach top K
        for _, pred in images:
            pred["scores"][:5] = rng.uniform(0.9, 1.0, size=5)
    if mode != "sgdet":
        for gt, pred in images:  # GT boxes in dataloader order, as SGB's sgcls assumes
            pred["boxes"] = gt["boxes"].copy()
    zeroshot = np.array([[gt["labels"][r[0]], gt["labels"][r[1]], r[2]] for gt, _ in images[:8]
                         for r in gt["relations"][:1]])
    expected = reference_metrics(images, mode, KS, C, zeroshot)
    ev = SceneGraphEvaluator(mode=mode, num_predicates=C, ks=KS, zeroshot_triplets=zeroshot)
    for i, (gt, pred) in enumerate(images):
        ev.update(gt, pred, image_id=i)
    got = ev.compute()
    assert got["R@25"] > 0.1 and got["ngR@25"] > 0.1  # the data must exercise matching
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_perfect_predictions_score_one_everywhere():
    rng = np.random.default_rng(7)
    for mode in ("predcls", "sgcls", "sgdet"):
        ev = SceneGraphEvaluator(mode=mode, num_predicates=C, ks=(5, 10), predicate_counts=np.arange(C),
                                 zeroshot_triplets=np.array([[1, 2, 3]]))
        for i in range(10):
            n = 6
            boxes = np.column_stack([np.arange(n) * 20, np.zeros(n), np.arange(n) * 20 + 15, np.full(n, 15)])
            labels = rng.integers(1, 4, size=n)
            labels[:2] = [1, 2]
            s, o = np.nonzero(~np.eye(n, dtype=bool))
            chosen = rng.choice(np.arange(1, len(s)), size=5, replace=False)  # row 0 is pair (0, 1)
            rels = np.column_stack([s[chosen], o[chosen], rng.integers(1, C, size=5)])
            rels[0] = [0, 1, 3]  # a zero-shot triplet in every image
            gt = {"boxes": boxes, "labels": labels, "relations": rels}
            rel_scores = np.zeros((len(s), C), dtype=np.float32)
            rel_scores[:, 0] = 1.0
            for a, b, p in rels:
                rel_scores[a * (n - 1) + b - (b > a), p] = 0.9
            pred = {"boxes": boxes, "labels": labels, "scores": np.ones(n), "rel_pair_idxs": np.column_stack([s, o]),
                    "rel_scores": rel_scores}
            ev.update(gt, pred, image_id=i)
        r = ev.compute()
        per_pred = [v for v, c in zip(r["per_predicate"]["R@5"], r["per_predicate"]["gt_count"]) if c]
        assert per_pred == [1.0] * len(per_pred)
        for key in ("R@5", "ngR@10", "zR@5", "ngzR@5"):
            assert r[key] == 1.0, (mode, key)
        if mode != "sgdet":
            assert r["A@5"] == 1.0
        assert r["mR@5"] == pytest.approx(len(per_pred) / (C - 1))  # predicates absent from the data count 0
        assert r["F@5"] == pytest.approx(2 * r["mR@5"] / (1 + r["mR@5"]))


def test_permuting_pairs_and_boxes_and_images_changes_nothing(make_image, rng):
    images = make_images(make_image, rng)
    ev = SceneGraphEvaluator(mode="sgdet", num_predicates=C, ks=KS)
    for i, (gt, pred) in enumerate(images):
        ev.update(gt, pred, image_id=i)
    shuffled = SceneGraphEvaluator(mode="sgdet", num_predicates=C, ks=KS)
    for i in rng.permutation(len(images)):
        gt, pred = images[i]
        rows = rng.permutation(len(pred["rel_pair_idxs"]))
        boxes = rng.permutation(len(pred["boxes"]))   # new box order: new_index -> old_index
        new_of_old = np.argsort(boxes)
        permuted = {"boxes": pred["boxes"][boxes], "labels": pred["labels"][boxes], "scores": pred["scores"][boxes],
                    "rel_pair_idxs": new_of_old[pred["rel_pair_idxs"][rows]], "rel_scores": pred["rel_scores"][rows]}
        shuffled.update(gt, permuted, image_id=int(i))
    np.testing.assert_equal(shuffled.compute(), ev.compute())  # NaN == NaN here


def test_split_over_two_evaluators_then_merge_equals_one(make_image, rng):
    images = make_images(make_image, rng)
    kwargs = dict(mode="sgcls", num_predicates=C, ks=KS, zeroshot_triplets=np.array([[1, 2, 3], [2, 1, 4]]),
                  predicate_counts=np.arange(C) ** 2)
    whole, first, second = (SceneGraphEvaluator(**kwargs) for _ in range(3))
    for i, (gt, pred) in enumerate(images):
        whole.update(gt, pred, image_id=i)
        (first if i % 3 else second).update(gt, pred, image_id=i)
    # second goes through a pickled state dict, as after torch.distributed.all_gather_object
    first.merge(pickle.loads(pickle.dumps(second.state_dict())))
    assert first.compute() == whole.compute()
    # an image present on both sides (distributed sampler padding) is kept once
    first.merge(second)
    assert first.compute() == whole.compute()
    rebuilt = SceneGraphEvaluator.from_state_dict(whole.state_dict())
    assert rebuilt.compute() == whole.compute()
    assert rebuilt.gather(lambda state: [state], 0).compute() == whole.compute()  # one process: nothing to add
    # two processes: rank 1 adds rank 0's images to its own
    assert second.gather(lambda state: [first.state_dict(), state], 1).compute() == whole.compute()


def test_merge_rejects_different_settings():
    a = SceneGraphEvaluator(mode="sgdet", num_predicates=C)
    with pytest.raises(ValueError, match="mode"):
        a.merge(SceneGraphEvaluator(mode="sgcls", num_predicates=C))
    with pytest.raises(ValueError, match="ks"):
        a.merge(SceneGraphEvaluator(mode="sgdet", num_predicates=C, ks=(10,)))


def test_adding_a_wrong_pair_never_raises_recall_and_a_lowest_one_never_lowers_it(make_image, rng):
    for _ in range(20):
        gt, pred = make_image(rng, num_predicates=C)
        base = SceneGraphEvaluator(mode="sgdet", num_predicates=C, ks=KS)
        base.update(gt, pred)
        before = base.compute()
        for score in (1e-6, rng.uniform(0.05, 1.0)):
            extra = np.zeros((1, C), dtype=np.float32)
            extra[0, 1 + rng.integers(C - 1)] = score
            # the pair (0, 0) is a wrong pair: no GT relation links a box with itself
            more = dict(pred, rel_pair_idxs=np.vstack([pred["rel_pair_idxs"], [[0, 0]]]),
                        rel_scores=np.vstack([pred["rel_scores"], extra]))
            ev = SceneGraphEvaluator(mode="sgdet", num_predicates=C, ks=KS)
            ev.update(gt, more)
            after = ev.compute()
            for k in KS:
                assert after[f"R@{k}"] <= before[f"R@{k}"]
                if score == 1e-6:
                    assert after[f"R@{k}"] == before[f"R@{k}"]


def test_stable_topk_equals_a_full_stable_sort():
    rng = np.random.default_rng(3)
    for size in [*rng.integers(1, 60, size=40), *rng.integers(1025, 4000, size=10)]:  # both code paths
        values = rng.integers(0, 5, size=size).astype(np.float32)  # many ties
        k = int(rng.integers(1, 70))
        assert stable_topk(values, k).tolist() == np.argsort(-values, kind="stable")[:k].tolist()


@pytest.mark.parametrize("num_pairs", [7, 3000])  # one reduction / the column loop for many pairs
def test_foreground_max_is_the_max_over_predicates_one_and_up(num_pairs):
    rng = np.random.default_rng(8)
    rel = rng.random((num_pairs, C)).astype(np.float32)
    rel[:, 0] = 2.0  # background must be ignored
    best = foreground_max(rel)
    assert best.dtype == np.float32
    assert best.tolist() == [max(row[1:]) for row in rel.tolist()]


def test_no_graph_list_equals_brute_force_ranking_even_with_ties():
    rng = np.random.default_rng(5)
    for _ in range(30):
        num_pairs = int(rng.integers(1, 40))
        rel = (rng.integers(0, 4, size=(num_pairs, C)) / 4).astype(np.float32)  # heavy ties
        obj = (rng.integers(1, 4, size=6) / 4).astype(np.float32)
        pairs = rng.integers(0, 6, size=(num_pairs, 2))
        k = int(rng.integers(1, 60))
        detail = rank_relations(obj, pairs, rel, k)
        full = ((obj[pairs[:, 0]] * obj[pairs[:, 1]])[:, None] * rel[:, 1:]).ravel()
        order = np.argsort(-full, kind="stable")[:k]
        assert detail.no_graph_rows.tolist() == (order // (C - 1)).tolist()
        assert detail.no_graph_labels.tolist() == (order % (C - 1) + 1).tolist()
        graph = (obj[pairs[:, 0]] * obj[pairs[:, 1]]) * rel[:, 1:].max(axis=1)
        assert detail.graph_rows.tolist() == np.argsort(-graph, kind="stable")[:k].tolist()


@pytest.mark.parametrize("offset", [0, 5000])  # the (subject, object) table / the sorted keys for huge indices
def test_gt_pair_mask_marks_exactly_the_ordered_gt_pairs(offset):
    rng = np.random.default_rng(4)
    pairs = rng.integers(0, 6, size=(200, 2)) + offset
    gt = np.column_stack([rng.integers(0, 6, size=(7, 2)) + offset, rng.integers(1, C, size=7)])
    gt_pairs = {(s, o) for s, o, _ in gt.tolist()}
    expected = [(s, o) in gt_pairs for s, o in pairs.tolist()]
    assert gt_pair_mask(pairs, gt).tolist() == expected
    assert 0 < sum(expected) < len(expected)
    assert any((o, s) not in gt_pairs for s, o in gt_pairs)  # direction matters in the fixture
