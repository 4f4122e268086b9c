"""The evaluator with the real VG150 predicate names and SGB's zero-shot triplet file (read in place)."""
import numpy as np

from sgg.evaluation import SceneGraphEvaluator


def test_real_zero_shot_triplets_and_predicate_names(vg_predicate_names, vg_zeroshot):
    assert len(vg_predicate_names) == 51 and vg_predicate_names[1] == "above" and vg_predicate_names[31] == "on"
    assert vg_zeroshot.shape == (5971, 3)
    sub_cls, obj_cls, predicate = (int(v) for v in vg_zeroshot[0])
    seen = {tuple(t) for t in vg_zeroshot.tolist()}
    assert (sub_cls, obj_cls, 31) not in seen  # so the second relation below is not zero-shot
    gt = {"boxes": np.array([[0, 0, 49, 49], [60, 0, 99, 49], [0, 60, 49, 99]], dtype=np.float32),
          "labels": np.array([sub_cls, obj_cls, obj_cls]),
          "relations": np.array([[0, 1, predicate], [0, 2, 31]])}
    rel = np.zeros((2, 51), dtype=np.float32)
    rel[0, predicate] = 0.9  # the zero-shot relation is found
    rel[1, 20] = 0.9         # "has" instead of "on": missed
    pred = {"boxes": gt["boxes"], "labels": gt["labels"], "scores": np.ones(3),
            "rel_pair_idxs": np.array([[0, 1], [0, 2]]), "rel_scores": rel}
    ev = SceneGraphEvaluator(mode="sgdet", num_predicates=51, predicate_names=vg_predicate_names,
                             zeroshot_triplets=vg_zeroshot)
    ev.update(gt, pred, image_id=2343)
    r = ev.compute()
    assert r["num_zero_shot_images"] == 1
    assert r["zR@20"] == 1.0 and r["R@20"] == 0.5
    assert r["mR@20"] == 1.0 / 50  # predicate found, "on" missed, 48 predicates absent
    text = ev.format()
    assert "(above:" in text and f"({vg_predicate_names[predicate]}:1.0000)" in text and "(on:0.0000)" in text
