"""Scene-Graph-Benchmark.pytorch's relation head (``roi_heads.relation.*``) onto this framework's ``relation_head``.

SGB's ``ROIRelationHead`` and ours hold the same tensors under other names. Shared by every predictor:

    SGB (under roi_heads.relation.)                          here (under relation_head.)
    box_feature_extractor.fc6 / fc7                          box_feature_extractor.fc6 / fc7
    union_feature_extractor.feature_extractor.fc6 / fc7      union_feature_extractor.fc6 / fc7
    union_feature_extractor.feature_extractor.pooler.reduce_channel.0   union_feature_extractor.reduce_channel.0
    union_feature_extractor.rect_conv.{0,2,4,6}              union_feature_extractor.rect_conv.{0,2,4,6}

Each predictor has a table (``PredictorKeys``) of renaming rules and of SGB keys that are dropped with a reason;
``SGB_PREDICTOR_KEYS`` maps SGB's predictor name to its table: MotifPredictor, TransformerPredictor, VCTreePredictor
and IMPPredictor have one (CausalAnalysisPredictor not yet); another mapping plugs in with one line there. Which
predictor wrote a checkpoint is read from its keys (``SGB_PREDICTOR_SIGNATURES``; SGB's checkpoints hold no
config): a predictor without a table, or another one than the config's, is a ``CheckpointError`` naming it. Every SGB
key is either mapped (same shape after the rule's transform) or dropped with a reason; anything else, and any tensor
of ours left without a value, is an error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from sgg.utils.errors import CheckpointError
from sgg.utils.sgb_causal_keys import sgb_causal_key_map

SGB_RELATION_PREFIX = "roi_heads.relation."
OUR_RELATION_PREFIX = "relation_head."


@dataclass(frozen=True)
class Rule:
    """SGB key (regex on the name under ``roi_heads.relation.``) -> our key under ``relation_head.`` (the
    replacement), with an optional tensor ``transform``. When our model has no such key and no key at all under
    ``absent_scope`` (the module our config leaves out), ``absent_reason`` drops the SGB key with that reason;
    otherwise a missing key is an error (the config does not fit the checkpoint)."""
    pattern: str
    target: str
    transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    absent_reason: Optional[str] = None
    absent_scope: str = ""


@dataclass(frozen=True)
class Drop:
    """SGB keys (regex) that have no counterpart here, and why."""
    pattern: str
    reason: str


@dataclass(frozen=True)
class PredictorKeys:
    """The mapping of one SGB predictor: its rules and drops (first match wins). ``prepare`` may rewrite the SGB
    state (relative names) first, for mappings that merge or split tensors."""
    rules: Tuple[Union[Rule, Drop], ...]
    prepare: Optional[Callable[[Dict[str, torch.Tensor]], Dict[str, torch.Tensor]]] = None


NO_UNION = "PREDICT_USE_VISION is False here: this relation head builds no union feature extractor"
_UNION = "union_feature_extractor."

FEATURE_RULES = (
    Rule(r"^box_feature_extractor\.(fc6|fc7)\.(weight|bias)$", r"box_feature_extractor.\1.\2"),
    Rule(r"^union_feature_extractor\.feature_extractor\.(fc6|fc7)\.(weight|bias)$", r"union_feature_extractor.\1.\2",
         absent_reason=NO_UNION, absent_scope=_UNION),
    Rule(r"^union_feature_extractor\.feature_extractor\.pooler\.reduce_channel\.0\.(weight|bias)$",
         r"union_feature_extractor.reduce_channel.0.\1", absent_reason=NO_UNION, absent_scope=_UNION),
    Rule(r"^union_feature_extractor\.rect_conv\.(\d+)\.(\w+)$", r"union_feature_extractor.rect_conv.\1.\2",
         absent_reason=NO_UNION, absent_scope=_UNION),
)

# the pair classifier Motif and Transformer share (RelationEdgeHead)
EDGE_HEAD_RULES = (
    Rule(r"^predictor\.(post_emb|post_cat|rel_compress|ctx_compress)\.(weight|bias)$", r"predictor.edge_head.\1.\2"),
    Rule(r"^predictor\.up_dim\.(weight|bias)$", r"predictor.edge_head.up_dim.\1",
         absent_reason="PREDICT_USE_VISION is False here: no union feature to lift to the pooling dim",
         absent_scope=_UNION),
    Rule(r"^predictor\.freq_bias\.obj_baseline\.weight$", r"predictor.edge_head.freq_bias.obj_baseline.weight"),
)

UNUSED_IN_PREDCLS = ("SGB builds it in every protocol but runs it only in SGCls / SGDet; this framework builds none "
                     "in PredCls")
CAUSAL_AVERAGES = ("the running averages of SGB's causal effect analysis (CAUSAL.EFFECT_ANALYSIS); this "
                   "MotifPredictor keeps none")

_CONTEXT = r"^predictor\.context_layer\."
_DECODER, _OUT_OBJ = "predictor.context.decoder.", "predictor.context.out_obj."
MOTIF_KEYS = PredictorKeys(rules=(
    Rule(_CONTEXT + r"obj_embed1\.weight$", r"predictor.context.obj_input_embed.embedding.weight"),
    Rule(_CONTEXT + r"obj_embed2\.weight$", r"predictor.context.obj_embed2.weight"),
    Rule(_CONTEXT + r"pos_embed\.([012])\.(\w+)$", r"predictor.context.pos_embed.layers.\1.\2"),
    Rule(_CONTEXT + r"(obj_ctx_rnn|edge_ctx_rnn)\.((?:weight|bias)_[ih]h_l\d+(?:_reverse)?)$",
         r"predictor.context.\1.\2"),
    Rule(_CONTEXT + r"(lin_obj_h|lin_edge_h)\.(weight|bias)$", r"predictor.context.\1.\2"),
    Rule(_CONTEXT + r"decoder_rnn\.obj_embed\.weight$", r"predictor.context.decoder.label_embed.weight",
         absent_reason=UNUSED_IN_PREDCLS, absent_scope=_DECODER),
    Rule(_CONTEXT + r"decoder_rnn\.input_linearity\.(weight|bias)$", r"predictor.context.decoder.input_proj.\1",
         absent_reason=UNUSED_IN_PREDCLS, absent_scope=_DECODER),
    Rule(_CONTEXT + r"decoder_rnn\.state_linearity\.(weight|bias)$", r"predictor.context.decoder.state_proj.\1",
         absent_reason=UNUSED_IN_PREDCLS, absent_scope=_DECODER),
    Rule(_CONTEXT + r"decoder_rnn\.out_obj\.(weight|bias)$", r"predictor.context.decoder.out_obj.\1",
         absent_reason=UNUSED_IN_PREDCLS, absent_scope=_DECODER),
    Drop(_CONTEXT + r"untreated_(dcd|obj|edg)_feat$", CAUSAL_AVERAGES),
    *EDGE_HEAD_RULES,
))


def conv1x1_to_linear(weight: torch.Tensor) -> torch.Tensor:
    """SGB's position-wise feed-forward is a Conv1d with kernel 1: (out, in, 1) -> Linear's (out, in)."""
    return weight.squeeze(-1)


_LAYER = r"^predictor\.context_layer\.context_(obj|edge)\.layer_stack\.(\d+)\."
_OURS_LAYER = r"predictor.context.context_\1.layers.\2."
TRANSFORMER_KEYS = PredictorKeys(rules=(
    Rule(_CONTEXT + r"obj_embed1\.weight$", r"predictor.context.obj_input_embed.embedding.weight"),
    Rule(_CONTEXT + r"obj_embed2\.weight$", r"predictor.context.obj_embed2.weight"),
    Rule(_CONTEXT + r"bbox_embed\.([03])\.(weight|bias)$", r"predictor.context.bbox_embed.layers.\1.\2"),
    Rule(_CONTEXT + r"(lin_obj|lin_edge)\.(weight|bias)$", r"predictor.context.\1.\2"),
    Rule(_CONTEXT + r"out_obj\.(weight|bias)$", r"predictor.context.out_obj.\1", absent_reason=UNUSED_IN_PREDCLS,
         absent_scope=_OUT_OBJ),
    Rule(_LAYER + r"slf_attn\.w_qs\.(weight|bias)$", _OURS_LAYER + r"attention.w_q.\3"),
    Rule(_LAYER + r"slf_attn\.w_ks\.(weight|bias)$", _OURS_LAYER + r"attention.w_k.\3"),
    Rule(_LAYER + r"slf_attn\.w_vs\.(weight|bias)$", _OURS_LAYER + r"attention.w_v.\3"),
    Rule(_LAYER + r"slf_attn\.fc\.(weight|bias)$", _OURS_LAYER + r"attention.out.\3"),
    Rule(_LAYER + r"slf_attn\.layer_norm\.(weight|bias)$", _OURS_LAYER + r"attention.norm.\3"),
    Rule(_LAYER + r"pos_ffn\.w_1\.weight$", _OURS_LAYER + r"feed_forward.layers.0.weight", conv1x1_to_linear),
    Rule(_LAYER + r"pos_ffn\.w_1\.bias$", _OURS_LAYER + r"feed_forward.layers.0.bias"),
    Rule(_LAYER + r"pos_ffn\.w_2\.weight$", _OURS_LAYER + r"feed_forward.layers.2.weight", conv1x1_to_linear),
    Rule(_LAYER + r"pos_ffn\.w_2\.bias$", _OURS_LAYER + r"feed_forward.layers.2.bias"),
    Rule(_LAYER + r"pos_ffn\.layer_norm\.(weight|bias)$", _OURS_LAYER + r"feed_forward.norm.\3"),
    *EDGE_HEAD_RULES,
))

CAUSAL_AVERAGES_VCTREE = ("the running averages of SGB's causal effect analysis (CAUSAL.EFFECT_ANALYSIS); this "
                          "VCTreePredictor keeps none")
DECODER_ALIAS = ("the same tensor as decoder_rnn.obj_embed / decoder_rnn.out (SGB's tree decoder holds those modules "
                 "a second time under this name)")
_ALIASES = {"decoder_rnn.decoderLSTM.embed_layer.weight": "decoder_rnn.obj_embed.weight",
            "decoder_rnn.decoderLSTM.embed_out_layer.weight": "decoder_rnn.out.weight",
            "decoder_rnn.decoderLSTM.embed_out_layer.bias": "decoder_rnn.out.bias"}


def check_vctree_aliases(relation: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """SGB's VCTree decoder aliases must hold the values of the modules they alias (only those are converted).
    Tensors without values (meta device: shape checks) are not compared."""
    for alias, original in _ALIASES.items():
        alias, original = "predictor.context_layer." + alias, "predictor.context_layer." + original
        if alias not in relation or original not in relation or relation[alias].is_meta:
            continue
        if relation[alias].shape != relation[original].shape or not torch.equal(relation[alias], relation[original]):
            raise CheckpointError(f"{SGB_RELATION_PREFIX}{alias} differs from {SGB_RELATION_PREFIX}{original}: in an "
                                  f"SGB VCTreePredictor state dict they are the same tensor")
    return relation


_SCORE_NET = r"(bi_freq_prior|obj_reduce|emb_reduce|box_embed|overlap_embed|score_pre|score_sub|score_obj|vision_prior)"
_TREE = r"(obj|edge)_ctx_rnn\.multi_layer_lstm\.(\d+)\."
_TREE_DECODER = "predictor.context.decoder_rnn."
VCTREE_KEYS = PredictorKeys(prepare=check_vctree_aliases, rules=(
    Rule(_CONTEXT + r"obj_embed1\.weight$", r"predictor.context.obj_embed1.embedding.weight"),
    Rule(_CONTEXT + r"obj_embed2\.weight$", r"predictor.context.obj_embed2.weight"),
    Rule(_CONTEXT + r"pos_embed\.([012])\.(\w+)$", r"predictor.context.pos_embed.layers.\1.\2"),
    Rule(_CONTEXT + _SCORE_NET + r"\.(\w+(?:\.\w+)?)$", r"predictor.context.score_net.\1.\2"),
    Rule(_CONTEXT + _TREE + r"treeLSTM_foreward\.treeLSTM\.(\w+)\.(weight|bias)$",
         r"predictor.context.\1_ctx_rnn.upward.\2.\3.\4"),
    Rule(_CONTEXT + _TREE + r"treeLSTM_backward\.treeLSTM\.(\w+)\.(weight|bias)$",
         r"predictor.context.\1_ctx_rnn.downward.\2.\3.\4"),
    Drop(_CONTEXT + r"decoder_rnn\.decoderLSTM\.(embed_layer|embed_out_layer)\.", DECODER_ALIAS),
    Rule(_CONTEXT + r"decoder_rnn\.(obj_embed|out|decoderLSTM\.px|decoderLSTM\.iofux|decoderLSTM\.iofuh)\."
         r"(weight|bias)$", r"predictor.context.decoder_rnn.\1.\2", absent_reason=UNUSED_IN_PREDCLS,
         absent_scope=_TREE_DECODER),
    Drop(_CONTEXT + r"untreated_(dcd|obj|edg)_feat$", CAUSAL_AVERAGES_VCTREE),
    *EDGE_HEAD_RULES,
))

# IMP's module names are SGB's (docs/imp.md); only the object classifier is absent here in PredCls
_IMP = (r"^predictor\.context_layer\.(obj_unary|edge_unary|node_gru|edge_gru|sub_vert_w_fc|obj_vert_w_fc|"
        r"out_edge_w_fc|in_edge_w_fc|rel_fc)\.(.+)$")
IMP_KEYS = PredictorKeys(rules=(
    Rule(_IMP, r"predictor.context_layer.\1.\2"),
    Rule(r"^predictor\.context_layer\.obj_fc\.(weight|bias)$", r"predictor.context_layer.obj_fc.\1",
         absent_reason=UNUSED_IN_PREDCLS, absent_scope="predictor.context_layer.obj_fc."),
    Rule(r"^predictor\.up_dim\.(weight|bias)$", r"predictor.up_dim.\1"),
))

# SGB's CausalAnalysisPredictor: its predictor keys are renamed by sgg/utils/sgb_causal_keys.py's map (which the
# Causal golden tests verify against SGB on its key lists; the VCTree context has its own names) in ``prepare``, as
# "mapped:<our key>"; the rules then only place them, drop what our PredCls model does not build and the VCTree
# decoder's second names, and map SEPARATE_SPATIAL's union-box MLP.
_MAPPED = "mapped:"
_ALIAS = "alias:"


def prepare_causal(relation: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    context = "vctree" if any(k.startswith("predictor.context_layer.score_pre.") for k in relation) else "motifs"
    relation = check_vctree_aliases(relation)
    aliases = {"predictor.context_layer." + alias for alias in _ALIASES}
    prepared = {}
    for key, value in relation.items():
        if key in aliases:
            prepared[_ALIAS + key] = value
            continue
        mapped = sgb_causal_key_map(key[len("predictor."):], context) if key.startswith("predictor.") else None
        prepared[f"{_MAPPED}predictor.{mapped}|{key}" if mapped else key] = value
    return prepared


def sgb_name(key: str) -> str:
    """The SGB key behind a prepared key (``mapped:<ours>|<sgb>`` or ``alias:<sgb>``), for messages."""
    if key.startswith(_MAPPED):
        return key.rsplit("|", 1)[1]
    return key[len(_ALIAS):] if key.startswith(_ALIAS) else key


CAUSAL_KEYS = PredictorKeys(prepare=prepare_causal, rules=(
    Drop("^" + _ALIAS, DECODER_ALIAS),
    *(Rule(f"^{_MAPPED}(predictor\\.context\\.{module}\\.[^|]*)\\|.*$", r"\1", absent_reason=UNUSED_IN_PREDCLS,
           absent_scope=f"predictor.context.{module}.") for module in ("decoder", "decoder_rnn", "pred_layer")),
    Rule(f"^{_MAPPED}([^|]*)\\|.*$", r"\1"),
    Rule(r"^union_feature_extractor\.spatial_fc\.([02])\.(weight|bias)$", r"union_feature_extractor.spatial_fc.\1.\2"),
))

# SGB predictor name -> its mapping. Other predictors plug in here with one line each.
SGB_PREDICTOR_KEYS: Dict[str, PredictorKeys] = {
    "MotifPredictor": MOTIF_KEYS,
    "TransformerPredictor": TRANSFORMER_KEYS,
    "VCTreePredictor": VCTREE_KEYS,
    "IMPPredictor": IMP_KEYS,
    "CausalAnalysisPredictor": CAUSAL_KEYS,
}

# How to tell SGB's predictors apart by a key under roi_heads.relation.predictor. (SGB's checkpoints hold no
# config). Checked in this order: CausalAnalysisPredictor also has a Motif / VCTree context, VCTree an LSTM one.
SGB_PREDICTOR_SIGNATURES: Tuple[Tuple[str, str], ...] = (
    ("CausalAnalysisPredictor", r"^vis_compress\.weight$"),
    ("VCTreePredictor", r"^context_layer\.score_pre\.weight$"),
    ("IMPPredictor", r"^context_layer\.node_gru\.weight_ih$"),
    ("TransformerPredictor", r"^context_layer\.context_obj\.layer_stack\."),
    ("MotifPredictor", r"^context_layer\.obj_ctx_rnn\."),
)


def detect_sgb_predictor(keys: Sequence[str]) -> Optional[Tuple[str, str]]:
    """(SGB predictor name, the key that tells it) for relation-head keys under ``roi_heads.relation.``, or None."""
    predictor_keys = sorted(k[len("predictor."):] for k in keys if k.startswith("predictor."))
    for name, signature in SGB_PREDICTOR_SIGNATURES:
        for key in predictor_keys:
            if re.search(signature, key):
                return name, "predictor." + key
    return None


def split_relation_state(state: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """(the rest, SGB's relation head with names relative to ``roi_heads.relation.``)."""
    rest = {k: v for k, v in state.items() if not k.startswith(SGB_RELATION_PREFIX)}
    relation = {k[len(SGB_RELATION_PREFIX):]: v for k, v in state.items() if k.startswith(SGB_RELATION_PREFIX)}
    return rest, relation


def mapping_for(relation: Dict[str, torch.Tensor], predictor: str) -> PredictorKeys:
    """The table for the SGB predictor that wrote ``relation``; it must be the config's ``predictor``."""
    found = detect_sgb_predictor(list(relation))
    if found is None:
        examples = sorted(SGB_RELATION_PREFIX + k for k in relation if k.startswith("predictor."))[:4]
        raise CheckpointError(f"cannot tell which SGB predictor wrote the checkpoint's relation head (keys such as "
                              f"{examples}); known: {', '.join(n for n, _ in SGB_PREDICTOR_SIGNATURES)}")
    name, key = found
    if name not in SGB_PREDICTOR_KEYS:
        raise CheckpointError(f"the checkpoint's relation head is SGB's {name} (it has roi_heads.relation.{key}); "
                              f"its weights have no mapping to this framework yet (mapped: "
                              f"{', '.join(sorted(SGB_PREDICTOR_KEYS))})")
    if name != predictor:
        raise CheckpointError(f"the checkpoint's relation head is SGB's {name} (it has roi_heads.relation.{key}), but "
                              f"MODEL.ROI_RELATION_HEAD.PREDICTOR is {predictor!r}: set it to {name!r}")
    return SGB_PREDICTOR_KEYS[name]


def apply_rules(relation: Dict[str, torch.Tensor], rules: Sequence[Union[Rule, Drop]],
                target: Dict[str, torch.Tensor]):
    """(converted, dropped {key: reason}, unknown keys, shape mismatches) of ``relation`` under ``rules``."""
    converted, dropped, unknown, shapes = {}, {}, [], []
    for key, value in relation.items():
        rule = next((r for r in rules if re.search(r.pattern, key)), None)
        if rule is None:
            unknown.append(key)
        elif isinstance(rule, Drop):
            dropped[key] = rule.reason
        else:
            ours = re.sub(rule.pattern, rule.target, key)
            if ours not in target:
                scope = rule.absent_scope or ours
                if rule.absent_reason is not None and not any(k.startswith(scope) for k in target):
                    dropped[key] = rule.absent_reason
                else:
                    unknown.append(f"{key} (-> {OUR_RELATION_PREFIX}{ours}, not in this relation head)")
                continue
            value = rule.transform(value) if rule.transform is not None else value
            if tuple(value.shape) != tuple(target[ours].shape):
                shapes.append(f"{SGB_RELATION_PREFIX}{key} {tuple(value.shape)} -> {OUR_RELATION_PREFIX}{ours} "
                              f"{tuple(target[ours].shape)}")
                continue
            converted[ours] = value.detach().clone()
    return converted, dropped, unknown, shapes


def convert_sgb_relation_state(relation: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor],
                               predictor: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """SGB's relation head (names relative to ``roi_heads.relation.``) -> our ``relation_head`` state dict
    (``target``'s keys, relative to ``relation_head.``). Returns it and the dropped SGB keys (full names) with the
    reason. Raises CheckpointError for another or an unmapped predictor, an SGB key no rule covers, a shape that
    differs and a tensor of ours the checkpoint does not provide."""
    keys = mapping_for(relation, predictor)
    if keys.prepare is not None:
        relation = keys.prepare(dict(relation))
    converted, dropped, unknown, shapes = apply_rules(relation, FEATURE_RULES + keys.rules, target)
    hint = ("check MODEL.ROI_RELATION_HEAD (NUM_CLASSES, EMBED_DIM, CONTEXT_HIDDEN_DIM, CONTEXT_POOLING_DIM, "
            "CONTEXT_OBJ_LAYER / REL_LAYER, TRANSFORMER.*, IMP.HIDDEN_DIM, POOLING_ALL_LEVELS, PREDICT_USE_VISION / "
            "USE_BIAS) and ROI_BOX_HEAD.MLP_HEAD_DIM / NUM_CLASSES against the SGB run's config")
    if shapes:
        raise CheckpointError(f"{len(shapes)} SGB relation tensors have another shape here, e.g. {shapes[:3]}: {hint}")
    if unknown:
        raise CheckpointError(f"{len(unknown)} SGB relation keys have no counterpart here, e.g. "
                              f"{[SGB_RELATION_PREFIX + sgb_name(k) for k in unknown[:4]]}: {hint}")
    missing = sorted(k for k in target if k not in converted)
    if missing:
        raise CheckpointError(f"the checkpoint does not provide {len(missing)} tensors of this relation head, e.g. "
                              f"{[OUR_RELATION_PREFIX + k for k in missing[:4]]}: {hint}")
    return converted, {SGB_RELATION_PREFIX + sgb_name(k): why for k, why in dropped.items()}


def dropped_summary(dropped: Dict[str, str]) -> List[str]:
    """One line per reason: how many keys, which (up to 3), why."""
    lines = []
    for reason in sorted(set(dropped.values())):
        keys = sorted(k for k, why in dropped.items() if why == reason)
        shown = ", ".join(keys[:3]) + (f" ... (+{len(keys) - 3})" if len(keys) > 3 else "")
        lines.append(f"dropped {len(keys)} SGB tensors ({shown}): {reason}")
    return lines


__all__ = ["Rule", "Drop", "PredictorKeys", "SGB_PREDICTOR_KEYS", "SGB_PREDICTOR_SIGNATURES", "FEATURE_RULES",
           "EDGE_HEAD_RULES", "UNUSED_IN_PREDCLS", "CAUSAL_AVERAGES", "apply_rules", "MOTIF_KEYS",
           "TRANSFORMER_KEYS", "VCTREE_KEYS", "IMP_KEYS", "CAUSAL_KEYS", "prepare_causal", "sgb_name",
           "CAUSAL_AVERAGES_VCTREE", "DECODER_ALIAS",
           "detect_sgb_predictor", "split_relation_state", "convert_sgb_relation_state",
           "dropped_summary", "SGB_RELATION_PREFIX", "OUR_RELATION_PREFIX"]
