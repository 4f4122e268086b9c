"""Seeded weights for SGB-named state dicts: the rule the SGB relation-head golden fixtures were made with.

The fixtures store only key names and shapes; these tensors are regenerated from them. One ``torch.Generator``
seeded with ``seed`` walks the keys in sorted order and draws, per key:

* ``*.num_batches_tracked``: nothing (a zero int64 scalar);
* ``*.running_var``: ``0.5 + U(0, 1)`` (positive, as a variance must be);
* tensors of two or more dimensions: ``N(0, 1) / sqrt(fan_in)`` with fan_in the product of the trailing dimensions
  (keeps every layer's output of order one, so the comparison is not dominated by saturation);
* other vectors (biases, norms, running means): ``0.1 * N(0, 1)``.
"""
import math
from typing import Dict, Sequence

import torch


def seeded_sgb_weights(shapes: Dict[str, Sequence[int]], seed: int) -> Dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if key.endswith("num_batches_tracked"):
            weights[key] = torch.zeros(shape, dtype=torch.long)
        elif key.endswith("running_var"):
            weights[key] = 0.5 + torch.rand(shape, generator=generator)
        elif len(shape) >= 2:
            weights[key] = torch.randn(shape, generator=generator) / math.sqrt(math.prod(shape[1:]))
        else:
            weights[key] = 0.1 * torch.randn(shape, generator=generator)
    return weights


# SGB's VCTree object decoder holds its label embedding and classifier twice (decoderLSTM.embed_layer /
# embed_out_layer are the same modules as decoder_rnn.obj_embed / out): its state dict lists both names, same values
SGB_ALIASES = {"predictor.context_layer.decoder_rnn.decoderLSTM.embed_layer.weight":
               "predictor.context_layer.decoder_rnn.obj_embed.weight",
               "predictor.context_layer.decoder_rnn.decoderLSTM.embed_out_layer.weight":
               "predictor.context_layer.decoder_rnn.out.weight",
               "predictor.context_layer.decoder_rnn.decoderLSTM.embed_out_layer.bias":
               "predictor.context_layer.decoder_rnn.out.bias"}


def tie_sgb_aliases(weights: Dict[str, torch.Tensor], prefix: str = "roi_heads.relation.") -> Dict[str, torch.Tensor]:
    """``weights`` with each alias key set to its module's tensor, as SGB's own state dict has it."""
    tied = dict(weights)
    for alias, original in SGB_ALIASES.items():
        if prefix + alias in tied:
            tied[prefix + alias] = tied[prefix + original]
    return tied


def _linear(prefix: str, out_dim: int, in_dim: int, bias: bool = True) -> Dict[str, tuple]:
    return {f"{prefix}.weight": (out_dim, in_dim), **({f"{prefix}.bias": (out_dim,)} if bias else {})}


def _batch_norm(prefix: str, channels: int) -> Dict[str, tuple]:
    shapes = {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")}
    return {**shapes, f"{prefix}.num_batches_tracked": ()}


def _lstm(prefix: str, input_dim: int, hidden: int, layers: int) -> Dict[str, tuple]:
    shapes = {}
    for layer in range(layers):
        for suffix in ("", "_reverse"):
            in_dim = input_dim if layer == 0 else 2 * hidden
            shapes.update({f"{prefix}.weight_ih_l{layer}{suffix}": (4 * hidden, in_dim),
                           f"{prefix}.weight_hh_l{layer}{suffix}": (4 * hidden, hidden),
                           f"{prefix}.bias_ih_l{layer}{suffix}": (4 * hidden,),
                           f"{prefix}.bias_hh_l{layer}{suffix}": (4 * hidden,)})
    return shapes


def _encoder(prefix: str, layers: int, hidden: int, heads: int, key_dim: int, val_dim: int, inner: int):
    shapes = {}
    for i in range(layers):
        p = f"{prefix}.layer_stack.{i}"
        shapes.update({**_linear(f"{p}.slf_attn.w_qs", heads * key_dim, hidden),
                       **_linear(f"{p}.slf_attn.w_ks", heads * key_dim, hidden),
                       **_linear(f"{p}.slf_attn.w_vs", heads * val_dim, hidden),
                       **_linear(f"{p}.slf_attn.fc", hidden, heads * val_dim),
                       f"{p}.slf_attn.layer_norm.weight": (hidden,), f"{p}.slf_attn.layer_norm.bias": (hidden,),
                       f"{p}.pos_ffn.w_1.weight": (inner, hidden, 1), f"{p}.pos_ffn.w_1.bias": (inner,),
                       f"{p}.pos_ffn.w_2.weight": (hidden, inner, 1), f"{p}.pos_ffn.w_2.bias": (hidden,),
                       f"{p}.pos_ffn.layer_norm.weight": (hidden,), f"{p}.pos_ffn.layer_norm.bias": (hidden,)})
    return shapes


def _tree_lstm(prefix: str, input_dim: int, hidden: int, layers: int) -> Dict[str, tuple]:
    """SGB's bidirectional tree LSTM (MultiLayer_BTreeLSTM): hidden / 2 per direction, six gates up, five down."""
    shapes, half = {}, hidden // 2
    for layer in range(layers):
        in_dim = input_dim if layer == 0 else hidden
        up, down = f"{prefix}.multi_layer_lstm.{layer}.treeLSTM_foreward.treeLSTM", \
            f"{prefix}.multi_layer_lstm.{layer}.treeLSTM_backward.treeLSTM"
        shapes.update({**_linear(f"{up}.px", half, in_dim), **_linear(f"{up}.ioffux", 6 * half, in_dim),
                       **_linear(f"{up}.ioffuh_left", 6 * half, half), **_linear(f"{up}.ioffuh_right", 6 * half, half),
                       **_linear(f"{down}.px", half, in_dim), **_linear(f"{down}.iofux", 5 * half, in_dim),
                       **_linear(f"{down}.iofuh", 5 * half, half)})
    return shapes


def sgb_relation_shapes(predictor: str, fpn: int, resolution: int, mlp: int, num_obj: int, num_rel: int, embed: int,
                        hidden: int, pooling: int, obj_layers: int = 1, rel_layers: int = 1,
                        transformer=(4, 2, 8, 64, 64, 2048), imp_hidden: int = 512) -> Dict[str, tuple]:
    """Key names and shapes of SGB's ``ROIRelationHead`` (with the ``roi_heads.relation.`` prefix), written from
    SGB's module names: ``RelationFeatureExtractor`` with POOLING_ALL_LEVELS over 4 FPN levels, the FPN2MLP box
    feature extractor, and MotifPredictor or VCTreePredictor (with CAUSAL.EFFECT_ANALYSIS' ``untreated_*`` buffers, as
    SGB's relation yaml sets it), TransformerPredictor (``transformer`` = OBJ_LAYER, REL_LAYER, NUM_HEAD, KEY_DIM,
    VAL_DIM, INNER_DIM) or IMPPredictor (``imp_hidden``: IMPContext's hard-coded 512). test_sgb_relation_golden.py
    checks it against the names SGB's own module reported."""
    roi = fpn * resolution * resolution
    union = "union_feature_extractor"
    shapes = {**_linear("box_feature_extractor.fc6", mlp, roi), **_linear("box_feature_extractor.fc7", mlp, mlp),
              f"{union}.feature_extractor.pooler.reduce_channel.0.weight": (fpn, 4 * fpn, 3, 3),
              f"{union}.feature_extractor.pooler.reduce_channel.0.bias": (fpn,),
              **_linear(f"{union}.feature_extractor.fc6", mlp, roi),
              **_linear(f"{union}.feature_extractor.fc7", mlp, mlp),
              f"{union}.rect_conv.0.weight": (fpn // 2, 2, 7, 7), f"{union}.rect_conv.0.bias": (fpn // 2,),
              **_batch_norm(f"{union}.rect_conv.2", fpn // 2),
              f"{union}.rect_conv.4.weight": (fpn, fpn // 2, 3, 3), f"{union}.rect_conv.4.bias": (fpn,),
              **_batch_norm(f"{union}.rect_conv.6", fpn)}
    if pooling != mlp:
        shapes.update(_linear("predictor.up_dim", pooling, mlp))
    c = "predictor.context_layer"
    if predictor == "IMPPredictor":  # SGB's IMPContext: hidden size hard-coded, no embeddings, no frequency bias
        h = imp_hidden
        shapes.update({**_linear(f"{c}.obj_unary", h, mlp), **_linear(f"{c}.edge_unary", h, pooling),
                       **{f"{c}.{gru}.{name}_{kind}": (3 * h, h) if name == "weight" else (3 * h,)
                          for gru in ("node_gru", "edge_gru") for name in ("weight", "bias") for kind in ("ih", "hh")},
                       **{k: v for gate in ("sub_vert", "obj_vert", "out_edge", "in_edge")
                          for k, v in _linear(f"{c}.{gate}_w_fc.0", 1, 2 * h).items()},
                       **_linear(f"{c}.obj_fc", num_obj, h), **_linear(f"{c}.rel_fc", num_rel, h)})
        return {"roi_heads.relation." + k: v for k, v in shapes.items()}
    shapes.update({**_linear("predictor.post_emb", 2 * hidden, hidden),
                   **_linear("predictor.post_cat", pooling, 2 * hidden),
                   "predictor.freq_bias.obj_baseline.weight": (num_obj * num_obj, num_rel)})
    if predictor != "VCTreePredictor":
        shapes.update(_linear("predictor.rel_compress", num_rel, pooling))
    shapes.update({f"{c}.obj_embed1.weight": (num_obj, embed), f"{c}.obj_embed2.weight": (num_obj, embed)})
    obj_input = mlp + embed + 128
    if predictor == "MotifPredictor":
        shapes.update({**_linear(f"{c}.pos_embed.0", 32, 9), **_batch_norm(f"{c}.pos_embed.1", 32),
                       **_linear(f"{c}.pos_embed.2", 128, 32),
                       **_lstm(f"{c}.obj_ctx_rnn", obj_input, hidden, obj_layers),
                       **_lstm(f"{c}.edge_ctx_rnn", embed + hidden + mlp, hidden, rel_layers),
                       **_linear(f"{c}.lin_obj_h", hidden, 2 * hidden),
                       **_linear(f"{c}.lin_edge_h", hidden, 2 * hidden),
                       f"{c}.decoder_rnn.obj_embed.weight": (num_obj + 1, embed),
                       **_linear(f"{c}.decoder_rnn.input_linearity", 6 * hidden, hidden + obj_input + embed),
                       **_linear(f"{c}.decoder_rnn.state_linearity", 5 * hidden, hidden),
                       **_linear(f"{c}.decoder_rnn.out_obj", num_obj, hidden),
                       f"{c}.untreated_dcd_feat": (hidden + obj_input,), f"{c}.untreated_obj_feat": (obj_input,),
                       f"{c}.untreated_edg_feat": (embed + mlp,)})
    elif predictor == "TransformerPredictor":
        obj_l, rel_l, heads, key_dim, val_dim, inner = transformer
        shapes.update({**_linear(f"{c}.bbox_embed.0", 32, 9), **_linear(f"{c}.bbox_embed.3", 128, 32),
                       **_linear(f"{c}.lin_obj", hidden, obj_input),
                       **_linear(f"{c}.lin_edge", hidden, embed + hidden + mlp),
                       **_linear(f"{c}.out_obj", num_obj, hidden),
                       **_encoder(f"{c}.context_obj", obj_l, hidden, heads, key_dim, val_dim, inner),
                       **_encoder(f"{c}.context_edge", rel_l, hidden, heads, key_dim, val_dim, inner),
                       **_linear("predictor.ctx_compress", num_rel, 2 * hidden)})
    elif predictor == "VCTreePredictor":
        shapes.update({**_linear(f"{c}.pos_embed.0", 32, 9), **_batch_norm(f"{c}.pos_embed.1", 32),
                       **_linear(f"{c}.pos_embed.2", 128, 32),
                       **_linear(f"{c}.overlap_embed.0", 128, 6), **_batch_norm(f"{c}.overlap_embed.1", 128),
                       **_linear(f"{c}.box_embed.0", 128, 9), **_batch_norm(f"{c}.box_embed.1", 128),
                       f"{c}.bi_freq_prior.weight": (1, num_obj * num_obj),
                       **_linear(f"{c}.obj_reduce", 128, mlp), **_linear(f"{c}.emb_reduce", 128, embed),
                       **_linear(f"{c}.score_pre", hidden, 512), **_linear(f"{c}.score_sub", hidden, hidden),
                       **_linear(f"{c}.score_obj", hidden, hidden), **_linear(f"{c}.vision_prior", 1, 3 * hidden + 1),
                       **_tree_lstm(f"{c}.obj_ctx_rnn", obj_input, hidden, obj_layers),
                       **_tree_lstm(f"{c}.edge_ctx_rnn", embed + hidden + mlp, hidden, rel_layers),
                       f"{c}.decoder_rnn.obj_embed.weight": (num_obj + 1, embed),
                       **_linear(f"{c}.decoder_rnn.out", num_obj, hidden),
                       f"{c}.decoder_rnn.decoderLSTM.embed_layer.weight": (num_obj + 1, embed),
                       **_linear(f"{c}.decoder_rnn.decoderLSTM.embed_out_layer", num_obj, hidden),
                       **_linear(f"{c}.decoder_rnn.decoderLSTM.px", hidden, hidden + obj_input + embed),
                       **_linear(f"{c}.decoder_rnn.decoderLSTM.iofux", 5 * hidden, hidden + obj_input + embed),
                       **_linear(f"{c}.decoder_rnn.decoderLSTM.iofuh", 5 * hidden, hidden),
                       f"{c}.untreated_dcd_feat": (hidden + obj_input,), f"{c}.untreated_obj_feat": (obj_input,),
                       f"{c}.untreated_edg_feat": (embed + mlp,),
                       **_linear("predictor.ctx_compress", num_rel, pooling)})
    else:
        raise ValueError(f"no SGB key list for {predictor}")
    return {"roi_heads.relation." + k: v for k, v in shapes.items()}
