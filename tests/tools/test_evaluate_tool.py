"""tools/evaluate.py on a tiny synthetic VG: missing images, never overwriting a run's results, the same numbers
under another config, and the statistics cache in the output folder. Predictions are made from the GT (no model)."""
import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from sgg.config import load_config
from sgg.data import build_dataset, get_dataset_statistics
from sgg.data.synthetic import generate_synthetic_vg
from sgg.engine.relation_eval import dataset_evaluator_kwargs, dataset_image_ids, groundtruth_lookup
from sgg.evaluation import PredictionFileWriter, SceneGraphEvaluator
from sgg.structures import BoxList
from sgg.utils.errors import EvaluationError, RunError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "configs", "synthetic", "relation_sgdet.yaml")
KS = [20, 50, 100]


def _load_tool():
    spec = importlib.util.spec_from_file_location("evaluate_tool", os.path.join(REPO, "tools", "evaluate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


evaluate_tool = _load_tool()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generate_synthetic_vg(str(root / "synthetic_vg"), num_train=40, num_test=12, seed=5, workers=1)
    return root


def _opts(data_root, val_size=6):
    return ["DATASETS.DATA_DIR", str(data_root), "DATASETS.VAL_SIZE", str(val_size)]


@pytest.fixture(scope="module")
def split(data_root):
    """Test images (id, GT mapping, SGDet prediction) and the training counts under VAL_SIZE 6 (the 'run') and 30."""
    cfg = load_config(CONFIG, _opts(data_root) + ["OUTPUT_DIR", ""])
    dataset = build_dataset(cfg, "SyntheticVG_test", check_images=False)
    lookup = groundtruth_lookup(dataset)
    rng = np.random.default_rng(3)
    images = []
    for image_id in dataset_image_ids(dataset):
        gt = lookup(image_id)
        images.append((image_id, gt, _prediction(rng, gt, len(dataset.ind_to_predicates))))
    other = load_config(CONFIG, _opts(data_root, 30) + ["OUTPUT_DIR", ""])
    return {"cfg": cfg, "dataset": dataset, "images": images,
            "counts": np.asarray(get_dataset_statistics(cfg)["predicate_counts"]),
            "other_counts": np.asarray(get_dataset_statistics(other)["predicate_counts"])}


def _prediction(rng, gt, num_predicates):
    """GT boxes jittered (a few labels wrong), every ordered pair, random scores with a boost on half the GT pairs."""
    n = len(gt["boxes"])
    boxes = np.asarray(gt["boxes"], dtype=np.float32) + rng.normal(0, 2, size=(n, 4)).astype(np.float32)
    labels = np.where(rng.random(n) < 0.8, gt["labels"], rng.integers(1, 10, size=n))
    s, o = np.nonzero(~np.eye(n, dtype=bool))
    scores = rng.random((len(s), num_predicates)) ** 3
    for sub, obj, pred in np.asarray(gt["relations"]):
        if rng.random() < 0.5:
            scores[sub * (n - 1) + obj - (obj > sub), pred] += 1.0
    scores /= scores.sum(axis=1, keepdims=True)
    return {"boxes": boxes, "labels": labels, "scores": rng.uniform(0.2, 1.0, n),
            "rel_pair_idxs": np.column_stack([s, o]), "rel_scores": scores.astype(np.float32)}


def _write(path, split, images, counts=True):
    dataset = split["dataset"]
    meta = {"mode": "sgdet", "num_predicates": len(dataset.ind_to_predicates), "ks": KS, "dataset": dataset.name,
            "predicate_names": list(dataset.ind_to_predicates), "iou_threshold": 0.5}
    if counts:
        meta["predicate_counts"] = split["counts"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with PredictionFileWriter(str(path), meta) as writer:
        for image_id, _, prediction in images:
            writer.add(image_id, prediction)
    return str(path)


def _in_memory(split, images, counts):
    """What the run itself computed: the evaluator fed the predictions directly, with the given training counts."""
    kwargs = dataset_evaluator_kwargs(split["cfg"], split["dataset"])
    kwargs["predicate_counts"] = counts
    evaluator = SceneGraphEvaluator(mode="sgdet", ks=KS, **kwargs)
    for image_id, gt, prediction in images:
        evaluator.update(gt, prediction, image_id=image_id)
    return evaluator.compute()


def _metrics(results):
    return {k: v for k, v in results.items() if "@" in k}


def _run(data_root, predictions, *flags, config_opts=None):
    argv = ["--predictions", *predictions, "--dataset", "SyntheticVG_test", "--config-file", CONFIG, *flags]
    return evaluate_tool.main(argv + (config_opts if config_opts is not None else _opts(data_root)))


def test_missing_images_are_an_error_unless_a_subset_is_allowed(data_root, split, tmp_path, capsys):
    images = split["images"]
    assert len(images) == 12
    part = _write(tmp_path / "run" / "predictions.sgg", split, images[:5])
    with pytest.raises(EvaluationError) as err:
        _run(data_root, [part], "--output-dir", str(tmp_path / "out"))
    message = str(err.value)
    assert part in message and "5 of the 12 images of SyntheticVG_test" in message and "7 missing" in message
    assert f"first ids: {', '.join(str(i) for i, _, _ in images[5:10])})" in message
    assert "--allow-subset" in message
    assert not (tmp_path / "out" / "results.json").exists()

    assert _run(data_root, [part], "--output-dir", str(tmp_path / "out"), "--allow-subset") == 0
    printed = capsys.readouterr().out
    header = "=" * 100 + "\nSubset: 5 of 12 images of SyntheticVG_test (--allow-subset)"
    assert header in printed and header in (tmp_path / "out" / "results.txt").read_text()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["coverage"] == {"dataset": "SyntheticVG_test", "images_predicted": 5, "images_in_dataset": 12,
                                   "subset": True}
    expected = _in_memory(split, images[:5], split["counts"])
    assert _metrics(results) == pytest.approx(_metrics(json.loads(json.dumps(expected).replace("NaN", "null"))),
                                              nan_ok=True)
    assert results["num_images"] == 5

    # the two shards of a distributed test together are complete: no error, no subset line
    first = _write(tmp_path / "run" / "predictions_rank0.sgg", split, images[:7])
    second = _write(tmp_path / "run" / "predictions_rank1.sgg", split, images[7:])
    assert _run(data_root, [first, second], "--output-dir", str(tmp_path / "full")) == 0
    assert "Subset" not in capsys.readouterr().out
    full = json.loads((tmp_path / "full" / "results.json").read_text())
    assert full["coverage"]["subset"] is False and full["num_images"] == 12
    assert full["R@100"] == pytest.approx(_in_memory(split, images, split["counts"])["R@100"])


def test_a_runs_results_are_never_overwritten(data_root, split, tmp_path, capsys):
    folder = tmp_path / "run" / "inference" / "SyntheticVG_test"
    predictions = _write(folder / "predictions.sgg", split, split["images"])
    for name in ("results.json", "results.txt"):
        (folder / name).write_text("the run's own results\n")
    assert _run(data_root, [predictions]) == 0
    for name in ("results.json", "results.txt"):
        assert (folder / name).read_text() == "the run's own results\n"
    assert json.loads((folder / "results_reeval.json").read_text())["num_images"] == 12
    assert "results_reeval.json" in capsys.readouterr().out

    with pytest.raises(RunError, match="results_reeval.json already exists: pass --overwrite"):
        _run(data_root, [predictions])
    with pytest.raises(RunError, match=f"{folder / 'results.json'} already exists"):
        _run(data_root, [predictions], "--output-dir", str(folder))
    (folder / "results_reeval.txt").write_text("old")
    assert _run(data_root, [predictions], "--overwrite") == 0
    assert "SGG eval:" in (folder / "results_reeval.txt").read_text()
    assert (folder / "results.json").read_text() == "the run's own results\n"


def test_the_same_predictions_give_the_same_numbers_under_another_config(data_root, split, tmp_path):
    # why they did not: head/body/tail come from the training counts, and the train split depends on the config
    # (here DATASETS.VAL_SIZE 6 in the run, 30 in the re-evaluation: 24 fewer training images)
    from sgg.evaluation import split_head_body_tail

    run_groups = split_head_body_tail(split["counts"])
    other_groups = split_head_body_tail(split["other_counts"])
    assert run_groups["body"] != other_groups["body"] and run_groups["tail"] != other_groups["tail"]
    images = split["images"]
    run = _in_memory(split, images, split["counts"])
    other = _in_memory(split, images, split["other_counts"])
    assert run["body_mR@100"] != other["body_mR@100"] and run["tail_mR@100"] != other["tail_mR@100"]

    # a file that stores the run's counts gives the run's numbers under the other config
    stored = _write(tmp_path / "stored" / "predictions.sgg", split, images)
    _run(data_root, [stored], "--output-dir", str(tmp_path / "a"), config_opts=_opts(data_root, 30))
    again = json.loads((tmp_path / "a" / "results.json").read_text())
    for group in ("head", "body", "tail"):
        for k in KS:
            assert again[f"{group}_mR@{k}"] == pytest.approx(run[f"{group}_mR@{k}"])
            assert again[f"{group}_ngmR@{k}"] == pytest.approx(run[f"{group}_ngmR@{k}"])
    assert again["predicate_groups"] == run_groups

    # a file without stored counts (format 1) falls back to the config's training split, as before
    bare = _write(tmp_path / "bare" / "predictions.sgg", split, images, counts=False)
    _run(data_root, [bare], "--output-dir", str(tmp_path / "b"), config_opts=_opts(data_root, 30))
    fallback = json.loads((tmp_path / "b" / "results.json").read_text())
    assert fallback["body_mR@100"] == pytest.approx(other["body_mR@100"])

    # a config that would change the matching is refused, naming the key
    with pytest.raises(EvaluationError, match="TEST.RELATION.IOU_THRESHOLD 0.5, the config gives 0.3"):
        _run(data_root, [stored], "--output-dir", str(tmp_path / "c"),
             config_opts=_opts(data_root) + ["TEST.RELATION.IOU_THRESHOLD", "0.3"])


def test_statistics_cache_goes_under_the_output_dir(data_root, split, tmp_path, monkeypatch):
    bare = _write(tmp_path / "bare" / "predictions.sgg", split, split["images"], counts=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # the config's OUTPUT_DIR is the relative output/synthetic/sgdet
    assert load_config(CONFIG).OUTPUT_DIR == "output/synthetic/sgdet"
    _run(data_root, [bare], "--output-dir", str(tmp_path / "out"))
    assert os.listdir(cwd) == []
    assert (tmp_path / "out" / "SyntheticVG_train_statistics.cache").is_file()


def test_unknown_or_missing_files_are_reported(data_root, split, tmp_path):
    with pytest.raises(EvaluationError, match="--predictions: .*nope.sgg does not exist"):
        _run(data_root, [str(tmp_path / "nope.sgg")])
    foreign = tmp_path / "foreign.sgg"
    foreign.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(EvaluationError, match=f"{foreign}: not a scene graph prediction file"):
        _run(data_root, [str(foreign)])


def test_a_prediction_for_an_image_outside_the_dataset_is_reported(data_root, split, tmp_path):
    image_id, gt, prediction = split["images"][0]
    stray = _write(tmp_path / "stray.sgg", split, split["images"][1:] + [(999999, gt, prediction)])
    with pytest.raises(EvaluationError, match=f"{stray}: image id 999999 of the predictions is not in dataset "
                                              f"SyntheticVG_test"):
        _run(data_root, [stray], "--output-dir", str(tmp_path / "out"))


class _GTCopyModel(torch.nn.Module):
    """Returns the GT boxes (jittered) with seeded random relation scores, boosted on about half of the GT
    relations: a stand-in for a trained SGDet model."""

    def __init__(self, num_predicates):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.num_predicates = num_predicates
        self.generator = torch.Generator().manual_seed(7)

    def forward(self, images, targets):
        outputs = []
        for target in targets:
            n = len(target)
            boxes = target.bbox + torch.rand(n, 4, generator=self.generator) * 2
            output = BoxList(boxes, target.size, mode="xyxy")
            output.add_field("pred_labels", target.get_field("labels"))
            output.add_field("pred_scores", torch.rand(n, generator=self.generator) + 0.1)
            pairs = torch.nonzero(~torch.eye(n, dtype=torch.bool))
            output.add_field("rel_pair_idxs", pairs)
            scores = torch.rand(len(pairs), self.num_predicates, generator=self.generator)
            for sub, obj, predicate in target.get_field("relation_tuple").tolist():  # about half the GT found
                if torch.rand(1, generator=self.generator).item() < 0.5:
                    scores[sub * (n - 1) + obj - int(obj > sub), predicate] += 5.0
            output.add_field("pred_rel_scores", scores.softmax(-1))
            outputs.append(output)
        return outputs


def test_a_test_runs_file_reproduces_its_numbers_under_another_config(data_root, split, tmp_path):
    from sgg.data import build_data_loader
    from sgg.engine.relation_eval import evaluate_relations
    from sgg.evaluation import read_prediction_file

    cfg = load_config(CONFIG, _opts(data_root) + ["OUTPUT_DIR", str(tmp_path / "run"), "TEST.IMS_PER_BATCH", "4",
                                                  "DATALOADER.NUM_WORKERS", "0"])
    statistics = get_dataset_statistics(cfg)
    loader = build_data_loader(cfg, "test", for_training=False)[0]
    folder = tmp_path / "run" / "inference" / "SyntheticVG_test"
    model = _GTCopyModel(len(split["dataset"].ind_to_predicates))
    run = evaluate_relations(cfg, model, loader, str(folder), statistics, save_predictions=True)
    meta = read_prediction_file(str(folder / "predictions.sgg")).meta
    np.testing.assert_array_equal(meta["predicate_counts"], split["counts"])
    assert meta["iou_threshold"] == 0.5 and meta["split_rule"] == "thirds"

    _run(data_root, [str(folder / "predictions.sgg")], config_opts=_opts(data_root, 30))
    again = json.loads((folder / "results_reeval.json").read_text())
    keys = [k for k in run if "@" in k and k.split("_")[0] in ("head", "body", "tail", "R@100", "mR@100")]
    assert len(keys) >= 18 and run["tail_mR@100"] > 0
    for key in keys:
        assert again[key] == pytest.approx(run[key]), key


def test_shards_written_with_different_counts_are_refused(data_root, split, tmp_path):
    images = split["images"]
    first = _write(tmp_path / "a" / "predictions_rank0.sgg", split, images[:6])
    second = _write(tmp_path / "b" / "predictions_rank1.sgg", split, images[6:], counts=False)
    with pytest.raises(EvaluationError, match="written with different head/body/tail counts or match IoU"):
        _run(data_root, [first, second], "--output-dir", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
