"""ReBalance-HCA's hybrid co-attention predictor (METHODS.md 5.1).

Each object has a visual stream (ROI feature + box geometry) and a textual stream (label embedding). The object
encoder stacks hybrid layers of four streams, the edge decoder stacks SHA layers (self-attention + co-attention per
modality), and the pair classifier is the Transformer's edge head (``ctx_compress`` + frequency bias). All attention is
among the objects of one image: images are padded to a common length and padded keys are masked out.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.config import get_protocol
from sgg.modeling.registry import ROI_RELATION_PREDICTORS

from ..layers.batch_access import pack_per_image
from ..layers.box_geometry import BoxPositionEncoder
from ..layers.context_predictor import ContextEdgePredictor, ObjectContext
from ..layers.init import xavier_init
from ..layers.object_labels import classify_objects
from ..types import RelationBatch
from .transformer import EncoderLayer, MultiHeadSelfAttention, PositionwiseFeedForward


class MultiHeadCrossAttention(MultiHeadSelfAttention):
    """The same attention block with queries from one stream and keys/values from another stream of the same boxes
    (co-attention, MCAN-style): residual to the query stream, then LayerNorm."""

    def forward(self, query: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """``query`` (B, Lq, D), ``context`` (B, Lk, D); ``key_mask`` (B, Lk) True for real boxes."""
        batch, q_len, _ = query.shape
        k_len = context.shape[1]

        def heads(t: torch.Tensor, length: int, dim: int) -> torch.Tensor:
            return t.view(batch, length, self.num_heads, dim).transpose(1, 2)

        q = heads(self.w_q(query), q_len, self.key_dim)
        k = heads(self.w_k(context), k_len, self.key_dim)
        v = heads(self.w_v(context), k_len, self.val_dim)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :],
                                                  dropout_p=self.dropout if self.training else 0.0)
        attended = attended.transpose(1, 2).reshape(batch, q_len, self.num_heads * self.val_dim)
        return self.norm(self.out_dropout(self.out(attended)) + query)


class CrossAttentionLayer(nn.Module):
    """CA(x <- y) = FFN(MHA(x, y, y)), padding rows zeroed after each block (the cross twin of ``EncoderLayer``)."""

    def __init__(self, model_dim: int, num_heads: int, key_dim: int, val_dim: int, inner_dim: int, dropout: float):
        super().__init__()
        self.attention = MultiHeadCrossAttention(model_dim, num_heads, key_dim, val_dim, dropout)
        self.feed_forward = PositionwiseFeedForward(model_dim, inner_dim, dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None].to(x.dtype)
        x = self.attention(x, context, mask) * keep
        return self.feed_forward(x) * keep


class AttentionDims:
    """The sizes every attention block of the HCA context shares (MODEL.ROI_RELATION_HEAD.HCA.*)."""

    def __init__(self, model_dim: int, num_heads: int, key_dim: int, val_dim: int, inner_dim: int, dropout: float):
        self.args = (model_dim, num_heads, key_dim, val_dim, inner_dim, dropout)

    def self_layer(self) -> EncoderLayer:
        return EncoderLayer(*self.args)

    def cross_layer(self) -> CrossAttentionLayer:
        return CrossAttentionLayer(*self.args)


class FourStreamLayer(nn.Module):
    """One hybrid layer of the object encoder:

        tsa <- SA_t(tsa);   tca <- CA_t(tca <- vsa)   (the visual self-attention stream of the previous layer)
        vsa <- SA_v(vsa);   vca <- CA_v(vca <- tsa)   (the text self-attention stream just updated)
    """

    def __init__(self, dims: AttentionDims):
        super().__init__()
        self.text_self = dims.self_layer()
        self.text_cross = dims.cross_layer()
        self.vision_self = dims.self_layer()
        self.vision_cross = dims.cross_layer()

    def forward(self, streams: Tuple[torch.Tensor, ...], mask: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        tsa, tca, vsa, vca = streams
        new_tsa = self.text_self(tsa, mask)
        new_tca = self.text_cross(tca, vsa, mask)
        new_vsa = self.vision_self(vsa, mask)
        new_vca = self.vision_cross(vca, new_tsa, mask)
        return new_tsa, new_tca, new_vsa, new_vca


class SHALayer(nn.Module):
    """One stacked hybrid-attention layer of the edge decoder (SHA-GCL): v' = SA_v(v) + CA_v(v <- t) and
    t' = SA_t(t) + CA_t(t <- v), both from the layer's inputs."""

    def __init__(self, dims: AttentionDims):
        super().__init__()
        self.vision_self = dims.self_layer()
        self.vision_cross = dims.cross_layer()
        self.text_self = dims.self_layer()
        self.text_cross = dims.cross_layer()

    def forward(self, streams: Tuple[torch.Tensor, ...], mask: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        vision, text = streams
        new_vision = self.vision_self(vision, mask) + self.vision_cross(vision, text, mask)
        new_text = self.text_self(text, mask) + self.text_cross(text, vision, mask)
        return new_vision, new_text


def run_per_image(streams: Sequence[torch.Tensor], num_boxes: Sequence[int], layers: nn.ModuleList):
    """Pads each (sum N, D) stream to (B, max N, D), runs ``layers`` on the tuple of streams, and unpads. Images
    without boxes are left out: an all-padding row would make the attention softmax undefined."""
    kept = [n for n in num_boxes if n > 0]
    packed = [pack_per_image(stream, kept) for stream in streams]
    mask = packed[0][1]
    padded: Tuple[torch.Tensor, ...] = tuple(p for p, _ in packed)
    for layer in layers:
        padded = layer(padded, mask)
    return [p[mask] for p in padded]


class HybridObjectEncoder(nn.Module):
    """``num_layers`` four-stream layers from tsa = tca = text and vsa = vca = vision; the object feature is the sum
    of the four final streams (vca + vsa) + (tca + tsa)."""

    def __init__(self, num_layers: int, dims: AttentionDims):
        super().__init__()
        self.layers = nn.ModuleList([FourStreamLayer(dims) for _ in range(num_layers)])

    def forward(self, vision: torch.Tensor, text: torch.Tensor, num_boxes: Sequence[int]) -> torch.Tensor:
        if vision.shape[0] == 0:
            return vision + text
        tsa, tca, vsa, vca = run_per_image((text, text, vision, vision), num_boxes, self.layers)
        return (vca + vsa) + (tca + tsa)


class HybridEdgeDecoder(nn.Module):
    """``num_layers`` SHA layers; the edge context is the sum of the two final streams v + t."""

    def __init__(self, num_layers: int, dims: AttentionDims):
        super().__init__()
        self.layers = nn.ModuleList([SHALayer(dims) for _ in range(num_layers)])

    def forward(self, vision: torch.Tensor, text: torch.Tensor, num_boxes: Sequence[int]) -> torch.Tensor:
        if vision.shape[0] == 0:
            return vision + text
        new_vision, new_text = run_per_image((vision, text), num_boxes, self.layers)
        return new_vision + new_text


class HCAContext(ObjectContext):
    """Object streams: v0 = lin_obj_visual([roi; box embedding]), t0 = lin_obj_textual(label embedding) -> hybrid
    object encoder -> ``out_obj`` (not in PredCls). Edge streams: lin_edge_visual([roi; object feature]) and
    lin_edge_textual(embedding of the pair label) -> SHA edge decoder."""

    def __init__(self, mode: str, class_names: Sequence[str], in_channels: int, glove_dir: str, embed_dim: int,
                 hidden_dim: int, obj_layers: int, edge_layers: int, dims: AttentionDims, later_nms_thresh: float,
                 box_dropout: float = 0.1):
        super().__init__(mode, class_names, glove_dir, embed_dim, hidden_dim, later_nms_thresh)
        self.bbox_embed = BoxPositionEncoder(batch_norm=False, dropout=box_dropout)
        self.lin_obj_visual = xavier_init(nn.Linear(in_channels + self.bbox_embed.out_dim, hidden_dim))
        self.lin_obj_textual = xavier_init(nn.Linear(embed_dim, hidden_dim))
        self.lin_edge_visual = xavier_init(nn.Linear(hidden_dim + in_channels, hidden_dim))
        self.lin_edge_textual = xavier_init(nn.Linear(embed_dim, hidden_dim))
        self.out_obj = None if mode == "predcls" else xavier_init(nn.Linear(hidden_dim, len(class_names)))
        self.context_obj = HybridObjectEncoder(obj_layers, dims)
        self.context_edge = HybridEdgeDecoder(edge_layers, dims)

    @classmethod
    def from_config(cls, cfg, obj_classes: Sequence[str], in_channels: int, statistics) -> "HCAContext":
        head = cfg.MODEL.ROI_RELATION_HEAD
        hca = head.HCA
        dims = AttentionDims(head.CONTEXT_HIDDEN_DIM, hca.NUM_HEAD, hca.KEY_DIM, hca.VAL_DIM, hca.INNER_DIM,
                             hca.DROPOUT_RATE)
        return cls(get_protocol(cfg), obj_classes, in_channels, cfg.GLOVE_DIR, head.EMBED_DIM, head.CONTEXT_HIDDEN_DIM,
                   hca.OBJ_LAYER, hca.REL_LAYER, dims, cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES)

    def forward(self, batch: RelationBatch) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(obj_logits (sum N, C), obj_preds (sum N,), edge_ctx (sum N, hidden))."""
        roi_features = batch.roi_features
        vision = self.lin_obj_visual(torch.cat([roi_features, self.bbox_embed(batch.boxes, roi_features.device)],
                                               dim=1))
        text = self.lin_obj_textual(self.obj_input_embed(batch))
        obj_feats = self.context_obj(vision, text, batch.num_boxes)
        classify = None if self.out_obj is None else lambda: self.out_obj(obj_feats)
        obj_logits, obj_preds = classify_objects(batch, self.num_obj_classes, classify, self.training,
                                                 self.later_nms_thresh, "HybridCoAttentionPredictor")
        edge_vision = self.lin_edge_visual(torch.cat([roi_features, obj_feats], dim=1))
        edge_text = self.lin_edge_textual(self.obj_embed2(obj_preds))
        edge_ctx = self.context_edge(edge_vision, edge_text, batch.num_boxes)
        return obj_logits, obj_preds, edge_ctx


@ROI_RELATION_PREDICTORS.register("HybridCoAttentionPredictor")
class HybridCoAttentionPredictor(ContextEdgePredictor):
    """HCAContext + the Transformer's edge head: ``rel_compress(post_cat(prod) * union) + ctx_compress(prod) +
    freq_bias``; only the context differs from the Transformer predictor."""

    CONTEXT = HCAContext
    CTX_COMPRESS = True
    # BA-SGG's clean classifier (ba_sgg.py): the Transformer's modules, as the reference's HCA copies them
    CLASSIFIER_MODULES = ("edge_head.rel_compress", "edge_head.ctx_compress", "edge_head.freq_bias")


__all__: List[str] = ["HybridCoAttentionPredictor", "HCAContext", "FourStreamLayer", "SHALayer",
                      "MultiHeadCrossAttention", "CrossAttentionLayer"]
