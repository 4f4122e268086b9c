"""Word-vector label embeddings: the table itself, and the object context's input embedding (GT label in PredCls,
the detector's class distribution otherwise)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sgg.utils.word_vectors import obj_edge_vectors

from ..types import RelationBatch
from .batch_access import detector_logits, gt_labels


def label_embedding(class_names: Sequence[str], glove_dir: str, embed_dim: int) -> nn.Embedding:
    """An ``Embedding(len(class_names), embed_dim)`` initialised with the names' GloVe vectors."""
    embedding = nn.Embedding(len(class_names), embed_dim)
    with torch.no_grad():
        embedding.weight.copy_(obj_edge_vectors(class_names, glove_dir, embed_dim))
    return embedding


class ObjectInputEmbedding(nn.Module):
    """The label embedding fed to the object context: the GT label's word vector in PredCls, otherwise the detector's
    class distribution times the embedding table (SGB: ``softmax(predict_logits) @ obj_embed1.weight``)."""

    def __init__(self, class_names: Sequence[str], glove_dir: str, embed_dim: int):
        super().__init__()
        self.embedding = label_embedding(class_names, glove_dir, embed_dim)

    def forward(self, batch: RelationBatch) -> torch.Tensor:
        if batch.mode == "predcls":
            return self.embedding(gt_labels(batch))
        return F.softmax(detector_logits(batch), dim=1) @ self.embedding.weight
