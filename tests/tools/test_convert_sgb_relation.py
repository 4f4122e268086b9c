"""SGB relation checkpoints (detector + relation head) through tools/convert_sgb_checkpoint.py: the key mapping's
summary and errors (sgg/utils/sgb_relation_checkpoint.py) for Motif, Transformer, VCTree and IMP, then a fabricated
SGB MotifPredictor PredCls checkpoint at toy size converted, evaluated by tools/relation_test_net.py, run by
tools/demo.py and fine-tuned (MODEL.WEIGHT), and fabricated VCTree / IMP SGCls checkpoints converted.
The numbers of the conversion are checked against SGB itself in tests/modeling/test_sgb_relation_golden.py."""
import json
import logging
import os
import sys

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "modeling"))
sys.path.insert(0, os.path.join(REPO, "tools"))
import convert_sgb_checkpoint as tool  # noqa: E402
import demo  # noqa: E402
from sgb_relation_weights import seeded_sgb_weights, sgb_relation_shapes, tie_sgb_aliases  # noqa: E402
from test_convert_sgb import sgb_resnet_fpn_state_dict  # noqa: E402
from test_relation_tools import CONFIGS, _opts  # noqa: E402
from test_sgb_relation_golden import OBJ, REL, build_relation_head  # noqa: E402
from tool_process import RECALL_LINE, run_tool  # noqa: E402

from sgg.data.synthetic import generate_synthetic_vg  # noqa: E402
from sgg.utils import sgb_relation_checkpoint as conversion  # noqa: E402
from sgg.utils.errors import CheckpointError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")

HEAD = "MODEL.ROI_RELATION_HEAD."
# the golden test's toy sizes
TOY = dict(fpn=8, resolution=4, mlp=20, num_obj=len(OBJ), num_rel=len(REL), embed=10, hidden=12, pooling=24,
           obj_layers=2, rel_layers=1, transformer=(2, 1, 2, 5, 6, 16))


def sgb_relation(predictor, **sizes):
    """SGB's relation head with names relative to roi_heads.relation., seeded values."""
    weights = seeded_sgb_weights(sgb_relation_shapes(predictor, **{**TOY, **sizes}), seed=1)
    _, relation = conversion.split_relation_state(tie_sgb_aliases(weights))
    return relation


VCTREE_DECODER = ["decoder_rnn.obj_embed.weight", "decoder_rnn.out.weight", "decoder_rnn.out.bias",
                  *[f"decoder_rnn.decoderLSTM.{cell}.{param}" for cell in ("px", "iofux", "iofuh")
                    for param in ("weight", "bias")]]
VCTREE_ALIASES = ["decoder_rnn.decoderLSTM.embed_layer.weight", "decoder_rnn.decoderLSTM.embed_out_layer.weight",
                  "decoder_rnn.decoderLSTM.embed_out_layer.bias"]
VCTREE_CAUSAL = ["untreated_dcd_feat", "untreated_obj_feat", "untreated_edg_feat"]


def target(predictor, mode):
    return build_relation_head(predictor, mode).state_dict()


@pytest.mark.parametrize("predictor, mode, dropped", [
    ("MotifPredictor", "predcls", {"decoder_rnn.obj_embed.weight": conversion.UNUSED_IN_PREDCLS,
                                   "decoder_rnn.input_linearity.weight": conversion.UNUSED_IN_PREDCLS,
                                   "decoder_rnn.input_linearity.bias": conversion.UNUSED_IN_PREDCLS,
                                   "decoder_rnn.state_linearity.weight": conversion.UNUSED_IN_PREDCLS,
                                   "decoder_rnn.state_linearity.bias": conversion.UNUSED_IN_PREDCLS,
                                   "decoder_rnn.out_obj.weight": conversion.UNUSED_IN_PREDCLS,
                                   "decoder_rnn.out_obj.bias": conversion.UNUSED_IN_PREDCLS,
                                   "untreated_dcd_feat": conversion.CAUSAL_AVERAGES,
                                   "untreated_obj_feat": conversion.CAUSAL_AVERAGES,
                                   "untreated_edg_feat": conversion.CAUSAL_AVERAGES}),
    ("MotifPredictor", "sgcls", {"untreated_dcd_feat": conversion.CAUSAL_AVERAGES,
                                 "untreated_obj_feat": conversion.CAUSAL_AVERAGES,
                                 "untreated_edg_feat": conversion.CAUSAL_AVERAGES}),
    ("TransformerPredictor", "predcls", {"out_obj.weight": conversion.UNUSED_IN_PREDCLS,
                                         "out_obj.bias": conversion.UNUSED_IN_PREDCLS}),
    ("TransformerPredictor", "sgcls", {}),
    ("VCTreePredictor", "predcls", {**dict.fromkeys(VCTREE_DECODER, conversion.UNUSED_IN_PREDCLS),
                                    **dict.fromkeys(VCTREE_ALIASES, conversion.DECODER_ALIAS),
                                    **dict.fromkeys(VCTREE_CAUSAL, conversion.CAUSAL_AVERAGES_VCTREE)}),
    ("VCTreePredictor", "sgcls", {**dict.fromkeys(VCTREE_ALIASES, conversion.DECODER_ALIAS),
                                  **dict.fromkeys(VCTREE_CAUSAL, conversion.CAUSAL_AVERAGES_VCTREE)}),
    ("IMPPredictor", "predcls", {"obj_fc.weight": conversion.UNUSED_IN_PREDCLS,
                                 "obj_fc.bias": conversion.UNUSED_IN_PREDCLS}),
    ("IMPPredictor", "sgcls", {}),
])
def test_every_sgb_key_is_mapped_or_dropped_with_its_reason(predictor, mode, dropped):
    relation = sgb_relation(predictor)
    ours = target(predictor, mode)
    converted, reasons = conversion.convert_sgb_relation_state(relation, ours, predictor)
    assert set(converted) == set(ours)
    assert reasons == {f"roi_heads.relation.predictor.context_layer.{k}": why for k, why in dropped.items()}
    assert len(converted) + len(reasons) == len(relation)
    # a few renames and the Conv1d -> Linear reshape, value for value
    assert torch.equal(converted["union_feature_extractor.reduce_channel.0.weight"],
                       relation["union_feature_extractor.feature_extractor.pooler.reduce_channel.0.weight"])
    up_dim = "predictor.up_dim.weight" if predictor == "IMPPredictor" else "predictor.edge_head.up_dim.weight"
    assert torch.equal(converted[up_dim], relation["predictor.up_dim.weight"])
    sgb = "predictor.context_layer."
    if predictor == "VCTreePredictor":  # SGB's foreward / backward tree cells are our upward / downward ones
        layer = "edge_ctx_rnn.multi_layer_lstm.0."
        assert torch.equal(converted["predictor.context.edge_ctx_rnn.upward.0.px.weight"],
                           relation[sgb + layer + "treeLSTM_foreward.treeLSTM.px.weight"])
        assert torch.equal(converted["predictor.context.edge_ctx_rnn.downward.0.px.weight"],
                           relation[sgb + layer + "treeLSTM_backward.treeLSTM.px.weight"])
        assert torch.equal(converted["predictor.context.score_net.score_sub.bias"], relation[sgb + "score_sub.bias"])
        assert torch.equal(converted["predictor.context.obj_embed1.embedding.weight"],
                           relation[sgb + "obj_embed1.weight"])
        if mode == "sgcls":
            assert torch.equal(converted["predictor.context.decoder_rnn.decoderLSTM.iofuh.weight"],
                               relation[sgb + "decoder_rnn.decoderLSTM.iofuh.weight"])
    elif predictor == "IMPPredictor":
        assert torch.equal(converted["predictor.context_layer.sub_vert_w_fc.0.weight"],
                           relation[sgb + "sub_vert_w_fc.0.weight"])
        assert torch.equal(converted["predictor.context_layer.node_gru.weight_hh"],
                           relation[sgb + "node_gru.weight_hh"])
    elif predictor == "TransformerPredictor":
        w_1 = relation["predictor.context_layer.context_obj.layer_stack.1.pos_ffn.w_1.weight"]
        assert w_1.shape == (16, 12, 1)
        linear = converted["predictor.context.context_obj.layers.1.feed_forward.layers.0.weight"]
        assert torch.equal(linear, w_1[:, :, 0])
        assert torch.equal(converted["predictor.context.context_edge.layers.0.attention.w_k.bias"],
                           relation["predictor.context_layer.context_edge.layer_stack.0.slf_attn.w_ks.bias"])
    elif mode == "sgcls":
        assert torch.equal(converted["predictor.context.decoder.input_proj.bias"],
                           relation["predictor.context_layer.decoder_rnn.input_linearity.bias"])
    lines = conversion.dropped_summary(reasons)
    assert len(lines) == len(set(dropped.values()))  # one line per reason


def test_without_vision_the_union_extractor_and_up_dim_are_dropped():
    relation = sgb_relation("MotifPredictor")
    ours = build_relation_head("MotifPredictor", "sgcls", HEAD + "PREDICT_USE_VISION", "False").state_dict()
    converted, reasons = conversion.convert_sgb_relation_state(relation, ours, "MotifPredictor")
    assert set(converted) == set(ours)
    no_vision = {k for k, why in reasons.items() if why.startswith("PREDICT_USE_VISION is False")}
    assert no_vision == {f"roi_heads.relation.{k}" for k in relation
                         if k.startswith(("union_feature_extractor.", "predictor.up_dim."))}
    assert len(no_vision) == 22  # reduce_channel 2, fc6 / fc7 4, rect_conv 2 + 5 + 2 + 5 (conv, BN, conv, BN), up_dim 2


def test_a_predictor_without_mapping_is_named(monkeypatch):
    monkeypatch.delitem(conversion.SGB_PREDICTOR_KEYS, "CausalAnalysisPredictor")  # as a predictor not mapped yet
    relation = sgb_relation("MotifPredictor")
    causal = {**relation, "predictor.vis_compress.weight": torch.zeros(6, 24)}
    with pytest.raises(CheckpointError, match=r"SGB's CausalAnalysisPredictor \(it has roi_heads\.relation\.predictor"
                                              r"\.vis_compress\.weight\); its weights have no mapping"):
        conversion.convert_sgb_relation_state(causal, target("MotifPredictor", "predcls"), "CausalAnalysisPredictor")
    with pytest.raises(CheckpointError, match="no mapping to this framework yet \\(mapped: IMPPredictor, "
                                              "MotifPredictor, TransformerPredictor, VCTreePredictor\\)"):
        conversion.convert_sgb_relation_state(causal, target("MotifPredictor", "predcls"), "CausalAnalysisPredictor")
    with pytest.raises(CheckpointError, match=r"cannot tell which SGB predictor .*\['roi_heads\.relation\.predictor"
                                              r"\.rel_compress\.weight'\]\); known: CausalAnalysisPredictor, "):
        conversion.convert_sgb_relation_state({"predictor.rel_compress.weight": torch.zeros(1)},
                                              target("MotifPredictor", "predcls"), "MotifPredictor")


def test_a_new_predictor_table_plugs_in_with_one_entry(monkeypatch):
    """What a new mapping does: one registry entry, then the same checks and summary."""
    relation = {**sgb_relation("MotifPredictor"), "predictor.vis_compress.weight": torch.zeros(6, 24)}
    table = conversion.PredictorKeys(rules=(conversion.Drop(r"^predictor\.vis_compress\.", "not used here"),
                                            *conversion.MOTIF_KEYS.rules))
    monkeypatch.setitem(conversion.SGB_PREDICTOR_KEYS, "CausalAnalysisPredictor", table)
    converted, dropped = conversion.convert_sgb_relation_state(relation, target("MotifPredictor", "predcls"),
                                                               "CausalAnalysisPredictor")
    assert dropped["roi_heads.relation.predictor.vis_compress.weight"] == "not used here"
    assert len(converted) + len(dropped) == len(relation)


@pytest.mark.parametrize("predictor", ["VCTreePredictor", "IMPPredictor"])
def test_vctree_and_imp_checkpoints_are_recognised(predictor):
    relation = sgb_relation(predictor)
    with pytest.raises(CheckpointError, match=f"SGB's {predictor} .* but MODEL.ROI_RELATION_HEAD.PREDICTOR is "
                                              f"'MotifPredictor': set it to '{predictor}'"):
        conversion.convert_sgb_relation_state(relation, target("MotifPredictor", "sgcls"), "MotifPredictor")


def test_vctree_decoder_aliases_must_hold_the_aliased_tensors():
    relation = sgb_relation("VCTreePredictor")
    alias = "predictor.context_layer.decoder_rnn.decoderLSTM.embed_out_layer.bias"
    relation[alias] = relation[alias] + 1
    with pytest.raises(CheckpointError, match=r"roi_heads\.relation\.predictor\.context_layer\.decoder_rnn\."
                                              r"decoderLSTM\.embed_out_layer\.bias differs from roi_heads\.relation\."
                                              r"predictor\.context_layer\.decoder_rnn\.out\.bias"):
        conversion.convert_sgb_relation_state(relation, target("VCTreePredictor", "sgcls"), "VCTreePredictor")


def test_mismatches_are_named():
    relation = sgb_relation("MotifPredictor")
    ours = target("MotifPredictor", "predcls")
    with pytest.raises(CheckpointError, match=r"SGB's MotifPredictor .* but MODEL.ROI_RELATION_HEAD.PREDICTOR is "
                                              r"'TransformerPredictor': set it to 'MotifPredictor'"):
        conversion.convert_sgb_relation_state(relation, target("TransformerPredictor", "predcls"),
                                              "TransformerPredictor")
    with pytest.raises(CheckpointError, match=r"1 SGB relation tensors have another shape here, e.g. \['roi_heads\."
                                              r"relation\.predictor\.rel_compress\.weight \(9, 24\) -> relation_head\."
                                              r"predictor\.edge_head\.rel_compress\.weight \(6, 24\)'\].*NUM_CLASSES"):
        wrong = {**relation, "predictor.rel_compress.weight": torch.zeros(9, 24)}
        conversion.convert_sgb_relation_state(wrong, ours, "MotifPredictor")
    with pytest.raises(CheckpointError, match=r"1 SGB relation keys have no counterpart here, e.g. \['roi_heads\."
                                              r"relation\.predictor\.context_layer\.extra\.weight'\]"):
        extra = {**relation, "predictor.context_layer.extra.weight": torch.zeros(1)}
        conversion.convert_sgb_relation_state(extra, ours, "MotifPredictor")
    with pytest.raises(CheckpointError, match=r"does not provide 1 tensors of this relation head, e.g. "
                                              r"\['relation_head\.predictor\.context\.obj_embed2\.weight'\]"):
        partial = {k: v for k, v in relation.items() if "obj_embed2" not in k}
        conversion.convert_sgb_relation_state(partial, ours, "MotifPredictor")
    # SGB's relation yaml pools all FPN levels: a config without POOLING_ALL_LEVELS has no reduce_channel
    with pytest.raises(CheckpointError, match=r"reduce_channel\.0\.weight \(-> relation_head\.union_feature_extractor"
                                              r"\.reduce_channel\.0\.weight, not in this relation head\).*"
                                              r"POOLING_ALL_LEVELS"):
        no_cat = {k: v for k, v in ours.items() if "reduce_channel" not in k}
        conversion.convert_sgb_relation_state(relation, no_cat, "MotifPredictor")


@pytest.mark.parametrize("predictor, predcls, dropped", [("MotifPredictor", True, 10), ("MotifPredictor", False, 3),
                                                         ("TransformerPredictor", True, 2),
                                                         ("TransformerPredictor", False, 0),
                                                         ("VCTreePredictor", True, 15), ("VCTreePredictor", False, 6),
                                                         ("IMPPredictor", True, 2), ("IMPPredictor", False, 0)])
def test_sgb_vg150_relation_heads_fit_the_vg150_config(predictor, predcls, dropped):
    """SGB's VG150 sizes (its relation yaml: X-101-FPN 256 channels, 7 x 7 RoIs, MLP and pooling 4096, embedding
    200, hidden 512, 151 classes, 51 predicates, Transformer 4 + 2 layers of 8 heads, 64 / 64, inner 2048; IMP's
    hidden size 512) fit the
    model our SGB-convention VG150 config builds, tensor for tensor (built on the meta device: shapes only)."""
    cfg = tool.load_sgb_config(os.path.join(REPO, "configs", "e2e_relation_X_101_32_8_FPN_1x_sgb_detector.yaml"),
                               [HEAD + "PREDICTOR", predictor, HEAD + "USE_GT_OBJECT_LABEL", str(predcls)])
    with torch.device("meta"):
        model = tool.build_scene_graph_model(cfg, None)
    ours = {k[len("relation_head."):]: v for k, v in model.state_dict().items() if k.startswith("relation_head.")}
    shapes = sgb_relation_shapes(predictor, fpn=256, resolution=7, mlp=4096, num_obj=151, num_rel=51, embed=200,
                                 hidden=512, pooling=4096)
    relation = {k[len("roi_heads.relation."):]: torch.empty(s, device="meta") for k, s in shapes.items()}
    converted, reasons = conversion.convert_sgb_relation_state(relation, ours, predictor)
    assert set(converted) == set(ours) and len(reasons) == dropped
    assert len(converted) + len(reasons) == len(relation)


# ---------------------------------------------------------------------------------------------- end to end
# a small R-50-FPN (2 groups of 4) with a 16-channel FPN in SGB's layout, SGB's VG anchors (4 ratios, 5 levels), and
# a Motif PredCls relation head on the synthetic dataset's 30 classes and 22 predicates
FPN, MLP, RES, NUM_OBJ, NUM_REL = 16, 32, 4, 31, 23
MODEL_OPTS = ["MODEL.BACKBONE.CONV_BODY", "R-50-FPN", "MODEL.RESNETS.NUM_GROUPS", "2", "MODEL.RESNETS.WIDTH_PER_GROUP",
              "4", "MODEL.BACKBONE.OUT_CHANNELS", str(FPN), "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", str(FPN),
              "MODEL.RPN.RPN_MID_CHANNEL", str(FPN), "MODEL.RPN.ANCHOR_SIZES", "(32, 64, 128, 256, 512)",
              "MODEL.RPN.ANCHOR_STRIDE", "(4, 8, 16, 32, 64)",
              "MODEL.RPN.ASPECT_RATIOS", "(0.23232838, 0.63365731, 1.28478321, 3.15089189)",
              "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", str(MLP), "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", str(RES),
              HEAD + "PREDICTOR", "MotifPredictor", HEAD + "EMBED_DIM", "8", HEAD + "CONTEXT_HIDDEN_DIM", "16",
              HEAD + "CONTEXT_POOLING_DIM", str(MLP), HEAD + "POOLING_ALL_LEVELS", "True",
              *tool.SGB_CONVENTIONS]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A synthetic VG small enough for three tool runs: 8 training and 3 test images."""
    root = tmp_path_factory.mktemp("data")
    generate_synthetic_vg(str(root / "synthetic_vg"), num_train=8, num_test=3, seed=5, workers=1)
    return root


@pytest.fixture(scope="module")
def sgb_checkpoint(tmp_path_factory):
    """What SGB's relation_train_net.py saves for a Motif PredCls run: DataParallel names, detector + relation."""
    torch.manual_seed(0)
    state = sgb_resnet_fpn_state_dict(groups=2, width_per_group=4, fpn=FPN, num_classes=NUM_OBJ, resolution=RES)
    # conv weights of N(0, 1) overflow a random 50-layer trunk (NaN features); a tenth keeps them finite
    state = {k: v * 0.1 if v.is_floating_point() and v.dim() > 1 else v for k, v in state.items()}
    shapes = sgb_relation_shapes("MotifPredictor", fpn=FPN, resolution=RES, mlp=MLP, num_obj=NUM_OBJ, num_rel=NUM_REL,
                                 embed=8, hidden=16, pooling=MLP)
    state.update(seeded_sgb_weights(shapes, seed=2))
    path = tmp_path_factory.mktemp("sgb_motif") / "model_final.pth"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "iteration": 12000}, path)
    return path, state


def test_convert_evaluate_demo_and_finetune(sgb_checkpoint, data_root, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path, state = sgb_checkpoint
    config = os.path.join(CONFIGS, "relation_predcls.yaml")
    data_opts = ["DATASETS.DATA_DIR", str(data_root), "GLOVE_DIR", str(data_root / "no_glove")]
    converted = tmp_path / "converted.pth"
    assert tool.main(["--sgb-checkpoint", str(path), "--output", str(converted), "--config-file", config,
                      *MODEL_OPTS, *data_opts]) == 0
    assert "dropped 7 SGB tensors (roi_heads.relation.predictor.context_layer.decoder_rnn" in caplog.text
    assert "dropped 3 SGB tensors (roi_heads.relation.predictor.context_layer.untreated_dcd_feat" in caplog.text
    saved = torch.load(converted, weights_only=False)
    assert saved["sgb_skipped"]["roi_heads.relation.predictor.context_layer.untreated_obj_feat"] == \
        conversion.CAUSAL_AVERAGES
    assert saved["label_names"]["ind_to_predicates"][0] == "__background__"
    assert len(saved["label_names"]["ind_to_classes"]) == NUM_OBJ
    model = saved["model"]
    assert torch.equal(model["detector.backbone.body.layer4.2.conv3.weight"],
                       state["backbone.body.layer4.2.conv3.weight"])
    assert torch.equal(model["relation_head.predictor.edge_head.freq_bias.obj_baseline.weight"],
                       state["roi_heads.relation.predictor.freq_bias.obj_baseline.weight"])
    assert torch.equal(model["relation_head.union_feature_extractor.fc7.bias"],
                       state["roi_heads.relation.union_feature_extractor.feature_extractor.fc7.bias"])

    # relation_test_net.py evaluates it (strict loading: every tensor of the model comes from the file)
    out = tmp_path / "test"
    opts = _opts(data_root, out, 1, *MODEL_OPTS, "MODEL.WEIGHT", str(converted))
    log = run_tool(["tools/relation_test_net.py", "--config-file", config, *opts])
    assert f"Loaded model weights from {converted} ({len(model)} of {len(model)} model tensors)" in log
    assert RECALL_LINE.search(log)

    # demo.py gives the scene graph of a synthetic image with its PredCls boxes and labels
    source = data_root / "synthetic_vg" / "VG_100K"
    image_file = source / sorted(os.listdir(source))[0]
    names = saved["label_names"]["ind_to_classes"]
    given = {image_file.name: {"boxes": [[4, 4, 60, 50], [40, 30, 120, 110], [90, 10, 150, 90]],
                               "labels": [names[1], names[2], names[3]]}}
    (tmp_path / "boxes.json").write_text(json.dumps(given))
    assert demo.main(["--checkpoint", str(converted), "--input", str(image_file), "--boxes",
                      str(tmp_path / "boxes.json"), "--output", str(tmp_path / "demo"), "--no-picture"]) == 0
    graph = json.loads((tmp_path / "demo" / f"{image_file.name}.json").read_text())
    assert [o["label"] for o in graph["objects"]] == given[image_file.name]["labels"]
    assert len(graph["relations"]) == 6  # every ordered pair of the 3 boxes

    # fine-tuning starts from it: two iterations, the frozen detector keeps SGB's weights, the relation head moves
    out = tmp_path / "finetune"
    opts = _opts(data_root, out, 2, *MODEL_OPTS, "MODEL.WEIGHT", str(converted), "SOLVER.TO_VAL", "False")
    log = run_tool(["tools/relation_train_net.py", "--config-file", config, "--skip-test", *opts])
    assert f"Loaded model weights from {converted}" in log
    tuned = torch.load(out / "model_final.pth", weights_only=False)["model"]
    assert all(torch.equal(tuned[k], v) for k, v in model.items() if k.startswith("detector."))
    assert not torch.equal(tuned["relation_head.predictor.edge_head.rel_compress.weight"],
                           model["relation_head.predictor.edge_head.rel_compress.weight"])


def test_motif_decoder_state_without_input_bias_loads_with_a_zero_bias():
    """Motif SGCls state dicts written before the decoder's input projection had SGB's bias still load."""
    head = build_relation_head("MotifPredictor", "sgcls")
    state = head.state_dict()
    old = {k: v.clone() for k, v in state.items() if k != "predictor.context.decoder.input_proj.bias"}
    with torch.no_grad():
        head.predictor.context.decoder.input_proj.bias.fill_(3.0)
    head.load_state_dict(old, strict=True)
    assert torch.equal(head.predictor.context.decoder.input_proj.bias, torch.zeros(6 * 12))


def test_the_tool_names_an_unmapped_or_other_predictor(sgb_checkpoint, tmp_path, caplog, monkeypatch):
    monkeypatch.delitem(conversion.SGB_PREDICTOR_KEYS, "CausalAnalysisPredictor")  # as a predictor not mapped yet
    path, state = sgb_checkpoint
    config = os.path.join(CONFIGS, "relation_predcls.yaml")
    causal = tmp_path / "causal.pth"
    torch.save({"model": {**state, "roi_heads.relation.predictor.vis_compress.weight": torch.zeros(NUM_REL, MLP)}},
               causal)
    out = tmp_path / "never.pth"
    assert tool.main(["--sgb-checkpoint", str(causal), "--output", str(out), "--config-file", config,
                      *MODEL_OPTS]) == 2
    assert "SGB's CausalAnalysisPredictor (it has roi_heads.relation.predictor.vis_compress.weight); its weights " \
           "have no mapping" in caplog.text and not out.exists()
    assert tool.main(["--sgb-checkpoint", str(path), "--output", str(out), "--config-file", config, *MODEL_OPTS,
                      HEAD + "PREDICTOR", "TransformerPredictor"]) == 2
    assert "set it to 'MotifPredictor'" in caplog.text and not out.exists()


@pytest.mark.parametrize("predictor, dropped_lines", [
    ("VCTreePredictor", ["dropped 3 SGB tensors (roi_heads.relation.predictor.context_layer.decoder_rnn.decoderLSTM."
                         "embed_layer.weight", "dropped 3 SGB tensors (roi_heads.relation.predictor.context_layer."
                         "untreated_dcd_feat"]),
    ("IMPPredictor", []),
])
def test_the_tool_converts_vctree_and_imp_sgcls_checkpoints(sgb_checkpoint, tmp_path, caplog, predictor,
                                                              dropped_lines):
    """An SGB VCTree / IMP SGCls run's checkpoint (the same detector) through the tool: every tensor lands."""
    caplog.set_level(logging.INFO)
    _, state = sgb_checkpoint
    detector = {k: v for k, v in state.items() if not k.startswith("roi_heads.relation.")}
    relation = sgb_relation_shapes(predictor, fpn=FPN, resolution=RES, mlp=MLP, num_obj=NUM_OBJ, num_rel=NUM_REL,
                                   embed=8, hidden=16, pooling=MLP, imp_hidden=24)
    sgb_state = {**detector, **tie_sgb_aliases(seeded_sgb_weights(relation, seed=3))}
    path = tmp_path / "model_final.pth"
    torch.save({"model": {f"module.{k}": v for k, v in sgb_state.items()}, "iteration": 100}, path)
    out = tmp_path / "converted.pth"
    opts = [*MODEL_OPTS, HEAD + "PREDICTOR", predictor, HEAD + "USE_GT_OBJECT_LABEL", "False", HEAD + "IMP.HIDDEN_DIM",
            "24"]
    assert tool.main(["--sgb-checkpoint", str(path), "--output", str(out), "--config-file",
                      os.path.join(CONFIGS, "relation_sgcls.yaml"), *opts]) == 0
    for line in dropped_lines:
        assert line in caplog.text
    model = torch.load(out, weights_only=False)["model"]
    ours = {k for k in model if k.startswith("relation_head.")}
    assert len(ours) + len(dropped_lines) * 3 == len(relation)
    if predictor == "VCTreePredictor":
        assert torch.equal(model["relation_head.predictor.context.obj_ctx_rnn.downward.0.iofuh.bias"],
                           sgb_state["roi_heads.relation.predictor.context_layer.obj_ctx_rnn.multi_layer_lstm.0."
                                     "treeLSTM_backward.treeLSTM.iofuh.bias"])
    else:
        assert torch.equal(model["relation_head.predictor.context_layer.obj_fc.weight"],
                           sgb_state["roi_heads.relation.predictor.context_layer.obj_fc.weight"])
