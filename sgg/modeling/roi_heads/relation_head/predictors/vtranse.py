"""The VTransE context of Causal TDE (SGB's ``VTransEFeature``, model_vtranse.py): no recurrence, one linear object
classifier and one linear edge feature per object. CausalAnalysisPredictor turns the edge features into a pair
representation ``head_s - tail_o`` (VTransE's translation, Zhang et al., CVPR 2017)."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.config import get_protocol

from ..layers.box_geometry import BoxPositionEncoder
from ..layers.context_predictor import ObjectContext
from ..layers.moving_average import update_moving_average
from ..layers.object_labels import ground_truth_objects, require_object_classifier
from ..types import RelationBatch


def make_fc(inp: int, out: int) -> nn.Linear:
    """maskrcnn-benchmark's ``make_fc``: kaiming-uniform weights (a = 1), zero bias."""
    layer = nn.Linear(inp, out)
    nn.init.kaiming_uniform_(layer.weight, a=1)
    nn.init.zeros_(layer.bias)
    return layer


class VTransEContext(ObjectContext):
    """Object input = [roi feature, label embedding, box position embedding] (as LSTMContext's).

    SGCls/SGDet: ``pred_layer`` classifies it and the pairs are scored with its argmax over all classes (background
    included, as SGB). Edge feature = ``relu(fc_layer([roi feature, position, word vector of the label]))``.
    PredCls uses the GT labels and builds no ``pred_layer`` (SGB classifies the GT boxes too and scores the pairs
    with that argmax; docs/causal_tde.md).

    ``effect_analysis``: SGB's untreated averages of the object input and of [roi feature, position];
    ``forward(ctx_average=True)`` at test feeds them to every object (SGCls/SGDet: the label part becomes the
    classifier's expected word vector of the averaged input)."""

    def __init__(self, mode: str, class_names: Sequence[str], in_channels: int, glove_dir: str, embed_dim: int,
                 hidden_dim: int, effect_analysis: bool = False):
        super().__init__(mode, class_names, glove_dir, embed_dim, hidden_dim)
        self.pos_embed = BoxPositionEncoder(batch_norm=True)
        obj_input_dim = in_channels + embed_dim + self.pos_embed.out_dim
        self.pred_layer = None if mode == "predcls" else make_fc(obj_input_dim, self.num_obj_classes)
        self.fc_layer = make_fc(obj_input_dim, hidden_dim)
        self.effect_analysis = effect_analysis
        if effect_analysis:  # SGB's buffer names
            self.register_buffer("untreated_obj_feat", torch.zeros(obj_input_dim))
            self.register_buffer("untreated_edg_feat", torch.zeros(in_channels + self.pos_embed.out_dim))

    @classmethod
    def from_config(cls, cfg, obj_classes: Sequence[str], in_channels: int, statistics,
                    effect_analysis: bool = False) -> "VTransEContext":
        head = cfg.MODEL.ROI_RELATION_HEAD
        return cls(get_protocol(cfg), obj_classes, in_channels, cfg.GLOVE_DIR, head.EMBED_DIM, head.CONTEXT_HIDDEN_DIM,
                   effect_analysis)

    def forward(self, batch: RelationBatch,
                ctx_average: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(obj_logits (sum N, C), obj_preds (sum N,), edge_ctx (sum N, hidden))."""
        untreated = ctx_average and self.effect_analysis and not self.training
        roi_features = batch.roi_features
        position = self.pos_embed(batch.boxes, roi_features.device)
        obj_input = torch.cat([roi_features, self.obj_input_embed(batch), position], dim=1)
        roi_and_position = torch.cat([roi_features, position], dim=1)
        if untreated:
            obj_input = self.untreated_obj_feat.view(1, -1).expand_as(obj_input)
            roi_and_position = self.untreated_edg_feat.view(1, -1).expand_as(roi_and_position)

        if batch.mode == "predcls":
            obj_logits, obj_preds = ground_truth_objects(batch, self.num_obj_classes)
            label_vectors = self.obj_embed2(obj_preds)
        else:
            require_object_classifier(self.pred_layer, batch, "VTransE context")
            obj_logits = self.pred_layer(obj_input)
            obj_preds = obj_logits.argmax(dim=1)
            if untreated:  # the expected word vector under the averaged input's class distribution
                label_vectors = F.softmax(obj_logits, dim=1) @ self.obj_embed2.weight
            else:
                label_vectors = self.obj_embed2(obj_preds)
        edge_ctx = F.relu(self.fc_layer(torch.cat([roi_and_position, label_vectors], dim=1)))
        if self.training and self.effect_analysis:
            update_moving_average(self.untreated_obj_feat, obj_input)
            update_moving_average(self.untreated_edg_feat, roi_and_position)
        return obj_logits, obj_preds, edge_ctx
