"""BA-SGG end to end on a tiny synthetic VG: stage 1, the confusion matrix tool, stage 2 (tools as a user runs them)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_relation_tools import CONFIGS, _opts, data_root, detector_ckpt  # noqa: E402,F401  (fixtures)
from tool_process import run_tool  # noqa: E402


def test_stage1_confusion_matrix_stage2(data_root, detector_ckpt, tmp_path):  # noqa: F811
    from sgg.data.datasets import VGDataset

    config = os.path.join(CONFIGS, "relation_predcls.yaml")
    stage1 = tmp_path / "stage1"
    base = ["MODEL.ROI_RELATION_HEAD.PREDICTOR", "TransformerPredictor"]
    run_tool(["tools/relation_train_net.py", "--config-file", config, "--skip-test",
          *_opts(data_root, stage1, 2, *base, "MODEL.PRETRAINED_DETECTOR_CKPT", str(detector_ckpt))])

    log = run_tool(["tools/relation_confusion_matrix.py", "--config-file", str(stage1 / "config.yaml"),
                "OUTPUT_DIR", str(stage1), "MODEL.WEIGHT", str(stage1 / "model_final.pth")])
    matrix = np.load(stage1 / "conf_mat_freq_train.npy")
    assert matrix.shape == (23, 23) and (matrix[0] == 0).all() and (matrix[:, 0] == 0).all()
    vg = data_root / "synthetic_vg"
    train = VGDataset("train", str(vg / "VG_100K"), str(vg / "VG-SGG-with-attri.h5"),
                      str(vg / "VG-SGG-dicts-with-attri.json"), str(vg / "image_data.json"), num_val_im=6,
                      filter_non_overlap=False, filter_duplicate_rels=False, check_images=False)
    # every annotated training triplet is counted once, in its GT row
    assert matrix.sum() == sum(len(r) for r in train.relationships)
    gt_counts = np.bincount(np.concatenate([r[:, 2] for r in train.relationships]), minlength=23)
    assert np.array_equal(matrix.sum(axis=1), gt_counts)
    assert (stage1 / "conf_mat_freq_train.png").stat().st_size > 1000
    assert "had no predicted pair" not in log

    # the tiny split lacks some predicates: their all-zero rows are accepted with a warning naming them (their
    # transfer rows are the identity, as the reference's + 1e-8 makes them)
    empty = np.flatnonzero(matrix[1:].sum(axis=1) == 0) + 1
    assert len(empty) > 0
    np.save(tmp_path / "conf_mat.npy", matrix)
    stage2 = tmp_path / "stage2"
    stage2_opts = _opts(data_root, stage2, 2, *base, "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True",
                        "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", "True",
                        "MODEL.ROI_RELATION_HEAD.BA_SGG.CONFUSION_MATRIX_PATH", str(tmp_path / "conf_mat.npy"),
                        "MODEL.ROI_RELATION_HEAD.BA_SGG.TOP_PREDICATES", "5",
                        "MODEL.ROI_RELATION_HEAD.BA_SGG.MAX_INSTANCES", "3")
    log = run_tool(["tools/relation_train_net.py", "--config-file", config, *stage2_opts,
                "MODEL.PRETRAINED_MODEL_CKPT", str(stage1 / "model_final.pth")])
    assert "BA-SGG clean classifier over edge_head.rel_compress" in log
    assert f"has all-zero rows for predicates {empty[0]} (" in log
    assert "classifier copied into the clean classifier" in log and "capped at 3" in log
    assert (stage2 / "inference" / "SyntheticVG_test" / "results.json").exists()

    # stage 2 without its stage-1 model is refused before anything trains
    no_stage1 = _opts(data_root, tmp_path / "no_stage1", 2) + stage2_opts[stage2_opts.index(base[0]):]
    log = run_tool(["tools/relation_train_net.py", "--config-file", config, *no_stage1], expect_ok=False)
    assert "MODEL.PRETRAINED_MODEL_CKPT is empty" in log
