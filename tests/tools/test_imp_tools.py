"""SGB's README command line for IMP: it loads unchanged on SGB's VG150 yaml and builds the VG-size predictor, and the
same options train and test IMP end to end on a tiny synthetic VG (no VG150 here)."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from sgg.config import get_protocol, load_config
from sgg.data.synthetic import generate_synthetic_vg
from sgg.modeling.roi_heads.relation_head.predictors import build_predictor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECALL_LINE = re.compile(r"SGG eval:\s+R @ 20: (\d\.\d{4});")


def readme_options(protocol_switches, glove, output, detector=None):
    """SGB README's "Training Example 1" with the IMP predictor line, minus the launcher and the tool name."""
    options = (f"{protocol_switches} MODEL.ROI_RELATION_HEAD.PREDICTOR IMPPredictor SOLVER.IMS_PER_BATCH 12 "
               f"TEST.IMS_PER_BATCH 2 DTYPE float16 SOLVER.MAX_ITER 50000 SOLVER.VAL_PERIOD 2000 "
               f"SOLVER.CHECKPOINT_PERIOD 2000 GLOVE_DIR {glove}").split()
    if detector:
        options += ["MODEL.PRETRAINED_DETECTOR_CKPT", detector]
    return options + ["OUTPUT_DIR", str(output)]


PREDCLS = "MODEL.ROI_RELATION_HEAD.USE_GT_BOX True MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL True"
SGCLS = "MODEL.ROI_RELATION_HEAD.USE_GT_BOX True MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL False"


def test_sgb_readme_imp_command_loads_on_the_vg_yaml_and_builds_sgb_sizes():
    cfg = load_config(os.path.join(REPO, "configs", "e2e_relation_X_101_32_8_FPN_1x.yaml"),
                      readme_options(PREDCLS, "/home/u/glove", "/out", "/ckpt/model_final.pth"))
    assert get_protocol(cfg) == "predcls" and cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR == "IMPPredictor"
    assert cfg.SOLVER.IMS_PER_BATCH == 12 and cfg.DTYPE == "float16"
    stats = {"obj_classes": [f"o{i}" for i in range(151)], "rel_classes": [f"r{i}" for i in range(51)],
             "pred_dist": torch.zeros(151, 151, 51)}
    model = build_predictor(cfg, cfg.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM, stats)
    context = model.context_layer
    # SGB's sizes: 4096-d features into 512-d states, 3 rounds, 51 predicates, no up_dim (POOLING_DIM = MLP dim)
    assert (context.obj_unary.in_features, context.edge_unary.in_features, context.hidden_dim) == (4096, 4096, 512)
    assert context.num_iter == 3 and context.rel_fc.out_features == 51 and model.up_dim is None


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generate_synthetic_vg(str(root / "synthetic_vg"), num_train=16, num_test=4, seed=5, workers=1)
    return root


def test_sgb_readme_imp_options_train_and_test_on_synthetic_vg(data_root, tmp_path):
    """SGCls (the protocol SGB's README singles out for IMP) without a detector checkpoint (the tool warns and
    trains on a random detector's features); the README's MAX_ITER and periods are overridden after it."""
    out = tmp_path / "imp_sgcls"
    options = readme_options(SGCLS, data_root / "no_glove", out)
    args = [sys.executable, "tools/relation_train_net.py", "--config-file",
            os.path.join(REPO, "configs", "synthetic", "imp.yaml"), *options, "SOLVER.MAX_ITER", "2",
            "SOLVER.IMS_PER_BATCH", "4", "SOLVER.VAL_PERIOD", "0", "SOLVER.CHECKPOINT_PERIOD", "2",
            "SOLVER.PRE_VAL", "False", "DATASETS.DATA_DIR", str(data_root), "DATASETS.VAL_SIZE", "4"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SGG_DATA_DIR"):
        env.pop(key, None)
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "slow feature (lr/10) weight" in log  # SGB's slow_heads for IMP
    assert "mode=sgcls" in log and RECALL_LINE.search(log)
    with open(out / "inference" / "SyntheticVG_test" / "results.json") as f:
        results = json.load(f)
    assert 0.0 <= results["R@100"] <= 1.0
    assert (out / "model_final.pth").exists()
