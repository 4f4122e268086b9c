"""benchmarks/entity_reach.py: which GT triplets an SGCls or SGDet run's objects can reach, counted by hand; the tool
on a tiny synthetic VG with hand-made SGCls predictions."""
import importlib.util
import os

import json

import numpy as np
import pytest

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks", "entity_reach.py")
spec = importlib.util.spec_from_file_location("entity_reach", PATH)
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


def test_labels_matching_counts_boxes_by_index_and_rejects_another_split():
    assert reach.labels_matching([1, 2, 1, 3], [1, 1, 1, 2]) == (2, 4)
    with pytest.raises(SystemExit, match="image 'img7': 3 predicted labels for 4 GT boxes"):
        reach.labels_matching([1, 2, 1, 3], [1, 2, 1], "img7")


def _sgcls_run(tmp_path, mode="sgcls"):
    """A run folder on a 12-image synthetic test split: every ordered pair of the GT boxes, labels wrong on every
    third box (so the label share and the reachable triplets are known by construction)."""
    from sgg.config import load_config
    from sgg.data import build_dataset
    from sgg.data.synthetic import generate_synthetic_vg
    from sgg.engine.relation_eval import dataset_image_ids, groundtruth_lookup
    from sgg.evaluation import PredictionFileWriter

    generate_synthetic_vg(str(tmp_path / "data" / "synthetic_vg"), num_train=20, num_test=12, seed=5, workers=1)
    config = os.path.join(os.path.dirname(PATH), "..", "configs", "synthetic", "relation_sgcls.yaml")
    cfg = load_config(config, ["DATASETS.DATA_DIR", str(tmp_path / "data"), "DATASETS.VAL_SIZE", "4",
                               "OUTPUT_DIR", str(tmp_path / "run")])
    dataset = build_dataset(cfg, "SyntheticVG_test", check_images=False)
    lookup = groundtruth_lookup(dataset)
    folder = tmp_path / "run" / "inference" / "SyntheticVG_test"
    folder.mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text(cfg.dump())
    expected = {"right": 0, "boxes": 0, "shares": []}
    meta = {"mode": mode, "num_predicates": len(dataset.ind_to_predicates), "iou_threshold": 0.5}
    with PredictionFileWriter(str(folder / "predictions.sgg"), meta) as writer:
        for image_id in dataset_image_ids(dataset):
            gt = lookup(image_id)
            n = len(gt["labels"])
            wrong = np.arange(n) % 3 == 2
            labels = np.where(wrong, 0, gt["labels"])  # 0 is no GT label: a wrong box matches nothing
            s, o = np.nonzero(~np.eye(n, dtype=bool))
            writer.add(image_id, {"boxes": np.asarray(gt["boxes"], dtype=np.float32), "labels": labels,
                                  "scores": np.ones(n), "rel_pair_idxs": np.column_stack([s, o]),
                                  "rel_scores": np.full((len(s), meta["num_predicates"]), 0.5, np.float32)}, gt)
            expected["right"] += int((~wrong).sum())
            expected["boxes"] += n
            relations = np.asarray(gt["relations"]).reshape(-1, 3)
            if len(relations):
                both_right = ~wrong[relations[:, 0]] & ~wrong[relations[:, 1]]
                expected["shares"].append(both_right.mean())
    (folder / "results.json").write_text(json.dumps({"R@20": 0.1, "R@50": 0.2, "R@100": 0.3}))
    return tmp_path / "run", expected


def test_tool_prints_the_sgcls_label_share_and_reach(tmp_path, capsys):
    run, expected = _sgcls_run(tmp_path)
    reach.main([str(run), "--dataset", "SyntheticVG_test"])
    out = capsys.readouterr().out
    assert f"{len(expected['shares'])} images with relations" in out
    assert f"GT label {100 * expected['right'] / expected['boxes']:.1f} % of {expected['boxes']};" in out
    assert f"reached by the predicted labels {100 * np.mean(expected['shares']):.1f} %" in out
    assert "R@20 / 50 / 100 10.0 / 20.0 / 30.0" in out
    assert 0 < np.mean(expected["shares"]) < 1  # the construction leaves some triplets out, not all


def test_tool_refuses_predcls(tmp_path):
    run, _ = _sgcls_run(tmp_path, mode="predcls")
    with pytest.raises(SystemExit, match="mode 'predcls'.*every triplet is reached"):
        reach.main([str(run), "--dataset", "SyntheticVG_test"])
