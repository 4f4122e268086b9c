"""End to end on a tiny synthetic VG: detector pre-training, relation training and testing in PredCls and SGDet,
re-evaluation of the saved predictions, resume, and the errors a user meets first."""
import json
import os

import pytest

from tool_process import RECALL_LINE, run_tool, synthetic_data_root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "configs", "synthetic")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return synthetic_data_root(tmp_path_factory)


def _opts(data_root, output_dir, max_iter, *extra):
    return ["DATASETS.DATA_DIR", str(data_root), "OUTPUT_DIR", str(output_dir), "SOLVER.MAX_ITER", str(max_iter),
            "SOLVER.IMS_PER_BATCH", "4", "TEST.IMS_PER_BATCH", "4", "SOLVER.CHECKPOINT_PERIOD", "2",
            "SOLVER.VAL_PERIOD", "2", "DATASETS.VAL_SIZE", "6", "GLOVE_DIR", str(data_root / "no_glove"), *extra]


@pytest.fixture(scope="module")
def detector_ckpt(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("detector")
    run_tool(["tools/detector_pretrain_net.py", "--config-file", os.path.join(CONFIGS, "detector_tiny_fpn.yaml"),
          *_opts(data_root, out, 2), "--skip-test"])
    return out / "model_final.pth"


def _results(folder):
    with open(folder / "inference" / "SyntheticVG_test" / "results.json") as f:
        return json.load(f)


def test_predcls_train_test_reevaluate_and_resume(data_root, detector_ckpt, tmp_path):
    out = tmp_path / "predcls"
    config = os.path.join(CONFIGS, "relation_predcls.yaml")
    opts = _opts(data_root, out, 4, "MODEL.ROI_RELATION_HEAD.PREDICTOR", "MotifPredictor",
                 "MODEL.PRETRAINED_DETECTOR_CKPT", str(detector_ckpt))
    log = run_tool(["tools/relation_train_net.py", "--config-file", config, *opts])
    assert "Loaded the detector from" in log
    lines = RECALL_LINE.findall(log)
    assert len(lines) == 3  # validation at 2 and 4, then the test split
    for name in ("config.yaml", "log.txt", "model_final.pth", "model_best.pth", "SyntheticVG_train_statistics.cache"):
        assert (out / name).exists(), name
    folder = out / "inference" / "SyntheticVG_test"
    trained = _results(out)
    assert f"{trained['R@20']:.4f}" == lines[-1][0]
    assert (folder / "results.txt").read_text().count("SGG eval:") >= 7
    assert 0.0 <= trained["mR@100"] <= trained["ngmR@100"] <= 1.0

    # the test tool loads OUTPUT_DIR/last_checkpoint and reproduces the numbers
    log = run_tool(["tools/relation_test_net.py", "--config-file", config, *opts])
    assert RECALL_LINE.findall(log)[-1] == lines[-1]

    # re-evaluating the saved prediction file gives every number again
    run_tool(["tools/evaluate.py", "--predictions", str(folder / "predictions.sgg"), "--dataset", "SyntheticVG_test",
          "--config-file", config, "--output-dir", str(tmp_path / "reeval"), *opts])
    with open(tmp_path / "reeval" / "results.json") as f:
        again = json.load(f)
    assert {k: v for k, v in again.items() if "@" in k} == {k: v for k, v in trained.items() if "@" in k}

    # extending the finished run from iteration 4 to 6 (the detector key may differ: the checkpoint replaces it)
    log = run_tool(["tools/relation_train_net.py", "--config-file", config,
                *_opts(data_root, out, 6, "MODEL.ROI_RELATION_HEAD.PREDICTOR", "MotifPredictor",
                       "SOLVER.EXTEND_RUN", "True"), "--skip-test"])
    assert "Resumed from" in log and "iter: 6/6" in log
    assert (out / "model_0000004.pth").exists() and (out / "config_until_0000004.yaml").exists()


def test_sgdet_trains_on_detections_and_tests(data_root, detector_ckpt, tmp_path):
    out = tmp_path / "sgdet"
    log = run_tool(["tools/relation_train_net.py", "--config-file", os.path.join(CONFIGS, "relation_sgdet.yaml"),
                *_opts(data_root, out, 2, "MODEL.PRETRAINED_DETECTOR_CKPT", str(detector_ckpt),
                       "SOLVER.PRE_VAL", "False", "SOLVER.VAL_PERIOD", "0")])
    assert "mode=sgdet" in log and "A @" not in log  # no pair accuracy in SGDet
    assert 0.0 <= _results(out)["R@100"] <= 1.0


def test_sgdet_without_a_detector_is_explained(data_root, tmp_path):
    log = run_tool(["tools/relation_train_net.py", "--config-file", os.path.join(CONFIGS, "relation_sgdet.yaml"),
                *_opts(data_root, tmp_path / "x", 2)], expect_ok=False)
    assert "SGDet needs a trained detector" in log and "MODEL.PRETRAINED_DETECTOR_CKPT" in log


def test_test_tool_without_weights_is_explained(data_root, tmp_path):
    log = run_tool(["tools/relation_test_net.py", "--config-file", os.path.join(CONFIGS, "relation_predcls.yaml"),
                *_opts(data_root, tmp_path / "empty", 2)], expect_ok=False)
    assert "nothing to test" in log and "MODEL.WEIGHT" in log


def test_detector_checkpoint_of_another_architecture_is_reported(data_root, detector_ckpt, tmp_path):
    log = run_tool(["tools/relation_train_net.py", "--config-file", os.path.join(CONFIGS, "relation_predcls.yaml"),
                *_opts(data_root, tmp_path / "y", 2, "MODEL.PRETRAINED_DETECTOR_CKPT", str(detector_ckpt),
                       "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", "128")], expect_ok=False)
    assert "MODEL.PRETRAINED_DETECTOR_CKPT" in log and "does not fit" in log
