"""What the two Causal TDE golden tests (test_causal_golden.py: Motifs / VTransE contexts, test_causal_vctree_golden.py:
the VCTree context) share: the predictor built from the fixture's weights, the batch of its input images, and the
checks that hold for every context."""
import re

import torch

from sgg.config import load_config
from sgg.modeling.roi_heads.relation_head.predictors import build_predictor
from sgg.modeling.roi_heads.relation_head.types import RelationBatch
from sgg.structures import BoxList
from sgg.utils.sgb_causal_keys import sgb_causal_key_map
from sgg.utils.sgb_relation_checkpoint import CAUSAL_KEYS, DECODER_ALIAS, UNUSED_IN_PREDCLS, apply_rules, sgb_name

HEAD = "MODEL.ROI_RELATION_HEAD."
WIDTH, HIDDEN, EMBED = 12, 8, 6
EFFECTS = ["none", "TDE", "NIE", "TE"]


def build_causal_predictor(golden, context, mode, fusion, effect, trained_averages=False, extra_opts=()):
    """Our CausalAnalysisPredictor (``context`` layer, protocol ``mode``, ``fusion``, ``effect``) with the fixture's
    weights, the keys it has (a missing one fails the load); ``trained_averages`` loads the fixture's averages."""
    cfg = load_config(None, [str(o) for o in [
        HEAD + "PREDICTOR", "CausalAnalysisPredictor", HEAD + "USE_GT_BOX", True,
        HEAD + "USE_GT_OBJECT_LABEL", mode == "predcls", HEAD + "CONTEXT_HIDDEN_DIM", HIDDEN,
        HEAD + "CONTEXT_POOLING_DIM", WIDTH, "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", WIDTH, HEAD + "EMBED_DIM", EMBED,
        *extra_opts, HEAD + "CONTEXT_DROPOUT_RATE", 0.0, HEAD + "CAUSAL.FUSION_TYPE", fusion,
        HEAD + "CAUSAL.EFFECT_ANALYSIS", True, HEAD + "CAUSAL.SPATIAL_FOR_VISION", True,
        HEAD + "CAUSAL.EFFECT_TYPE", effect, HEAD + "CAUSAL.CONTEXT_LAYER", context, "GLOVE_DIR", "/nonexistent/glove"]])
    statistics = {"pred_dist": golden["pred_dist"], "obj_classes": golden["obj_classes"],
                  "rel_classes": golden["rel_classes"]}
    predictor = build_predictor(cfg, WIDTH, statistics)
    weights = dict(golden["weights"])
    if trained_averages:
        weights.update(golden["trained_buffers"])
    predictor.load_state_dict({key: value for key, value in weights.items() if key in predictor.state_dict()})
    return predictor, cfg


def relation_batch(images, mode, training, **fields):
    """The fixture's images as the predictor's input (GT labels only with ``training``); ``fields`` adds the
    context's own (e.g. ``rel_binarys``)."""
    boxes = []
    for image in images:
        box = BoxList(image["boxes"].clone(), image["size"])
        box.add_field("labels", image["labels"].clone())
        box.add_field("predict_logits", image["predict_logits"].clone())
        boxes.append(box)
    return RelationBatch(mode=mode, boxes=boxes, pair_idxs=[image["pairs"] for image in images],
                         roi_features=torch.cat([image["roi_features"] for image in images]),
                         union_features=torch.cat([image["union_features"] for image in images]),
                         rel_labels=[image["rel_labels"] for image in images] if training else None, **fields)


def check_effects_differ(eval_logits):
    """``[(case, {effect: SGB's relation logits}), ...]``: the fixture discriminates, so a predictor that ignored
    EFFECT_TYPE or mixed two effects fails the golden comparison."""
    for case, logits in eval_logits:
        for effect in ("TDE", "TE"):
            assert not torch.allclose(logits[effect], logits["none"], atol=1e-3), (case, effect)
        if case.startswith("predcls"):  # the GT labels are the same in both passes: no indirect effect
            assert torch.equal(logits["NIE"], torch.zeros_like(logits["NIE"])), case
        else:
            assert logits["NIE"].abs().max() > 1e-3 and not torch.allclose(logits["TDE"], logits["TE"], atol=1e-3)


def check_converter_follows_the_key_map(sgb_keys, ours_state, context_layer):
    """sgg/utils/sgb_relation_checkpoint.py's CAUSAL_KEYS (what tools/convert_sgb_checkpoint.py applies) sends every
    SGB predictor key to the key ``sgb_causal_key_map`` gives, which the golden values verify; what our PredCls model
    does not build (SGB's label decoder / pred_layer) and the VCTree decoder's second names are dropped with their
    reason."""
    ours = {f"predictor.{k}": v for k, v in ours_state.items()}
    relation = {}
    for key in sgb_keys:
        mapped = f"predictor.{sgb_causal_key_map(key, context_layer)}"
        relation[f"predictor.{key}"] = torch.zeros(ours[mapped].shape) if mapped in ours else torch.zeros(1)
    converted, dropped, unknown, shapes = apply_rules(CAUSAL_KEYS.prepare(relation), CAUSAL_KEYS.rules, ours)
    assert not unknown and not shapes and set(converted) == set(ours)
    reasons = {sgb_name(key): why for key, why in dropped.items()}
    assert set(reasons.values()) <= {UNUSED_IN_PREDCLS, DECODER_ALIAS}
    assert all(re.search(r"context_layer\.(decoder_rnn|pred_layer)\.", key) for key in reasons)
    kept = {sgb_name(key) for key in CAUSAL_KEYS.prepare(relation)} - set(reasons)
    assert {f"predictor.{sgb_causal_key_map(key[len('predictor.'):], context_layer)}" for key in kept} == set(ours)
    return reasons
