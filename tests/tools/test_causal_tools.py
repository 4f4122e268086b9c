"""SGB's README command lines for Causal TDE (training example 2 and test example 2: SGCls, Causal, TDE, SUM fusion,
MOTIFS), with their options unchanged, on the relation yamls: loaded on the VG150 yaml, and run end to end at toy
size on synthetic VG (the options are followed by the toy-size ones, which win: paths, 2 iterations)."""
import json
import os
import shlex
import shutil

import numpy as np
import torch

from sgg.config import load_config
from sgg.evaluation.prediction_file import read_prediction_file
from sgg.modeling.roi_heads.relation_head.losses.build import with_required_terms
from sgg.modeling.roi_heads.relation_head.losses.reweight import resolve_loss_spec

from test_relation_tools import CONFIGS, REPO, _opts, data_root, detector_ckpt  # noqa: F401  (fixtures)
from tool_process import run_tool

HEAD = "MODEL.ROI_RELATION_HEAD."
# SGB README.md, "Training Example 2" and "Test Example 2", after the tool's name (paths as printed there)
README_TRAIN = shlex.split(
    'MODEL.ROI_RELATION_HEAD.USE_GT_BOX True MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL False '
    'MODEL.ROI_RELATION_HEAD.PREDICTOR CausalAnalysisPredictor MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE none '
    'MODEL.ROI_RELATION_HEAD.CAUSAL.FUSION_TYPE sum MODEL.ROI_RELATION_HEAD.CAUSAL.CONTEXT_LAYER motifs  '
    'SOLVER.IMS_PER_BATCH 12 TEST.IMS_PER_BATCH 2 DTYPE "float16" SOLVER.MAX_ITER 50000 SOLVER.VAL_PERIOD 2000 '
    'SOLVER.CHECKPOINT_PERIOD 2000 GLOVE_DIR /home/kaihua/glove MODEL.PRETRAINED_DETECTOR_CKPT '
    '/home/kaihua/checkpoints/pretrained_faster_rcnn/model_final.pth OUTPUT_DIR '
    '/home/kaihua/checkpoints/causal-motifs-sgcls-exmp')
README_TEST = shlex.split(
    'MODEL.ROI_RELATION_HEAD.USE_GT_BOX True MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL False '
    'MODEL.ROI_RELATION_HEAD.PREDICTOR CausalAnalysisPredictor MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE TDE '
    'MODEL.ROI_RELATION_HEAD.CAUSAL.FUSION_TYPE sum MODEL.ROI_RELATION_HEAD.CAUSAL.CONTEXT_LAYER motifs  '
    'TEST.IMS_PER_BATCH 1 DTYPE "float16" GLOVE_DIR /home/kaihua/glove MODEL.PRETRAINED_DETECTOR_CKPT '
    '/home/kaihua/checkpoints/causal-motifs-sgcls-exmp OUTPUT_DIR /home/kaihua/checkpoints/causal-motifs-sgcls-exmp')


def test_vg150_causal_configs_are_sgbs_yaml_with_the_causal_predictor():
    for name, effect in (("causal_motifs.yaml", "none"), ("causal_motifs_tde.yaml", "TDE")):
        cfg = load_config(os.path.join(REPO, "configs", "causal", name))
        head = cfg.MODEL.ROI_RELATION_HEAD
        assert head.PREDICTOR == "CausalAnalysisPredictor" and head.CONTEXT_POOLING_DIM == 4096
        assert (head.CAUSAL.EFFECT_TYPE, head.CAUSAL.EFFECT_ANALYSIS, head.CAUSAL.SPATIAL_FOR_VISION) == (effect, True,
                                                                                                       True)


def test_readme_commands_load_on_the_vg150_yaml():
    vg150 = os.path.join(REPO, "configs", "e2e_relation_X_101_32_8_FPN_1x.yaml")
    for opts, effect in ((README_TRAIN, "none"), (README_TEST, "TDE")):
        causal = load_config(vg150, opts).MODEL.ROI_RELATION_HEAD.CAUSAL
        assert (causal.EFFECT_TYPE, causal.FUSION_TYPE, causal.CONTEXT_LAYER) == (effect, "sum", "motifs")
        assert causal.EFFECT_ANALYSIS and causal.SPATIAL_FOR_VISION and not causal.SEPARATE_SPATIAL  # SGB's yaml


def test_readme_train_then_tde_test_run_on_synthetic(data_root, detector_ckpt, tmp_path):  # noqa: F811
    out = tmp_path / "causal-motifs-sgcls"
    toy = _opts(data_root, out, 2, "MODEL.PRETRAINED_DETECTOR_CKPT", str(detector_ckpt))
    config = os.path.join(CONFIGS, "causal_motifs.yaml")
    log = run_tool(["tools/relation_train_net.py", "--config-file", config, *README_TRAIN, *toy])
    for term in ("auxiliary_ctx", "auxiliary_vis", "auxiliary_frq", "loss_rel", "loss_refine_obj"):
        assert term in log, term
    weights = torch.load(out / "model_final.pth", map_location="cpu", weights_only=False)["model"]
    assert weights["relation_head.predictor.untreated_feat"].abs().sum() > 0  # trained and saved averages
    assert weights["relation_head.predictor.context.untreated_edg_feat"].abs().sum() > 0
    folder = out / "inference" / "SyntheticVG_test"
    shutil.copy(folder / "predictions.sgg", tmp_path / "factual.sgg")

    # the README's test command on the training run's OUTPUT_DIR (its last_checkpoint is loaded)
    run_tool(["tools/relation_test_net.py", "--config-file", config, *README_TEST,
          *_opts(data_root, out, 2, "TEST.IMS_PER_BATCH", "1")])
    tde = json.loads((folder / "results.json").read_text())
    assert 0.0 <= tde["R@100"] <= 1.0 and 0.0 <= tde["mR@100"] <= 1.0
    factual_scores = [r.prediction["rel_scores"] for r in read_prediction_file(str(tmp_path / "factual.sgg"))]
    tde_scores = [r.prediction["rel_scores"] for r in read_prediction_file(str(folder / "predictions.sgg"))]
    assert len(tde_scores) == len(factual_scores) == 12
    assert not all(a.shape == b.shape and np.allclose(a, b) for a, b in zip(factual_scores, tde_scores))



def test_synthetic_vctree_configs_are_the_motifs_ones_with_the_vctree_context_and_its_binary_loss():
    for name, effect in (("causal_vctree.yaml", "none"), ("causal_vctree_tde.yaml", "TDE")):
        cfg = load_config(os.path.join(CONFIGS, name))
        head = cfg.MODEL.ROI_RELATION_HEAD
        assert head.PREDICTOR == "CausalAnalysisPredictor" and head.CAUSAL.CONTEXT_LAYER == "vctree"
        assert (head.CAUSAL.EFFECT_TYPE, head.CAUSAL.EFFECT_ANALYSIS, head.CAUSAL.SPATIAL_FOR_VISION) == (effect, True,
                                                                                                       True)
        assert head.CONTEXT_POOLING_DIM == cfg.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM and head.CONTEXT_HIDDEN_DIM % 2 == 0
        terms = [term for term, _ in with_required_terms(resolve_loss_spec(cfg), cfg)]
        assert terms == ["RelationCE", "ObjectCE", "CausalAuxiliaryCE", "VCTreeBinary"]
