"""IterativeSG end to end through the relation tools on a tiny synthetic VG: the backbone taken from a detector
checkpoint, training with validation, testing, the test tool reproducing the numbers, and the first errors."""
import json
import os
import subprocess
import sys

import pytest
import torch

from sgg.config import load_config
from sgg.modeling.detector.generalized_rcnn import GeneralizedRCNN

from tool_process import RECALL_LINE, run_tool, synthetic_data_root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "configs", "synthetic")
CONFIG = os.path.join(CONFIGS, "iterative_sg.yaml")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return synthetic_data_root(tmp_path_factory)


@pytest.fixture(scope="module")
def detector_ckpt(tmp_path_factory):
    """An (untrained) tiny-FPN detector checkpoint of detector_tiny_fpn.yaml: only its backbone is used."""
    torch.manual_seed(0)
    detector = GeneralizedRCNN.from_config(load_config(os.path.join(CONFIGS, "detector_tiny_fpn.yaml")))
    path = tmp_path_factory.mktemp("detector") / "model_final.pth"
    torch.save({"model": detector.state_dict()}, path)
    return path


def _opts(data_root, output_dir, max_iter, *extra):
    return ["DATASETS.DATA_DIR", str(data_root), "OUTPUT_DIR", str(output_dir), "SOLVER.MAX_ITER", str(max_iter),
            "SOLVER.IMS_PER_BATCH", "4", "TEST.IMS_PER_BATCH", "4", "SOLVER.CHECKPOINT_PERIOD", "2",
            "SOLVER.VAL_PERIOD", "2", "DATASETS.VAL_SIZE", "6", *extra]


def test_train_validate_test_and_reproduce(data_root, detector_ckpt, tmp_path):
    out = tmp_path / "IterativeSG" / "sgdet"
    opts = _opts(data_root, out, 4, "MODEL.PRETRAINED_DETECTOR_CKPT", str(detector_ckpt))
    log = run_tool(["tools/relation_train_net.py", "--config-file", CONFIG, *opts])
    assert "backbone loaded from the detector checkpoint" in log
    assert "loss_predicate_ce" in log and "mode=sgdet" in log
    lines = RECALL_LINE.findall(log)
    assert len(lines) == 3  # validation at 2 and 4, then the test split
    with open(out / "inference" / "SyntheticVG_test" / "results.json") as f:
        results = json.load(f)
    assert f"{results['R@20']:.4f}" == lines[-1][0]
    assert 0.0 <= results["mR@50"] <= 1.0
    assert (out / "model_final.pth").exists() and (out / "inference" / "SyntheticVG_test" / "predictions.sgg").exists()
    # the test tool loads OUTPUT_DIR/last_checkpoint and gives the same numbers
    log = run_tool(["tools/relation_test_net.py", "--config-file", CONFIG, *opts])
    assert RECALL_LINE.findall(log)[-1] == lines[-1]


def test_predcls_is_refused_by_the_tools(data_root, tmp_path):
    log = run_tool(["tools/relation_train_net.py", "--config-file", CONFIG,
                *_opts(data_root, tmp_path / "p", 2, "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", "True",
                       "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", "True")], expect_ok=False)
    assert "predcls" in log and "USE_GT_BOX False" in log


def test_detector_checkpoint_of_another_backbone_is_reported(data_root, detector_ckpt, tmp_path):
    log = run_tool(["tools/relation_train_net.py", "--config-file", CONFIG,
                *_opts(data_root, tmp_path / "b", 2, "MODEL.PRETRAINED_DETECTOR_CKPT", str(detector_ckpt),
                       "MODEL.TINY_BACKBONE.STAGE_CHANNELS", "(16, 32, 64, 64)")], expect_ok=False)
    assert "MODEL.PRETRAINED_DETECTOR_CKPT" in log and "does not fit" in log


def test_script_pretrains_detr_then_starts_iterative_sg_from_it(data_root, detector_ckpt, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", OUTPUT_ROOT=str(tmp_path), PYTHON=sys.executable,
               DETR_OPTS="SOLVER.MAX_ITER 3")
    env.pop("SGG_DATA_DIR", None)
    opts = ["DATASETS.DATA_DIR", str(data_root), "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "4",
            "TEST.IMS_PER_BATCH", "4", "SOLVER.VAL_PERIOD", "0", "DATASETS.VAL_SIZE", "6"]
    proc = subprocess.run(["bash", "scripts/iterative_sg/train.sh", str(detector_ckpt), *opts], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "== DETR pre-training" in log and "Detection evaluation mAp=" in log
    # the shared pairs set 2 iterations; DETR_OPTS gives the DETR stage its own 3
    assert "Starting training from iteration 0 to 3" in log and "Starting training from iteration 0 to 2" in log
    assert (tmp_path / "DETR" / "model_final.pth").exists()
    assert "IterativeSG started from the DETR checkpoint" in log
    assert (tmp_path / "IterativeSG" / "sgdet" / "inference" / "SyntheticVG_test" / "results.json").exists()
    # a second run reuses the DETR; DETR_CKPT=none starts from the detector's backbone alone
    env.update(NAME="again")
    log = subprocess.run(["bash", "scripts/iterative_sg/train.sh", str(detector_ckpt), *opts], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert log.returncode == 0 and "== DETR pre-training" not in log.stdout + log.stderr
    env.update(NAME="plain", DETR_CKPT="none")
    log = subprocess.run(["bash", "scripts/iterative_sg/train.sh", str(detector_ckpt), *opts], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert log.returncode == 0 and "IterativeSG started from the DETR" not in log.stdout + log.stderr
    env.update(DETR_CKPT=str(tmp_path / "missing.pth"))
    bad = subprocess.run(["bash", "scripts/iterative_sg/train.sh", str(detector_ckpt)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "DETR_CKPT" in bad.stderr and "missing.pth" in bad.stderr
