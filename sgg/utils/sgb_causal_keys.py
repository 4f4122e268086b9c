"""SGB's CausalAnalysisPredictor state-dict keys onto this framework's (sgg/modeling/roi_heads/relation_head/
predictors/causal.py), for converting SGB Causal TDE checkpoints.

    SGB (roi_heads.relation.predictor.)               here (relation_head.predictor.)
    context_layer.obj_embed1                          context.obj_input_embed.embedding
    context_layer.pos_embed.{0,1,2}                   context.pos_embed.layers.{0,1,2}
    context_layer.decoder_rnn.obj_embed               context.decoder.label_embed
    context_layer.decoder_rnn.input_linearity         context.decoder.input_proj
    context_layer.decoder_rnn.state_linearity         context.decoder.state_proj
    context_layer.decoder_rnn.out_obj                 context.decoder.out_obj
    context_layer.<anything else>                     context.<the same> (obj_embed2, obj_ctx_rnn, edge_ctx_rnn,
                                                      lin_obj_h, lin_edge_h, pred_layer, fc_layer, untreated_*)
    post_emb, post_cat.0, ctx_compress, vis_compress, ctx_gate_fc, freq_bias.obj_baseline, spt_emb.{0,2},
    untreated_spt, untreated_conv_spt, avg_post_ctx, untreated_feat   the same

With CONTEXT_LAYER vctree (``sgb_causal_key_map(key, "vctree")``; SGB's VCTreeLSTMContext, ours VCTreeContext) the
context keys are instead:

    SGB context_layer.                                here context.
    obj_embed1                                        obj_embed1.embedding
    pos_embed.{0,1,2}                                 pos_embed.layers.{0,1,2}
    bi_freq_prior, obj_reduce, emb_reduce, box_embed, score_net.<the same>
    overlap_embed, score_pre, score_sub, score_obj,
    vision_prior
    {obj,edge}_ctx_rnn.multi_layer_lstm.K.            {obj,edge}_ctx_rnn.upward.K / .downward.K
      treeLSTM_foreward.treeLSTM / treeLSTM_backward.treeLSTM
    decoder_rnn.decoderLSTM.embed_layer /             decoder_rnn.obj_embed / decoder_rnn.out (SGB registers the
      .embed_out_layer                                decoder's embedding and output layer twice, under both names)
    <anything else>                                   <the same> (obj_embed2, decoder_rnn.*, untreated_*)

Every key of SGB's predictor has a counterpart; ``sgb_causal_key_map`` returns None for any other key.

SEPARATE_SPATIAL's ``roi_heads.relation.union_feature_extractor.spatial_fc.{0,2}`` are
``relation_head.union_feature_extractor.spatial_fc.{0,2}`` here (outside the predictor, not covered by this map).

A PredCls model here has no ``context.decoder`` (Motifs), ``context.decoder_rnn`` (VCTree) or ``context.pred_layer``
(VTransE): it uses the GT labels.
SGB builds them in PredCls too, unused; a converter skips those keys.
"""
from __future__ import annotations

import re
from typing import Optional

SGB_PREDICTOR_PREFIX = "roi_heads.relation.predictor."
OUR_PREDICTOR_PREFIX = "relation_head.predictor."

# (SGB prefix, ours), first match wins
_PREFIXES = (
    ("context_layer.obj_embed1.", "context.obj_input_embed.embedding."),
    ("context_layer.pos_embed.", "context.pos_embed.layers."),
    ("context_layer.decoder_rnn.obj_embed.", "context.decoder.label_embed."),
    ("context_layer.decoder_rnn.input_linearity.", "context.decoder.input_proj."),
    ("context_layer.decoder_rnn.state_linearity.", "context.decoder.state_proj."),
    ("context_layer.decoder_rnn.out_obj.", "context.decoder.out_obj."),
    ("context_layer.", "context."),
)
# CONTEXT_LAYER vctree: (SGB regex, ours), first match wins
_VCTREE_CONTEXT = (
    (r"^context_layer\.obj_embed1\.", "context.obj_embed1.embedding."),
    (r"^context_layer\.pos_embed\.", "context.pos_embed.layers."),
    (r"^context_layer\.(bi_freq_prior|obj_reduce|emb_reduce|box_embed|overlap_embed|score_pre|score_sub|score_obj|"
     r"vision_prior)\.", r"context.score_net.\1."),
    (r"^context_layer\.(obj|edge)_ctx_rnn\.multi_layer_lstm\.(\d+)\.treeLSTM_foreward\.treeLSTM\.",
     r"context.\1_ctx_rnn.upward.\2."),
    (r"^context_layer\.(obj|edge)_ctx_rnn\.multi_layer_lstm\.(\d+)\.treeLSTM_backward\.treeLSTM\.",
     r"context.\1_ctx_rnn.downward.\2."),
    (r"^context_layer\.decoder_rnn\.decoderLSTM\.embed_layer\.", "context.decoder_rnn.obj_embed."),
    (r"^context_layer\.decoder_rnn\.decoderLSTM\.embed_out_layer\.", "context.decoder_rnn.out."),
    (r"^context_layer\.", "context."),
)
_SAME_NAME = ("post_emb.", "post_cat.0.", "ctx_compress.", "vis_compress.", "ctx_gate_fc.", "freq_bias.obj_baseline.",
              "spt_emb.0.", "spt_emb.2.", "untreated_spt", "untreated_conv_spt", "avg_post_ctx", "untreated_feat")


def sgb_causal_key_map(sgb_key: str, context_layer: str = "motifs") -> Optional[str]:
    """Our key for an SGB CausalAnalysisPredictor key of a model with CAUSAL.CONTEXT_LAYER ``context_layer``, or
    None when there is none. Keys relative to the predictor map to keys relative to ours; full-model keys
    (``roi_heads.relation.predictor.*``) map to full-model keys (``relation_head.predictor.*``)."""
    if sgb_key.startswith(SGB_PREDICTOR_PREFIX):
        mapped = sgb_causal_key_map(sgb_key[len(SGB_PREDICTOR_PREFIX):], context_layer)
        return None if mapped is None else OUR_PREDICTOR_PREFIX + mapped
    if context_layer == "vctree":
        for pattern, ours in _VCTREE_CONTEXT:
            if re.search(pattern, sgb_key):
                return re.sub(pattern, ours, sgb_key)
    for sgb_prefix, ours in _PREFIXES:
        if sgb_key.startswith(sgb_prefix):
            return ours + sgb_key[len(sgb_prefix):]
    if sgb_key.startswith(_SAME_NAME):
        return sgb_key
    return None
