"""The IterativeSG transformer (METHODS.md 6.1): DETR's encoder, then three coupled decoders whose query i together
form triplet i = (subject i, object i, predicate i).

At decoder layer t, with content queries q_x^t (q_x^1 = 0) and learned positional queries p_sub, p_obj, p_rel:

    sub_t   = Dec_sub_t(q_sub^t, memory, pos = p_sub)
    p_obj^t = p_obj + Drop(Lin(MHA(p_obj, keys sub_t + p_sub, values sub_t)))                  (object | subject)
    obj_t   = Dec_obj_t(q_obj^t, memory, pos = p_obj^t)
    p_rel^t = p_rel + Drop(Lin(MHA(p_rel, keys [sub_t + p_sub; obj_t + p_obj^t], values [sub_t; obj_t])))
    rel_t   = Dec_rel_t(q_rel^t, memory, pos = p_rel^t)                                          (predicate | both)
    q_x^{t+1} = x_t + LN(Drop(Lin(MHA(x_t + p_x^t, keys triplet_t + pos_t, values triplet_t))))     (t < T)

where triplet_t = [sub_t; obj_t; rel_t] (3d wide): every next-layer query attends over the whole current graph.
Every ``Lin`` starts at zero, so before training the decoders are three independent DETR decoders
(``tests/modeling/test_iterative_sg.py`` checks this). Outputs of every layer are layer-normed (subject and object
share one norm) and go through heads shared by all layers: one object classifier for subjects and objects, one
predicate classifier, one box MLP for subject, object and relation boxes (sigmoid cx, cy, w, h).
"""
from __future__ import annotations

import copy
import math
from typing import Dict, Optional

import torch
from torch import nn
import torch.nn.functional as F

from sgg.config.sgg_config import ConfigError


class PositionEmbeddingSine(nn.Module):
    """DETR's 2-d sine encoding: half the channels encode y, half x, of the normalised (0..2 pi) position of each
    feature cell counted over the unpadded cells only."""

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0):
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.scale = 2 * math.pi

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """``mask`` (B, H, W), True on padding -> (B, 2 * num_pos_feats, H, W)."""
        not_mask = (~mask).float()
        y_embed = not_mask.cumsum(1)
        x_embed = not_mask.cumsum(2)
        eps = 1e-6
        y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
        x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x = x_embed[..., None] / dim_t
        pos_y = y_embed[..., None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def _with_pos(tensor: torch.Tensor, pos: Optional[torch.Tensor]) -> torch.Tensor:
    return tensor if pos is None else tensor + pos


class FeedForward(nn.Module):
    def __init__(self, d_model: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))


class EncoderLayer(nn.Module):
    """Post-norm DETR encoder layer: self-attention (positions added to queries and keys) and feed-forward."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, src, pos, key_padding_mask):
        q = k = _with_pos(src, pos)
        src = self.norm1(src + self.dropout1(self.self_attn(q, k, src, key_padding_mask=key_padding_mask)[0]))
        return self.norm2(src + self.dropout2(self.ffn(src)))


class DecoderLayer(nn.Module):
    """Post-norm DETR decoder layer: query self-attention, cross-attention to the encoded image, feed-forward."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout1, self.dropout2, self.dropout3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, tgt, memory, query_pos, memory_pos, memory_padding_mask):
        q = k = _with_pos(tgt, query_pos)
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, k, tgt)[0]))
        attended = self.cross_attn(_with_pos(tgt, query_pos), _with_pos(memory, memory_pos), memory,
                                   key_padding_mask=memory_padding_mask)[0]
        tgt = self.norm2(tgt + self.dropout2(attended))
        return self.norm3(tgt + self.dropout3(self.ffn(tgt)))


class ZeroInitAttention(nn.Module):
    """``Drop(Lin(MHA(query, key, value)))`` with ``Lin`` starting at zero: a residual that is off until trained.
    ``norm`` adds the LayerNorm of the refinement step (LN(0) = 0 at start, its bias being 0)."""

    def __init__(self, d_model: int, nhead: int, dropout: float, key_dim: int, norm: bool = False):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, kdim=key_dim, vdim=key_dim,
                                          batch_first=True)
        self.linear = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model) if norm else nn.Identity()

    def zero_init(self) -> None:
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, query, key, value):
        return self.norm(self.dropout(self.linear(self.attn(query, key, value)[0])))


class IterativeDecoder(nn.Module):
    """The three synchronised decoders with conditioning and refinement (module docstring). Returns the
    layer-normed features of every layer: three (T, B, Q, d) tensors (subject, object, predicate)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, num_layers: int):
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"MODEL.DETR.DEC_LAYERS must be at least 1, got {num_layers}")
        layer = DecoderLayer(d_model, nhead, dim_feedforward, dropout)
        self.num_layers = num_layers
        self.subject_layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.object_layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.relation_layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.object_conditioning = nn.ModuleList(
            ZeroInitAttention(d_model, nhead, dropout, d_model) for _ in range(num_layers))
        self.relation_conditioning = nn.ModuleList(
            ZeroInitAttention(d_model, nhead, dropout, 2 * d_model) for _ in range(num_layers))
        self.refine = nn.ModuleDict({
            name: nn.ModuleList(ZeroInitAttention(d_model, nhead, dropout, 3 * d_model, norm=True)
                                for _ in range(num_layers - 1))
            for name in ("subject", "object", "relation")})
        self.entity_norm = nn.LayerNorm(d_model)  # shared by subject and object outputs, as the reference
        self.relation_norm = nn.LayerNorm(d_model)

    def zero_init(self) -> None:
        for module in self.modules():
            if isinstance(module, ZeroInitAttention):
                module.zero_init()

    def forward(self, memory, memory_pos, memory_padding_mask, subject_pos, object_pos, relation_pos):
        sub_q = torch.zeros_like(subject_pos)
        obj_q = torch.zeros_like(object_pos)
        rel_q = torch.zeros_like(relation_pos)
        outputs = {"subject": [], "object": [], "relation": []}
        for t in range(self.num_layers):
            sub = self.subject_layers[t](sub_q, memory, subject_pos, memory_pos, memory_padding_mask)
            obj_pos_t = object_pos + self.object_conditioning[t](object_pos, sub + subject_pos, sub)
            obj = self.object_layers[t](obj_q, memory, obj_pos_t, memory_pos, memory_padding_mask)
            pair_keys = torch.cat([sub + subject_pos, obj + obj_pos_t], dim=-1)
            rel_pos_t = relation_pos + self.relation_conditioning[t](relation_pos, pair_keys,
                                                                     torch.cat([sub, obj], dim=-1))
            rel = self.relation_layers[t](rel_q, memory, rel_pos_t, memory_pos, memory_padding_mask)
            outputs["subject"].append(self.entity_norm(sub))
            outputs["object"].append(self.entity_norm(obj))
            outputs["relation"].append(self.relation_norm(rel))
            if t + 1 < self.num_layers:
                triplet = torch.cat([sub, obj, rel], dim=-1)
                triplet_keys = triplet + torch.cat([subject_pos, obj_pos_t, rel_pos_t], dim=-1)
                sub_q = sub + self.refine["subject"][t](sub + subject_pos, triplet_keys, triplet)
                obj_q = obj + self.refine["object"][t](obj + obj_pos_t, triplet_keys, triplet)
                rel_q = rel + self.refine["relation"][t](rel + rel_pos_t, triplet_keys, triplet)
        return tuple(torch.stack(outputs[name]) for name in ("subject", "object", "relation"))


class BoxMLP(nn.Module):
    """DETR's 3-layer box head: d -> d -> d -> 4, sigmoid (cx, cy, w, h) relative to the image."""

    def __init__(self, d_model: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(d_model, d_model), nn.Linear(d_model, d_model),
                                     nn.Linear(d_model, 4)])

    def forward(self, x):
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.relu(x)
        return x.sigmoid()


class IterativeSGTransformer(nn.Module):
    """Input projection + sine positions + encoder + iterative decoders + shared heads.

    ``forward(features (B, C, H, W), padding_mask (B, H, W))`` -> dict of per-layer outputs, each (T, B, Q, ...):
    ``subject_logits``/``object_logits`` (num_obj_classes, index 0 = no object), ``relation_logits``
    (num_rel_classes, index 0 = no relation), ``subject_boxes``/``object_boxes``/``relation_boxes`` (cx, cy, w, h
    in 0..1 of the unpadded image).
    """

    def __init__(self, in_channels: int, num_obj_classes: int, num_rel_classes: int, num_queries: int,
                 d_model: int = 256, nhead: int = 8, dim_feedforward: int = 2048, dropout: float = 0.1,
                 num_encoder_layers: int = 6, num_decoder_layers: int = 6):
        super().__init__()
        if d_model % 2 or d_model % nhead:
            raise ConfigError(f"MODEL.DETR.HIDDEN_DIM ({d_model}) must be even and divisible by MODEL.DETR.NHEADS "
                              f"({nhead})")
        self.input_proj = nn.Conv2d(in_channels, d_model, kernel_size=1)
        self.position = PositionEmbeddingSine(d_model // 2)
        layer = EncoderLayer(d_model, nhead, dim_feedforward, dropout)
        self.encoder = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_encoder_layers))
        self.decoder = IterativeDecoder(d_model, nhead, dim_feedforward, dropout, num_decoder_layers)
        self.subject_queries = nn.Embedding(num_queries, d_model)
        self.object_queries = nn.Embedding(num_queries, d_model)
        self.relation_queries = nn.Embedding(num_queries, d_model)
        self.object_classifier = nn.Linear(d_model, num_obj_classes)  # subjects and objects
        self.relation_classifier = nn.Linear(d_model, num_rel_classes)
        self.box_head = BoxMLP(d_model)  # subject, object and relation boxes
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # As the reference: Xavier for every matrix of the encoder, decoders and heads, then the conditioning and
        # refinement projections at zero.
        for module in (self.encoder, self.decoder, self.object_classifier, self.relation_classifier, self.box_head):
            for param in module.parameters():
                if param.dim() > 1:
                    nn.init.xavier_uniform_(param)
        self.decoder.zero_init()

    def encode(self, features: torch.Tensor, padding_mask: torch.Tensor):
        src = self.input_proj(features)
        pos = self.position(padding_mask).to(src.dtype).flatten(2).transpose(1, 2)  # (B, HW, d)
        src = src.flatten(2).transpose(1, 2)
        mask = padding_mask.flatten(1)
        for layer in self.encoder:
            src = layer(src, pos, mask)
        return src, pos, mask

    def forward(self, features: torch.Tensor, padding_mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        memory, pos, mask = self.encode(features, padding_mask)
        batch = features.shape[0]

        def queries(embedding):
            return embedding.weight.unsqueeze(0).expand(batch, -1, -1)

        sub, obj, rel = self.decoder(memory, pos, mask, queries(self.subject_queries),
                                     queries(self.object_queries), queries(self.relation_queries))
        return {"subject_logits": self.object_classifier(sub), "object_logits": self.object_classifier(obj),
                "relation_logits": self.relation_classifier(rel), "subject_boxes": self.box_head(sub),
                "object_boxes": self.box_head(obj), "relation_boxes": self.box_head(rel)}
