"""Golden values: CausalAnalysisPredictor against SGB's own, on the same weights and inputs.

The fixtures (tests/modeling/golden/causal_motifs.pt, causal_vtranse.pt) were produced once by running
``CausalAnalysisPredictor.__init__`` / ``forward`` of maskrcnn_benchmark/modeling/roi_heads/relation_head/
roi_relation_predictors.py (with ``LSTMContext`` / ``DecoderRNN`` / ``FrequencyBias`` of model_motifs.py and
``VTransEFeature`` of model_vtranse.py) from KaihuaTang/Scene-Graph-Benchmark.pytorch, commit 6f75881, on the CPU
(/work/shared/tools/sgb_cpu), beside this project's predictor built from the config below: 6 object classes,
5 predicates, ROI / union / pooling width 12, CONTEXT_HIDDEN_DIM 8, EMBED_DIM 6, one object and one edge LSTM layer,
CONTEXT_DROPOUT_RATE 0 (no random masks), CONTEXT_LAYER motifs (causal_motifs.pt) or vtranse (causal_vtranse.pt),
SPATIAL_FOR_VISION True, EFFECT_ANALYSIS True. Only the predictor ran; SGB's dataset statistics and GloVe loader were
replaced by the fixture's ``pred_dist`` and zero vectors (the weights are overwritten anyway).

Weights: this project's seeded SGCls gate predictor of each context (``weights``, with random BatchNorm statistics;
the other cases use the subset of its keys they have) was copied into SGB's module key by key through
``sgb_causal_key_map`` (sgg/utils/sgb_causal_keys.py). The fixture's weights predate the bias of our decoder's
``input_proj``: SGB's ``context_layer.decoder_rnn.input_linearity.bias`` was set to zero (SGB's initial value), and
ours loads as zero from them; in PredCls SGB's unused label decoder kept its own initial weights. ``sgb_keys`` is
SGB's state-dict key list of each case.

Cases: Motifs in PredCls and SGCls, VTransE in SGCls (its PredCls differs from SGB's by design, docs/causal_tde.md),
each with FUSION_TYPE sum and gate; and Motifs SGCls sum with SEPARATE_SPATIAL True (``*_separate``: SGB's
predictor then takes the union features as the pair (region, spatial); ``spatial_features`` are the second).

* ``train``: one training step on two images with zero averages (a fresh model): SGB's object and relation logits,
  its ``add_losses`` (auxiliary_ctx / _vis / _frq), ``loss_rel`` = F.cross_entropy of its relation logits (SGB's
  relation loss) and every ``untreated_*`` / ``avg_post_ctx`` buffer after the step.
* ``eval``: one image (SGB's decoder asserts one image per batch at test), with the averages set to the random
  ``trained_buffers``, for EFFECT_TYPE none, TDE, NIE and TE: SGB's object and relation logits.
"""
import pytest
import torch

from sgg.modeling.roi_heads.relation_head.losses import RelationLossInputs, build_relation_losses
from sgg.utils.sgb_causal_keys import sgb_causal_key_map

from causal_golden_parts import (EFFECTS, HEAD, build_causal_predictor, check_converter_follows_the_key_map,
                                 check_effects_differ, relation_batch)
from golden_values import load_golden

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")
CASES = [("motifs", "predcls_sum"), ("motifs", "predcls_gate"), ("motifs", "sgcls_sum"), ("motifs", "sgcls_gate"),
         ("motifs", "sgcls_sum_separate"), ("vtranse", "sgcls_sum"), ("vtranse", "sgcls_gate")]
AVERAGES = {"motifs": 7, "vtranse": 6}  # the predictor's four and the context's


@pytest.fixture(scope="module")
def fixtures():
    return {context: load_golden(f"causal_{context}.pt") for context in AVERAGES}


def build(golden, context, case, effect, trained_averages=False):
    """Our predictor for ``case`` with the fixture's weights (the keys it has; a missing one fails the load)."""
    mode, fusion, *separate = case.split("_")
    return build_causal_predictor(golden, context, mode, fusion, effect, trained_averages,
                                  extra_opts=[HEAD + "CAUSAL.SEPARATE_SPATIAL", bool(separate)])


def batch(images, case, training):
    separate = case.endswith("separate")  # SGB's predictor then takes the union features as (region, spatial)
    return relation_batch(images, case.split("_")[0], training, union_spatial_features=torch.cat(
        [image["spatial_features"] for image in images]) if separate else None)


@pytest.mark.parametrize("context,case", CASES)
def test_training_step_logits_losses_and_averages_match_sgb(fixtures, context, case):
    golden = fixtures[context]
    reference = golden["cases"][case]
    predictor, cfg = build(golden, context, case, "none")
    predictor.train()
    images = golden["inputs"]
    out = predictor(batch(images, case, True))
    expected = reference["train"]
    assert torch.allclose(out.obj_logits, expected["obj_logits"], atol=1e-5)
    assert torch.allclose(out.rel_logits, expected["rel_logits"], atol=1e-5)

    labels = torch.cat([image["rel_labels"] for image in images])
    losses = build_relation_losses(cfg)(RelationLossInputs(out.rel_logits, labels, aux=out.aux))
    assert float(losses["loss_rel"]) == pytest.approx(float(expected["loss_rel"]), abs=1e-5)
    assert set(expected["losses"]) == set(losses) - {"loss_rel", "loss_refine_obj"}
    for name, value in expected["losses"].items():
        assert float(losses[name]) == pytest.approx(float(value), abs=1e-5), name

    ours = predictor.state_dict()
    assert len(expected["buffers"]) == AVERAGES[context]
    for sgb_key, value in expected["buffers"].items():
        # from zero, an average after one step is 0.0005 x the batch mean: compare at that scale
        assert torch.allclose(ours[sgb_causal_key_map(sgb_key)], value, rtol=1e-4, atol=1e-9), sgb_key


@pytest.mark.parametrize("effect", EFFECTS)
@pytest.mark.parametrize("context,case", CASES)
def test_test_time_effects_match_sgb(fixtures, context, case, effect):
    golden = fixtures[context]
    reference = golden["cases"][case]
    predictor, _ = build(golden, context, case, effect, trained_averages=True)
    predictor.eval()
    with torch.no_grad():
        out = predictor(batch(golden["inputs"][:1], case, False))
    expected = reference["eval"][effect]
    assert torch.allclose(out.obj_logits, expected["obj_logits"], atol=1e-5)
    assert torch.allclose(out.rel_logits, expected["rel_logits"], atol=1e-5)


def test_effects_differ_from_the_factual_logits(fixtures):
    """The fixture discriminates: a predictor that ignored EFFECT_TYPE or mixed two effects would fail above."""
    check_effects_differ([(case, {effect: fixtures[context]["cases"][case]["eval"][effect]["rel_logits"]
                                  for effect in EFFECTS}) for context, case in CASES])


@pytest.mark.parametrize("context,case", CASES)
def test_sgb_key_map_covers_sgb_checkpoint_keys(fixtures, context, case):
    golden = fixtures[context]
    sgb_keys = golden["cases"][case]["sgb_keys"]
    ours = set(build(golden, context, case, "none")[0].state_dict())
    mapped = {key: sgb_causal_key_map(key) for key in sgb_keys}
    unmapped = sorted(key for key, ours in mapped.items() if ours is None)
    assert unmapped == []
    targets = {ours for ours in mapped.values() if ours is not None}
    if case.startswith("predcls"):  # SGB builds the label decoder in PredCls too, unused; ours builds none
        unused = targets - ours
        assert unused and all(key.startswith("context.decoder.") for key in unused)
        targets -= unused
    assert targets == ours
    full = "roi_heads.relation.predictor.context_layer.obj_embed1.weight"
    assert sgb_causal_key_map(full) == "relation_head.predictor.context.obj_input_embed.embedding.weight"
    assert sgb_causal_key_map("roi_heads.relation.union_feature_extractor.fc6.weight") is None


@pytest.mark.parametrize("context,case", CASES)
def test_the_checkpoint_converter_maps_causal_keys_as_the_key_map(fixtures, context, case):
    golden = fixtures[context]
    reasons = check_converter_follows_the_key_map(golden["cases"][case]["sgb_keys"],
                                                  build(golden, context, case, "none")[0].state_dict(), "motifs")
    assert bool(reasons) == (case.startswith("predcls") and context == "motifs")
