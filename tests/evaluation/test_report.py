"""The SGB text block, line by line (PROTOCOL.md 2.4), and results.json / results.txt."""
import json
import math

import numpy as np

from sgg.evaluation import SceneGraphEvaluator, format_results, write_results

NAMES = ["__background__", "above", "across", "against"]


def hand_results(mode):
    r = {"mode": mode, "ks": [20, 50, 100],
         "per_predicate": {"names": NAMES[1:], "R@100": [0.1147, 0.0, 0.5], "ngR@100": [0.25, 0.125, 1.0]}}
    values = {"R": (0.4277, 0.4667, 0.4764), "ngR": (0.5, 0.6, 0.7), "zR": (0.01, 0.02, float("nan")),
              "ngzR": (0.03, 0.04, 0.05), "mR": (0.1, 0.2, 0.3), "ngmR": (0.15, 0.25, 0.35),
              "A": (0.9, 0.95, 0.99), "F": (0.16, 0.27, 0.37), "ngF": (0.23, 0.35, 0.46)}
    for key, triple in values.items():
        for k, v in zip((20, 50, 100), triple):
            r[f"{key}@{k}"] = v
    return r


def test_sgb_block_line_by_line():
    text = format_results(hand_results("sgcls"), NAMES, detection_map=0.70521, extras=False)
    lines = text.split("\n")
    expected = [
        "",
        "=" * 100,
        "Detection evaluation mAp=0.7052",
        "=" * 100,
        "SGG eval:     R @ 20: 0.4277;     R @ 50: 0.4667;     R @ 100: 0.4764;  for mode=sgcls, type=Recall(Main).",
        "SGG eval:  ng-R @ 20: 0.5000;  ng-R @ 50: 0.6000;  ng-R @ 100: 0.7000;  for mode=sgcls, "
        "type=No Graph Constraint Recall(Main).",
        "SGG eval:    zR @ 20: 0.0100;    zR @ 50: 0.0200;    zR @ 100: nan;  for mode=sgcls, type=Zero Shot Recall.",
        "SGG eval: ng-zR @ 20: 0.0300; ng-zR @ 50: 0.0400; ng-zR @ 100: 0.0500;  for mode=sgcls, "
        "type=No Graph Constraint Zero Shot Recall.",
        "SGG eval:    mR @ 20: 0.1000;    mR @ 50: 0.2000;    mR @ 100: 0.3000;  for mode=sgcls, type=Mean Recall.",
        "----------------------- Details ------------------------",
        "(above:0.1147) (across:0.0000) (against:0.5000) ",
        "--------------------------------------------------------",
        "SGG eval: ng-mR @ 20: 0.1500; ng-mR @ 50: 0.2500; ng-mR @ 100: 0.3500;  for mode=sgcls, "
        "type=No Graph Constraint Mean Recall.",
        "----------------------- Details ------------------------",
        "(above:0.2500) (across:0.1250) (against:1.0000) ",
        "--------------------------------------------------------",
        "SGG eval:     A @ 20: 0.9000;     A @ 50: 0.9500;     A @ 100: 0.9900;  for mode=sgcls, type=TopK Accuracy.",
        "=" * 100,
        "",
    ]
    assert lines == expected


def test_sgdet_block_has_no_accuracy_line_and_no_detection_line_without_map():
    text = format_results(hand_results("sgdet"), NAMES, extras=False)
    assert "TopK Accuracy" not in text and "Detection evaluation" not in text
    assert text.startswith("\n" + "=" * 100 + "\nSGG eval:     R @ 20: 0.4277;")
    assert text.endswith("(against:1.0000) \n" + "-" * 56 + "\n" + "=" * 100 + "\n")


def test_extras_follow_the_sgb_block():
    r = hand_results("predcls")
    r.update({f"{g}_{m}@{k}": v for g, v in (("head", 0.5), ("body", 0.25), ("tail", 0.125))
              for m in ("mR", "ngmR") for k in (20, 50, 100)})
    r["predicate_groups"] = {"head": [1], "body": [2], "tail": [3]}
    text = format_results(r, NAMES)
    sgb = format_results(r, NAMES, extras=False)
    assert text.startswith(sgb)
    extra = text[len(sgb):].split("\n")
    assert extra[0] == ("SGG eval:     F @ 20: 0.1600;     F @ 50: 0.2700;     F @ 100: 0.3700;  for mode=predcls, "
                        "type=F (harmonic mean of R and mR).")
    assert extra[1].startswith("SGG eval:  ng-F @ 20: 0.2300;")
    assert extra[2] == ("SGG eval:    mR @ 20: 0.5000;    mR @ 50: 0.5000;    mR @ 100: 0.5000;  for mode=predcls, "
                        "type=Mean Recall over 1 head predicates.")
    assert extra[4].endswith("type=Mean Recall over 1 tail predicates.")
    assert extra[5].startswith("SGG eval: ng-mR @ 20: 0.5000;")
    assert extra[-2] == "=" * 100


def test_evaluator_format_uses_its_own_numbers(tmp_path):
    gt = {"boxes": np.array([[0, 0, 9, 9], [20, 20, 29, 29]]), "labels": np.array([1, 2]),
          "relations": np.array([[0, 1, 1], [1, 0, 2]])}
    pred = dict(gt, scores=np.ones(2), rel_pair_idxs=np.array([[0, 1], [1, 0]]),
                rel_scores=np.array([[0, 0.9, 0.1, 0], [0, 0.2, 0.3, 0.5]], dtype=np.float32))
    ev = SceneGraphEvaluator(mode="sgdet", num_predicates=4, predicate_names=NAMES, ks=(1, 2))
    ev.update(gt, pred, image_id=0)
    text = ev.format()
    assert "SGG eval:     R @ 1: 0.5000;     R @ 2: 0.5000;  for mode=sgdet, type=Recall(Main)." in text
    assert "SGG eval:  ng-R @ 1: 0.5000;  ng-R @ 2: 0.5000;  for mode=sgdet" in text
    assert "(above:1.0000) (across:0.0000) (against:0.0000) \n" in text
    results = ev.compute()
    paths = write_results(results, text, str(tmp_path / "out"))
    with open(paths["json"]) as f:
        saved = json.load(f)
    assert saved["R@2"] == 0.5 and saved["zR@1"] is None  # NaN is written as null
    assert saved["per_predicate"]["R@2"] == [1.0, 0.0, 0.0]
    assert saved["per_predicate"]["names"] == NAMES[1:]
    assert math.isnan(results["zR@1"])
    with open(paths["txt"]) as f:
        assert f.read() == text
