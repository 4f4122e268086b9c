"""The context-then-edge predictors (Motif, Transformer, HCA and any new context model): a context module turns a
RelationBatch into object logits, the object labels the pairs are scored with and a per-box edge context; the shared
``RelationEdgeHead`` (with the frequency bias) turns the edge context into pair logits. Such a head is its context
module and its class attributes; everything else is here."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from ..types import PredictorOutput, RelationBatch
from .batch_access import check_mode, class_counts, global_pair_indices
from .edge_head import RelationEdgeHead, build_frequency_bias
from .embeddings import ObjectInputEmbedding, label_embedding


class ObjectContext(nn.Module):
    """Base of the context modules: the protocol, the class count, the edge context width, SGDet's later-NMS
    threshold (None for a context that never decodes SGDet labels with NMS: VTransE), and the two label embeddings
    every context reads (``obj_input_embed``: the object input, GT word vector in PredCls or the detector's class
    distribution otherwise; ``obj_embed2``: the label the pairs are scored with). VCTree's context keeps its own
    (its input embedding is SGB's ``obj_embed1``, a state-dict name).

    A subclass builds its own layers after ``super().__init__`` (parameters are created, and seeded weights drawn, in
    that order), implements ``forward(batch) -> (obj_logits (sum N, C), obj_preds (sum N,), edge_ctx (sum N,
    hidden_dim))`` and ``from_config(cfg, obj_classes, in_channels, statistics)``."""

    def __init__(self, mode: str, class_names: Sequence[str], glove_dir: str, embed_dim: int, hidden_dim: int,
                 later_nms_thresh: Optional[float] = None):
        super().__init__()
        self.mode = check_mode(mode)
        self.num_obj_classes = len(class_names)
        self.hidden_dim = hidden_dim
        self.later_nms_thresh = later_nms_thresh
        self.obj_input_embed = ObjectInputEmbedding(class_names, glove_dir, embed_dim)
        self.obj_embed2 = label_embedding(class_names, glove_dir, embed_dim)

    @classmethod
    def from_config(cls, cfg, obj_classes: Sequence[str], in_channels: int, statistics) -> "ObjectContext":
        raise NotImplementedError(f"{cls.__name__} must implement from_config(cfg, obj_classes, in_channels, "
                                  f"statistics)")

    def forward(self, batch: RelationBatch) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(batch)")


class ContextEdgePredictor(nn.Module):
    """``context`` (an ``ObjectContext`` subclass named by ``CONTEXT``) + ``RelationEdgeHead``:
    ``rel_compress(post_cat([head_s; tail_o]) * union) (+ ctx_compress([head_s; tail_o])) + freq_bias``.

    A subclass sets ``CONTEXT`` (the context class), ``CTX_COMPRESS`` (the Transformer's extra pair term) and, for
    BA-SGG, ``CLASSIFIER_MODULES``, and registers itself in ``ROI_RELATION_PREDICTORS``."""

    CONTEXT: type = ObjectContext
    CTX_COMPRESS = False

    def __init__(self, context: nn.Module, edge_head: RelationEdgeHead):
        super().__init__()
        self.context = context
        self.edge_head = edge_head

    @classmethod
    def from_config(cls, cfg, in_channels: int, statistics):
        head = cfg.MODEL.ROI_RELATION_HEAD
        obj_classes, rel_classes = class_counts(statistics)
        context = cls.CONTEXT.from_config(cfg, obj_classes, in_channels, statistics)
        edge_head = RelationEdgeHead(head.CONTEXT_HIDDEN_DIM, head.CONTEXT_POOLING_DIM, len(rel_classes),
                                     union_dim=in_channels, use_vision=head.PREDICT_USE_VISION,
                                     freq_bias=build_frequency_bias(head.PREDICT_USE_BIAS, statistics),
                                     ctx_compress=cls.CTX_COMPRESS)
        return cls(context, edge_head)

    def forward(self, batch: RelationBatch) -> PredictorOutput:
        obj_logits, obj_preds, edge_ctx = self.context(batch)
        rel_logits, rel_features = self.edge_head(edge_ctx, global_pair_indices(batch), obj_preds,
                                                  batch.union_features)
        return PredictorOutput(obj_logits=obj_logits, obj_preds=obj_preds, rel_logits=rel_logits,
                               rel_features=rel_features)
