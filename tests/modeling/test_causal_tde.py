"""Causal TDE (CausalAnalysisPredictor, docs/causal_tde.md) on hand-computed cases: the effect definitions, the fused
logits, the moving averages, the branch losses, and every config path that must fail with a clear message."""
import logging
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from sgg.config import ConfigError, load_config
from sgg.modeling.roi_heads.relation_head.feature_extractors import RelationFeatureExtractor
from sgg.modeling.roi_heads.relation_head.losses import RelationLossInputs, build_relation_losses
from sgg.modeling.roi_heads.relation_head.predictors import build_predictor
from sgg.modeling.roi_heads.relation_head.predictors.causal import (CONTEXT_LAYERS, CausalAnalysisPredictor,
                                                                    causal_effect, pair_box_info)
from sgg.modeling.roi_heads.relation_head.layers.moving_average import update_moving_average
from sgg.modeling.roi_heads.relation_head.types import RelationBatch
from sgg.structures import BoxList

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")
HEAD = "MODEL.ROI_RELATION_HEAD."


class FixedContext(nn.Module):
    """Two objects with fixed object logits and edge contexts, and other fixed ones for the counterfactual pass."""

    def forward(self, batch, ctx_average=False):
        if ctx_average:
            obj_logits = torch.tensor([[math.log(3.0), 0.0], [math.log(3.0), 0.0]])  # probabilities [3/4, 1/4]
            edge_ctx = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        else:
            obj_logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])  # [1/4, 3/4] and [1/2, 1/2]
            edge_ctx = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
        return obj_logits, torch.tensor([1, 0]), edge_ctx


def hand_predictor(fusion="sum", effect="TDE"):
    """ctx_rep = e_s - e_o (VTransE's difference with post_emb = [I; I]), ctx_compress = [[1, 0], [0, 1], [1, 1]],
    vis = [0.5, 0, -0.5] for every pair, frequency table rows (s, o) = (0,0) 0, (0,1) [1,0,0], (1,0) [0,2,0],
    (1,1) [0,0,4]; the gate's own layer is zero."""
    pred_dist = np.array([[[0, 0, 0], [1, 0, 0]], [[0, 2, 0], [0, 0, 4]]], dtype=np.float32)
    predictor = CausalAnalysisPredictor(FixedContext(), pair_difference=True, hidden_dim=2, pooling_dim=2,
                                        num_rel_classes=3, pred_dist=pred_dist, fusion_type=fusion,
                                        effect_analysis=True, effect_type=effect)
    with torch.no_grad():
        predictor.post_emb.weight.copy_(torch.cat([torch.eye(2), torch.eye(2)]))
        predictor.post_emb.bias.zero_()
        predictor.ctx_compress.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        predictor.vis_compress.weight.zero_()
        predictor.vis_compress.bias.copy_(torch.tensor([0.5, 0.0, -0.5]))
        if predictor.ctx_gate_fc is not None:
            predictor.ctx_gate_fc.weight.zero_()
            predictor.ctx_gate_fc.bias.zero_()
    return predictor


def hand_batch(pairs=((0, 1), (1, 0)), rel_labels=None):
    boxes = BoxList(torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 20.0, 30.0]]), (40, 40))
    pairs = torch.tensor(pairs)
    return RelationBatch(mode="predcls", boxes=[boxes], pair_idxs=[pairs], roi_features=torch.zeros(2, 2),
                         union_features=torch.arange(2 * len(pairs), dtype=torch.float32).view(-1, 2),
                         rel_labels=rel_labels)


# Pairs (0, 1) and (1, 0): ctx = [1, 3] / [-1, -3] -> ctx logits [1, 3, 4] / [-1, -3, -4]; the counterfactual
# ctx = [1, -1] / [-1, 1] -> [1, -1, 0] / [-1, 1, 0]. Soft frequency bias sum_ij p_s(i) p_o(j) W[i, j]:
# factual [.125, .75, 1.5] / [.375, .25, 1.5]; counterfactual (both [3/4, 1/4]) [.1875, .375, .25] for both.
TDE_SUM = [[0.0, 4.0, 4.0], [0.0, -4.0, -4.0]]
NIE_SUM = [[-0.0625, 0.375, 1.25], [0.1875, -0.125, 1.25]]
TE_SUM = [[-0.0625, 4.375, 5.25], [0.1875, -4.125, -2.75]]


@pytest.mark.parametrize("effect,expected", [("TDE", TDE_SUM), ("NIE", NIE_SUM), ("TE", TE_SUM)])
def test_sum_fusion_effects_by_hand(effect, expected):
    predictor = hand_predictor("sum", effect).eval()
    out = predictor(hand_batch())
    assert torch.allclose(out.rel_logits, torch.tensor(expected), atol=1e-6)


def test_effect_type_none_gives_the_factual_logits_with_the_hard_labels():
    # labels (1, 0): pair (0, 1) reads W[1, 0] = [0, 2, 0], pair (1, 0) reads W[0, 1] = [1, 0, 0]
    out = hand_predictor("sum", "none").eval()(hand_batch())
    assert torch.allclose(out.rel_logits, torch.tensor([[1.5, 5.0, 3.5], [0.5, -3.0, -4.5]]), atol=1e-6)


def test_gate_fusion_tde_by_hand():
    # ctx * sigmoid(vis + soft frq + 0): the gate is the same in both passes, so TDE = (ctx - ctx') * gate
    out = hand_predictor("gate", "TDE").eval()(hand_batch())
    sig = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    expected = [[0.0, 4 * sig(0.75), 4 * sig(1.0)], [0.0, -4 * sig(0.25), -4 * sig(1.0)]]
    assert torch.allclose(out.rel_logits, torch.tensor(expected), atol=1e-6)


SPATIAL = [[2.0, 1.0], [1.0, 0.5]]  # SEPARATE_SPATIAL's per-pair mask features


def test_separate_spatial_multiplies_the_context_and_its_average_by_hand():
    predictor = hand_predictor("sum", "TDE")
    predictor.separate_spatial = True
    predictor.untreated_conv_spt.copy_(torch.tensor([3.0, -1.0]))
    batch = hand_batch()
    batch.union_spatial_features = torch.tensor(SPATIAL)
    # ctx [1, 3] * [2, 1] = [2, 3] -> [2, 3, 5]; [-1, -3] * [1, .5] -> [-1, -1.5, -2.5]
    # counterfactual [1, -1] * [3, -1] = [3, 1] -> [3, 1, 4]; [-1, 1] * [3, -1] -> [-3, -1, -4]
    out = predictor.eval()(batch)
    assert torch.allclose(out.rel_logits, torch.tensor([[-1.0, 2.0, 1.0], [2.0, -0.5, 1.5]]), atol=1e-6)
    predictor.untreated_conv_spt.zero_()
    batch.rel_labels = [torch.tensor([1, 0])]
    predictor.train()(batch)
    assert torch.allclose(predictor.untreated_conv_spt, torch.tensor([0.00075, 0.000375]), atol=1e-9)
    batch.union_spatial_features = None
    with pytest.raises(ValueError, match="needs the relation batch's union_spatial_features"):
        predictor(batch)


def test_separate_spatial_extractor_splits_region_and_mask_features():
    torch.manual_seed(0)
    boxes = [BoxList(torch.tensor([[0.0, 0.0, 20.0, 20.0], [30.0, 30.0, 60.0, 50.0], [5.0, 40.0, 30.0, 60.0]]),
                     (64, 64))]
    pairs = [torch.tensor([[0, 1], [1, 0], [2, 0]])]
    features = OrderedDict([("0", torch.randn(1, 8, 16, 16)), ("1", torch.randn(1, 8, 8, 8))])
    separate = RelationFeatureExtractor(8, ["0", "1"], 3, 2, 16, separate_spatial=True).eval()
    joint = RelationFeatureExtractor(8, ["0", "1"], 3, 2, 16).eval()
    joint.load_state_dict({k: v for k, v in separate.state_dict().items() if not k.startswith("spatial_fc")})
    with torch.no_grad():
        joint.rect_conv[-1].weight.zero_()  # the joint extractor without its mask term: the region features alone
        joint.rect_conv[-1].bias.zero_()
        region, spatial = separate(features, boxes, pairs, [(64, 64)], max_pairs_per_chunk=2)
        assert torch.allclose(region, joint(features, boxes, pairs, [(64, 64)]), atol=1e-6)
        doubled = OrderedDict((name, 2 * value) for name, value in features.items())
        region2, spatial2 = separate(doubled, boxes, pairs, [(64, 64)])
    assert spatial.shape == (3, 16) and torch.allclose(spatial, spatial2, atol=1e-6)  # masks only, not the image
    assert not torch.allclose(region, region2)
    assert spatial[0].ne(spatial[1]).any()  # (s, o) and (o, s) draw different masks
    empty = separate(features, boxes, [pairs[0][:0]], [(64, 64)])
    assert [tuple(t.shape) for t in empty] == [(0, 16), (0, 16)]


def test_effect_definitions_use_only_the_passes_they_need():
    factual, context, both = torch.tensor([5.0, 1.0]), torch.tensor([2.0, 3.0]), torch.tensor([-1.0, 7.0])

    def unused():
        raise AssertionError("computed a pass this effect does not use")

    assert torch.equal(causal_effect("TDE", lambda: factual, lambda: context, unused), torch.tensor([3.0, -2.0]))
    assert torch.equal(causal_effect("NIE", unused, lambda: context, lambda: both), torch.tensor([3.0, -4.0]))
    assert torch.equal(causal_effect("TE", lambda: factual, unused, lambda: both), torch.tensor([6.0, -6.0]))
    with pytest.raises(ConfigError, match="EFFECT_TYPE is 'TIE'"):
        causal_effect("TIE", lambda: factual, lambda: context, lambda: both)


def test_training_updates_the_untreated_averages_by_the_moving_average_rule():
    predictor = hand_predictor("sum", "TDE").train()
    batch = hand_batch(pairs=((0, 1), (1, 0), (0, 1)), rel_labels=[torch.tensor([1, 0, 2])])
    predictor(batch)
    # union rows [0, 1], [2, 3], [4, 5] -> mean [2, 3]; ctx rows [1, 3], [-1, -3], [1, 3] -> mean [1/3, 1]
    assert torch.allclose(predictor.untreated_feat, torch.tensor([0.001, 0.0015]), atol=1e-9)
    assert torch.allclose(predictor.avg_post_ctx, torch.tensor([0.0005 / 3, 0.0005]), atol=1e-9)
    assert torch.equal(predictor.untreated_spt, torch.zeros(32))  # SPATIAL_FOR_VISION off: never touched
    predictor.untreated_feat.copy_(torch.tensor([1.0, -1.0]))
    predictor(batch)
    assert torch.allclose(predictor.untreated_feat, torch.tensor([0.9995 + 0.001, -0.9995 + 0.0015]), atol=1e-7)
    predictor.eval()(batch)  # evaluation leaves them alone
    assert torch.allclose(predictor.untreated_feat, torch.tensor([0.9995 + 0.001, -0.9995 + 0.0015]), atol=1e-7)


def test_moving_average_of_no_rows_keeps_the_average():
    average = torch.tensor([1.0, 2.0])
    update_moving_average(average, torch.zeros(0, 2))
    assert torch.equal(average, torch.tensor([1.0, 2.0]))
    update_moving_average(average, torch.tensor([[3.0, 0.0], [5.0, 4.0]]), ratio=0.5)
    assert torch.equal(average, torch.tensor([2.5, 2.0]))


def test_branch_losses_are_the_ce_of_each_branch_and_the_gate_keeps_only_the_context_one():
    labels = torch.tensor([2, 0])
    for fusion, names in (("sum", {"auxiliary_ctx", "auxiliary_vis", "auxiliary_frq"}), ("gate", {"auxiliary_ctx"})):
        predictor = hand_predictor(fusion, "none").train()
        out = predictor(hand_batch(rel_labels=[labels]))
        cfg = load_config(None, [HEAD + "PREDICTOR", "CausalAnalysisPredictor"])
        losses = build_relation_losses(cfg)(RelationLossInputs(out.rel_logits, labels, aux=out.aux))
        losses = {name: value.detach() for name, value in losses.items()}
        assert set(losses) == {"loss_rel", "loss_refine_obj"} | names
        ce = lambda logits: float(torch.nn.functional.cross_entropy(torch.tensor(logits), labels))  # noqa: E731
        assert float(losses["auxiliary_ctx"]) == pytest.approx(ce([[1.0, 3.0, 4.0], [-1.0, -3.0, -4.0]]), abs=1e-6)
        if fusion == "sum":
            assert float(losses["auxiliary_vis"]) == pytest.approx(ce([[0.5, 0.0, -0.5]] * 2), abs=1e-6)
            assert float(losses["auxiliary_frq"]) == pytest.approx(ce([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]]), abs=1e-6)


def test_branch_losses_listed_in_loss_keep_their_weight_and_are_not_added_twice():
    labels = torch.tensor([2, 0])
    out = hand_predictor("sum", "none").train()(hand_batch(rel_labels=[labels]))
    inputs = RelationLossInputs(out.rel_logits, labels, aux=out.aux)
    plain = build_relation_losses(load_config(None, [HEAD + "PREDICTOR", "CausalAnalysisPredictor"]))(inputs)
    cfg = load_config(None, [HEAD + "PREDICTOR", "CausalAnalysisPredictor", HEAD + "LOSS",
                             '("RelationCE", "CausalAuxiliaryCE:0.5")'])
    halved = build_relation_losses(cfg)(inputs)
    assert set(halved) == {"loss_rel", "auxiliary_ctx", "auxiliary_vis", "auxiliary_frq"}
    assert float(halved["auxiliary_vis"]) == pytest.approx(0.5 * float(plain["auxiliary_vis"]), abs=1e-6)


def test_branch_loss_without_the_branch_logits_names_the_predictor():
    cfg = load_config(None, [HEAD + "LOSS", '("RelationCE", "CausalAuxiliaryCE")'])
    inputs = RelationLossInputs(torch.zeros(2, 3), torch.tensor([1, 0]))
    with pytest.raises(KeyError, match="CausalAuxiliaryCE needs .*CausalAnalysisPredictor"):
        build_relation_losses(cfg)(inputs)


def test_pair_box_info_by_hand():
    # boxes as SGB's get_box_info rows [x1, y1, x2, y2, cx, cy, w, h] (w = x2 - x1 + 1)
    a = torch.tensor([[0.0, 0.0, 3.0, 1.0, 2.0, 1.0, 4.0, 2.0]])
    b = torch.tensor([[2.0, 0.0, 5.0, 4.0, 4.0, 2.5, 4.0, 5.0]])
    info = pair_box_info(a, b)
    assert torch.equal(info[0, :16], torch.cat([a[0], b[0]]))
    assert torch.equal(info[0, 16:24], torch.tensor([0.0, 0.0, 5.0, 4.0, 3.0, 2.5, 6.0, 5.0]))  # union
    assert torch.equal(info[0, 24:], torch.tensor([2.0, 0.0, 3.0, 1.0, 3.0, 1.0, 2.0, 2.0]))  # intersection
    far = torch.tensor([[10.0, 10.0, 12.0, 12.0, 11.5, 11.5, 3.0, 3.0]])
    assert torch.equal(pair_box_info(a, far)[0, 24:], torch.zeros(8))  # no intersection: zeros


# ---------------------------------------------------------------------------------------------------- configs
TOY = [HEAD + "CONTEXT_HIDDEN_DIM", 8, HEAD + "CONTEXT_POOLING_DIM", 12, HEAD + "EMBED_DIM", 6, "GLOVE_DIR",
       "/nonexistent/glove"]


def toy_statistics():
    return {"pred_dist": np.zeros((3, 3, 4), np.float32), "obj_classes": ["__background__", "a", "b"],
            "rel_classes": ["__background__", "p", "q", "r"]}


def causal_config(*opts):
    return load_config(None, [str(o) for o in [HEAD + "PREDICTOR", "CausalAnalysisPredictor", *TOY, *opts]])


def test_effect_type_with_another_predictor_is_an_error():
    with pytest.raises(ConfigError, match="EFFECT_TYPE is 'TDE' but MODEL.ROI_RELATION_HEAD.PREDICTOR is "
                                          "'MotifPredictor'"):
        load_config(None, [HEAD + "PREDICTOR", "MotifPredictor", HEAD + "CAUSAL.EFFECT_TYPE", "TDE",
                           HEAD + "CAUSAL.EFFECT_ANALYSIS", "True"])


def test_separate_spatial_with_another_predictor_is_an_error():
    with pytest.raises(ConfigError, match="SEPARATE_SPATIAL is True but MODEL.ROI_RELATION_HEAD.PREDICTOR is "
                                          "'TransformerPredictor'"):
        load_config(None, [HEAD + "PREDICTOR", "TransformerPredictor", HEAD + "CAUSAL.SEPARATE_SPATIAL", "True"])


def test_effect_analysis_with_another_predictor_loads_with_a_warning(caplog):
    # SGB's relation yaml sets EFFECT_ANALYSIS True for every head, and its README trains MotifPredictor with it
    with caplog.at_level(logging.WARNING):
        cfg = load_config(None, [HEAD + "PREDICTOR", "MotifPredictor", HEAD + "CAUSAL.EFFECT_ANALYSIS", "True"])
    assert cfg.MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS
    assert "EFFECT_ANALYSIS True has no effect on MotifPredictor" in caplog.text


@pytest.mark.parametrize("opts,message", [
    ([HEAD + "CAUSAL.EFFECT_TYPE", "TIE", HEAD + "CAUSAL.EFFECT_ANALYSIS", True],
     "CAUSAL.EFFECT_TYPE is 'TIE'; expected one of none, TDE, NIE, TE"),
    ([HEAD + "CAUSAL.EFFECT_TYPE", "TDE"], "EFFECT_TYPE is 'TDE' but MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS "
                                           "is False"),
])
def test_bad_effect_settings_are_config_errors(opts, message):
    with pytest.raises(ConfigError, match=message):
        causal_config(*opts)


@pytest.mark.parametrize("opts,message", [
    ([HEAD + "CAUSAL.CONTEXT_LAYER", "imp"], "CONTEXT_LAYER is 'imp'; expected one of motifs, vctree, vtranse"),
    ([HEAD + "CAUSAL.CONTEXT_LAYER", "vctree", HEAD + "CONTEXT_HIDDEN_DIM", 7],
     "CONTEXT_HIDDEN_DIM must be even for MODEL.ROI_RELATION_HEAD.CAUSAL.CONTEXT_LAYER vctree"),
    ([HEAD + "CAUSAL.FUSION_TYPE", "product"], "FUSION_TYPE is 'product'; expected one of sum, gate"),
    ([HEAD + "PREDICT_USE_VISION", False], "PREDICT_USE_VISION is False"),
    ([HEAD + "CONTEXT_POOLING_DIM", 16], r"CONTEXT_POOLING_DIM \(16\) must equal MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM "
                                         r"\(12\)"),
])
def test_bad_predictor_settings_are_config_errors_naming_the_key(opts, message):
    with pytest.raises(ConfigError, match=message):
        build_predictor(causal_config(*opts), 12, toy_statistics())


def test_context_layers_are_a_table_and_the_averages_are_checkpointed():
    assert set(CONTEXT_LAYERS) == {"motifs", "vctree", "vtranse"}
    for layer, extra in (("motifs", {"context.untreated_dcd_feat", "context.untreated_obj_feat",
                                     "context.untreated_edg_feat"}),
                         ("vctree", {"context.untreated_dcd_feat", "context.untreated_obj_feat",
                                     "context.untreated_edg_feat"}),
                         ("vtranse", {"context.untreated_obj_feat", "context.untreated_edg_feat"})):
        cfg = causal_config(HEAD + "CAUSAL.CONTEXT_LAYER", layer, HEAD + "CAUSAL.EFFECT_ANALYSIS", True)
        predictor = build_predictor(cfg, 12, toy_statistics())
        buffers = {"untreated_spt", "untreated_conv_spt", "avg_post_ctx", "untreated_feat"} | extra
        assert buffers <= set(predictor.state_dict())
        assert buffers <= {name for name, _ in predictor.named_buffers()}


def test_the_vctree_context_adds_the_binary_loss_on_its_pair_scores():
    """SGB's Causal predictor trains the VCTree context's pair scores with binary_loss: VCTreeBinary comes without
    being listed in LOSS (weight 1), only for that context; without EFFECT_ANALYSIS the context keeps no averages."""
    cfg = causal_config(HEAD + "CAUSAL.CONTEXT_LAYER", "vctree")
    assert CausalAnalysisPredictor.required_loss_terms(cfg) == ("CausalAuxiliaryCE", "VCTreeBinary")
    assert CausalAnalysisPredictor.required_loss_terms(causal_config()) == ("CausalAuxiliaryCE",)
    predictor = build_predictor(cfg, 12, toy_statistics()).train()
    assert not [name for name, _ in predictor.context.named_buffers() if "untreated" in name]
    boxes = BoxList(torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 20.0, 30.0], [2.0, 8.0, 30.0, 12.0]]), (40, 40))
    boxes.add_field("labels", torch.tensor([1, 2, 1]))
    binary = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    labels = torch.tensor([2, 0])
    batch = RelationBatch(mode="predcls", boxes=[boxes], pair_idxs=[torch.tensor([[0, 1], [2, 1]])],
                          roi_features=torch.rand(3, 12), union_features=torch.rand(2, 12), rel_labels=[labels],
                          rel_binarys=[binary])
    out = predictor(batch)
    losses = build_relation_losses(cfg)(RelationLossInputs(out.rel_logits, labels, aux=out.aux,
                                                           num_pairs_per_image=[2]))
    assert {"auxiliary_ctx", "loss_binary"} <= set(losses)
    with torch.no_grad():
        scores = predictor.context(batch, return_pair_scores=True)[3][0]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(scores, binary.float())
    assert float(losses["loss_binary"]) == pytest.approx(float(expected), abs=1e-6)
    assert torch.equal(out.aux.pair_scores.targets, binary.float().reshape(-1))


def test_vctree_context_replaces_only_the_edge_input_part_in_the_counterfactual_pass():
    """SGB's VCTreeLSTMContext: ctx_average swaps in the averages only at test and only with effect_analysis; in
    PredCls the labels stay the GT ones, the edge context changes."""
    cfg = causal_config(HEAD + "CAUSAL.CONTEXT_LAYER", "vctree", HEAD + "CAUSAL.EFFECT_ANALYSIS", True,
                        HEAD + "CONTEXT_DROPOUT_RATE", 0.0)
    predictor = build_predictor(cfg, 12, toy_statistics())
    context = predictor.context
    torch.manual_seed(0)
    with torch.no_grad():
        context.untreated_edg_feat.copy_(torch.randn_like(context.untreated_edg_feat))
    boxes = BoxList(torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 20.0, 30.0], [2.0, 8.0, 30.0, 12.0]]), (40, 40))
    boxes.add_field("labels", torch.tensor([1, 2, 1]))
    batch = RelationBatch(mode="predcls", boxes=[boxes], pair_idxs=[torch.tensor([[0, 1]])],
                          roi_features=torch.rand(3, 12), union_features=torch.rand(1, 12))
    with torch.no_grad():
        context.eval()
        factual, untreated = context(batch), context(batch, ctx_average=True)
        assert torch.equal(factual[0], untreated[0]) and torch.equal(factual[1], untreated[1])
        assert not torch.allclose(factual[2], untreated[2], atol=1e-4)
        context.train()
        assert torch.equal(context(batch)[2], context(batch, ctx_average=True)[2])  # training ignores it
    plain = build_predictor(causal_config(HEAD + "CAUSAL.CONTEXT_LAYER", "vctree", HEAD + "CONTEXT_DROPOUT_RATE", 0.0),
                            12, toy_statistics()).context.eval()
    with torch.no_grad():  # without effect_analysis there are no averages to swap in
        assert torch.equal(plain(batch)[2], plain(batch, ctx_average=True)[2])
