"""The training scripts' argument checks (scripts/lib.sh and each script's own cases)."""
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("script", [
    ["scripts/train_relation.sh", "MotifPredictor"],
    ["scripts/ba_sgg/train.sh", "MotifPredictor"],
    ["scripts/hca/train.sh", "ce"],
    ["scripts/linknet/train.sh", "linknet_ce"],
    ["scripts/penet/train.sh", "penet"],
])
def test_unknown_protocol_is_refused_before_any_work(script, tmp_path):
    env = dict(os.environ, OUTPUT_ROOT=str(tmp_path))
    proc = subprocess.run(["bash", *script, "predet", "detector.pth"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown protocol 'predet': use predcls, sgcls or sgdet" in proc.stderr
    assert os.listdir(tmp_path) == []


def test_unknown_dataset_is_refused(tmp_path):
    env = dict(os.environ, OUTPUT_ROOT=str(tmp_path), DATASET="coco")
    proc = subprocess.run(["bash", "scripts/train_relation.sh", "MotifPredictor", "predcls", "detector.pth"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown DATASET 'coco'" in proc.stderr
