"""Golden values: CausalAnalysisPredictor with CONTEXT_LAYER vctree against SGB's own, on the same weights and inputs.

The fixture (tests/modeling/golden/causal_vctree.pt) was produced once by running ``CausalAnalysisPredictor.__init__``
/ ``forward`` of maskrcnn_benchmark/modeling/roi_heads/relation_head/roi_relation_predictors.py (with
``VCTreeLSTMContext`` / ``DecoderTreeLSTM`` of model_vctree.py, utils_vctree.py, utils_treelstm.py and
``FrequencyBias``) from KaihuaTang/Scene-Graph-Benchmark.pytorch, commit 6f75881, on the CPU
(/work/shared/tools/sgb_cpu), beside this project's predictor built from the config below: 6 object classes,
5 predicates, ROI / union / pooling width 12, CONTEXT_HIDDEN_DIM 8, EMBED_DIM 6, CONTEXT_OBJ_LAYER 2,
CONTEXT_REL_LAYER 1, CONTEXT_DROPOUT_RATE 0 (no random masks), CONTEXT_LAYER vctree, SPATIAL_FOR_VISION True,
EFFECT_ANALYSIS True. Only the predictor ran; SGB's dataset statistics and GloVe loader were replaced by the
fixture's ``pred_dist`` and zero vectors (the weights are overwritten anyway).

Weights: this project's SGCls gate predictor (``weights``: seeded N(0, 0.4) values for every parameter and BatchNorm
statistic, running variances in [0.5, 1.5); ``bi_freq_prior`` and the frequency bias as built from ``pred_dist``;
the averages zero; the other cases use the subset of its keys they have) was copied into SGB's module key by key
through ``sgb_causal_key_map(key, "vctree")`` (sgg/utils/sgb_causal_keys.py; SGB's decoder aliases
``decoderLSTM.embed_layer`` / ``embed_out_layer`` got the values of ``obj_embed`` / ``out``). In PredCls SGB's
unused label decoder kept its own initial weights. ``sgb_keys`` is SGB's state-dict key list of each case.

Inputs: two images (4 boxes / 6 pairs, 3 boxes / 4 pairs) with ``rel_binarys`` (1 for both directions of every pair
with a foreground label).

Cases: PredCls with FUSION_TYPE sum and gate, SGCls with sum.

* ``train`` (PredCls): one training step on both images from zero averages: SGB's object and relation logits, its
  ``add_losses`` (binary_loss, auxiliary_ctx / _vis / _frq), ``loss_rel`` = F.cross_entropy of its relation logits
  and every ``untreated_*`` / ``avg_post_ctx`` buffer after the step.
* ``train_before_decoder`` (SGCls): SGB's training decoder samples the labels it passes down the tree, which no two
  implementations draw alike, so only what precedes the decoder is stored: ``binary_loss``, ``auxiliary_vis`` and
  the averages of the decoder input (updated once per image in SGB), the object input, the union feature and the
  pair boxes.
* ``eval``: both images, with the averages set to the random ``trained_buffers``, for EFFECT_TYPE none, TDE, NIE and
  TE: SGB's object and relation logits.
"""
import pytest
import torch

from sgg.modeling.roi_heads.relation_head.losses import RelationLossInputs, build_relation_losses
from sgg.utils.sgb_causal_keys import sgb_causal_key_map

from causal_golden_parts import (EFFECTS, HEAD, build_causal_predictor, check_converter_follows_the_key_map,
                                 check_effects_differ, relation_batch)
from golden_values import load_golden

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")
CASES = ["predcls_sum", "predcls_gate", "sgcls_sum"]
SGB_LOSS_NAMES = {"binary_loss": "loss_binary"}  # SGB's add_losses key -> ours (the others are the same)


@pytest.fixture(scope="module")
def golden():
    return load_golden("causal_vctree.pt")


def build(golden, case, effect, trained_averages=False):
    """Our predictor for ``case`` with the fixture's weights (the keys it has; a missing one fails the load)."""
    mode, fusion = case.split("_")
    return build_causal_predictor(golden, "vctree", mode, fusion, effect, trained_averages,
                                  extra_opts=[HEAD + "CONTEXT_OBJ_LAYER", 2, HEAD + "CONTEXT_REL_LAYER", 1])


def batch(images, mode, training):
    return relation_batch(images, mode, training,
                          rel_binarys=[image["rel_binarys"] for image in images] if training else None)


def training_step(golden, case):
    predictor, cfg = build(golden, case, "none")
    predictor.train()
    images = golden["inputs"]
    out = predictor(batch(images, case.split("_")[0], True))
    labels = torch.cat([image["rel_labels"] for image in images])
    losses = build_relation_losses(cfg)(RelationLossInputs(out.rel_logits, labels, aux=out.aux,
                                                           num_pairs_per_image=[len(i["pairs"]) for i in images]))
    return predictor, out, losses


def assert_averages_match(predictor, expected_buffers):
    ours = predictor.state_dict()
    for sgb_key, value in expected_buffers.items():
        # from zero, an average after one step is 0.0005 x the batch mean: compare at that scale
        assert torch.allclose(ours[sgb_causal_key_map(sgb_key, "vctree")], value, rtol=1e-4, atol=1e-9), sgb_key


@pytest.mark.parametrize("case", ["predcls_sum", "predcls_gate"])
def test_training_step_logits_losses_and_averages_match_sgb(golden, case):
    expected = golden["cases"][case]["train"]
    predictor, out, losses = training_step(golden, case)
    assert torch.allclose(out.obj_logits, expected["obj_logits"], atol=1e-5)
    assert torch.allclose(out.rel_logits, expected["rel_logits"], atol=1e-5)
    assert float(losses["loss_rel"]) == pytest.approx(float(expected["loss_rel"]), abs=1e-5)
    # the binary loss comes without listing VCTreeBinary in LOSS (required_loss_terms), as in SGB
    assert {SGB_LOSS_NAMES.get(name, name) for name in expected["losses"]} == \
        set(losses) - {"loss_rel", "loss_refine_obj"}
    for name, value in expected["losses"].items():
        assert float(losses[SGB_LOSS_NAMES.get(name, name)]) == pytest.approx(float(value), abs=1e-5), name
    assert len(expected["buffers"]) == 7  # the predictor's four and the context's three
    assert_averages_match(predictor, expected["buffers"])


def test_sgcls_training_step_before_the_sampling_decoder_matches_sgb(golden):
    expected = golden["cases"]["sgcls_sum"]["train_before_decoder"]
    predictor, _, losses = training_step(golden, "sgcls_sum")
    for name, value in expected["losses"].items():
        assert float(losses[SGB_LOSS_NAMES.get(name, name)]) == pytest.approx(float(value), abs=1e-5), name
    # the decoder-input average is updated once per image (SGB's per-tree loop), not once with the batch mean
    assert expected["buffers"]["context_layer.untreated_dcd_feat"].abs().max() > 1e-4
    assert_averages_match(predictor, expected["buffers"])


@pytest.mark.parametrize("effect", EFFECTS)
@pytest.mark.parametrize("case", CASES)
def test_test_time_effects_match_sgb(golden, case, effect):
    predictor, _ = build(golden, case, effect, trained_averages=True)
    predictor.eval()
    with torch.no_grad():
        out = predictor(batch(golden["inputs"], case.split("_")[0], False))
    expected = golden["cases"][case]["eval"][effect]
    assert torch.allclose(out.obj_logits, expected["obj_logits"], atol=1e-5)
    assert torch.allclose(out.rel_logits, expected["rel_logits"], atol=1e-5)


def test_effects_differ_from_the_factual_logits(golden):
    """The fixture discriminates: a predictor that ignored EFFECT_TYPE or mixed two effects would fail above."""
    check_effects_differ([(case, {effect: golden["cases"][case]["eval"][effect]["rel_logits"] for effect in EFFECTS})
                          for case in CASES])


@pytest.mark.parametrize("case", CASES)
def test_sgb_key_map_covers_sgb_checkpoint_keys(golden, case):
    sgb_keys = golden["cases"][case]["sgb_keys"]
    ours = set(build(golden, case, "none")[0].state_dict())
    mapped = {key: sgb_causal_key_map(key, "vctree") for key in sgb_keys}
    assert sorted(key for key, target in mapped.items() if target is None) == []
    targets = set(mapped.values())
    if case.startswith("predcls"):  # SGB builds the label decoder in PredCls too, unused; ours builds none
        unused = targets - ours
        assert unused and all(key.startswith("context.decoder_rnn.") for key in unused)
        targets -= unused
    assert targets == ours
    # SGB's decoder holds its embedding and output layer twice; both names map to ours
    assert sgb_causal_key_map("context_layer.decoder_rnn.decoderLSTM.embed_layer.weight", "vctree") == \
        sgb_causal_key_map("context_layer.decoder_rnn.obj_embed.weight", "vctree") == \
        "context.decoder_rnn.obj_embed.weight"
    full = ("roi_heads.relation.predictor.context_layer.obj_ctx_rnn.multi_layer_lstm.1.treeLSTM_backward.treeLSTM."
            "px.bias")
    assert sgb_causal_key_map(full, "vctree") == "relation_head.predictor.context.obj_ctx_rnn.downward.1.px.bias"
    assert sgb_causal_key_map("context_layer.obj_embed1.weight", "vctree") == "context.obj_embed1.embedding.weight"
    assert sgb_causal_key_map("context_layer.obj_embed1.weight") == "context.obj_input_embed.embedding.weight"


@pytest.mark.parametrize("case", CASES)
def test_the_checkpoint_converter_maps_causal_vctree_keys_as_the_key_map(golden, case):
    reasons = check_converter_follows_the_key_map(golden["cases"][case]["sgb_keys"],
                                                  build(golden, case, "none")[0].state_dict(), "vctree")
    assert any("decoderLSTM.embed_layer" in key for key in reasons)  # the decoder's second names, always dropped
