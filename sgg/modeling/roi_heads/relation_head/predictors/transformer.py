"""SGB's TransformerPredictor (PROTOCOL.md 4.5, METHODS.md 3.1): self-attention among the objects of each image for
the object context (OBJ_LAYER layers) and again for the edge context (REL_LAYER layers), then the shared edge head
with ``ctx_compress`` and the frequency bias. It is the base of the BA-SGG and HCA heads."""
from __future__ import annotations

import math
from typing import Sequence, Tuple

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


class MultiHeadSelfAttention(nn.Module):
    """Scaled dot-product self-attention with explicit per-head key and value sizes (SGB: 8 heads, k = v = 64,
    independent of the model width), output projection, dropout, residual and post-LayerNorm."""

    def __init__(self, model_dim: int, num_heads: int, key_dim: int, val_dim: int, dropout: float):
        super().__init__()
        self.num_heads, self.key_dim, self.val_dim = num_heads, key_dim, val_dim
        self.dropout = dropout
        self.w_q = nn.Linear(model_dim, num_heads * key_dim)
        self.w_k = nn.Linear(model_dim, num_heads * key_dim)
        self.w_v = nn.Linear(model_dim, num_heads * val_dim)
        for layer, head_dim in ((self.w_q, key_dim), (self.w_k, key_dim), (self.w_v, val_dim)):
            nn.init.normal_(layer.weight, mean=0.0, std=math.sqrt(2.0 / (model_dim + head_dim)))
        self.out = xavier_init(nn.Linear(num_heads * val_dim, model_dim))
        self.out_dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(model_dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """``x`` (B, L, D); ``key_mask`` (B, L) True for real boxes (padding is never attended to)."""
        batch, length, _ = x.shape

        def heads(t: torch.Tensor, dim: int) -> torch.Tensor:
            return t.view(batch, length, self.num_heads, dim).transpose(1, 2)

        q, k, v = heads(self.w_q(x), self.key_dim), heads(self.w_k(x), self.key_dim), heads(self.w_v(x), self.val_dim)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :],
                                                  dropout_p=self.dropout if self.training else 0.0)
        attended = attended.transpose(1, 2).reshape(batch, length, self.num_heads * self.val_dim)
        return self.norm(self.out_dropout(self.out(attended)) + x)


class PositionwiseFeedForward(nn.Module):
    """Linear -> ReLU -> Linear (SGB's two 1x1 convolutions), dropout, residual and post-LayerNorm."""

    def __init__(self, model_dim: int, inner_dim: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(model_dim, inner_dim), nn.ReLU(inplace=True),
                                    nn.Linear(inner_dim, model_dim), nn.Dropout(dropout))
        self.norm = nn.LayerNorm(model_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.layers(x) + x)


class EncoderLayer(nn.Module):
    def __init__(self, model_dim: int, num_heads: int, key_dim: int, val_dim: int, inner_dim: int, dropout: float):
        super().__init__()
        self.attention = MultiHeadSelfAttention(model_dim, num_heads, key_dim, val_dim, dropout)
        self.feed_forward = PositionwiseFeedForward(model_dim, inner_dim, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None].to(x.dtype)
        x = self.attention(x, mask) * keep
        return self.feed_forward(x) * keep


class TransformerEncoder(nn.Module):
    """A stack of encoder layers run on each image's boxes separately (padded batch, padding masked)."""

    def __init__(self, num_layers: int, model_dim: int, num_heads: int, key_dim: int, val_dim: int, inner_dim: int,
                 dropout: float):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(model_dim, num_heads, key_dim, val_dim, inner_dim, dropout)
                                     for _ in range(num_layers)])

    def forward(self, features: torch.Tensor, num_boxes: Sequence[int]) -> torch.Tensor:
        """(sum N, D) concatenated over images -> (sum N, D)."""
        if features.shape[0] == 0:
            return features
        # images without boxes are left out: an all-padding row would make the attention softmax undefined
        padded, mask = pack_per_image(features, [n for n in num_boxes if n > 0])
        for layer in self.layers:
            padded = layer(padded, mask)
        return padded[mask]


class TransformerContext(ObjectContext):
    """Object context: ``lin_obj([roi; label embedding; box embedding])`` -> encoder -> ``out_obj`` (not in PredCls).
    Edge context: ``lin_edge([roi; object context; embedding of the pair label])`` -> encoder."""

    def __init__(self, mode: str, class_names: Sequence[str], in_channels: int, glove_dir: str, embed_dim: int,
                 hidden_dim: int, obj_layers: int, edge_layers: int, num_heads: int, key_dim: int, val_dim: int,
                 inner_dim: int, dropout: float, later_nms_thresh: float):
        super().__init__(mode, class_names, glove_dir, embed_dim, hidden_dim, later_nms_thresh)
        self.bbox_embed = BoxPositionEncoder(batch_norm=False, dropout=dropout)
        self.lin_obj = xavier_init(nn.Linear(in_channels + embed_dim + self.bbox_embed.out_dim, hidden_dim))
        self.lin_edge = xavier_init(nn.Linear(embed_dim + hidden_dim + in_channels, hidden_dim))
        self.out_obj = None if mode == "predcls" else xavier_init(nn.Linear(hidden_dim, len(class_names)))
        self.context_obj = TransformerEncoder(obj_layers, hidden_dim, num_heads, key_dim, val_dim, inner_dim, dropout)
        self.context_edge = TransformerEncoder(edge_layers, hidden_dim, num_heads, key_dim, val_dim, inner_dim,
                                               dropout)

    @classmethod
    def from_config(cls, cfg, obj_classes: Sequence[str], in_channels: int, statistics) -> "TransformerContext":
        head = cfg.MODEL.ROI_RELATION_HEAD
        tf = head.TRANSFORMER
        return cls(get_protocol(cfg), obj_classes, in_channels, cfg.GLOVE_DIR, head.EMBED_DIM, head.CONTEXT_HIDDEN_DIM,
                   tf.OBJ_LAYER, tf.REL_LAYER, tf.NUM_HEAD, tf.KEY_DIM, tf.VAL_DIM, tf.INNER_DIM, tf.DROPOUT_RATE,
                   cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES)

    def forward(self, batch: RelationBatch) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(obj_logits (sum N, C), obj_preds (sum N,), edge_ctx (sum N, hidden))."""
        roi_features = batch.roi_features
        obj_input = torch.cat([roi_features, self.obj_input_embed(batch),
                               self.bbox_embed(batch.boxes, roi_features.device)], dim=1)
        obj_feats = self.context_obj(self.lin_obj(obj_input), batch.num_boxes)
        classify = None if self.out_obj is None else lambda: self.out_obj(obj_feats)
        obj_logits, obj_preds = classify_objects(batch, self.num_obj_classes, classify, self.training,
                                                 self.later_nms_thresh, "TransformerPredictor")
        edge_input = torch.cat([roi_features, obj_feats, self.obj_embed2(obj_preds)], dim=1)
        edge_ctx = self.context_edge(self.lin_edge(edge_input), batch.num_boxes)
        return obj_logits, obj_preds, edge_ctx


@ROI_RELATION_PREDICTORS.register("TransformerPredictor")
class TransformerPredictor(ContextEdgePredictor):
    """TransformerContext + the edge head: ``rel_compress(post_cat(prod) * union) + ctx_compress(prod) + freq_bias``."""

    CONTEXT = TransformerContext
    CTX_COMPRESS = True
    # BA-SGG's clean classifier (ba_sgg.py): the modules the reference copies for the Transformer
    CLASSIFIER_MODULES = ("edge_head.rel_compress", "edge_head.ctx_compress", "edge_head.freq_bias")
