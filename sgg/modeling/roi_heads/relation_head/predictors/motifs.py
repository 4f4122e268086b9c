"""MotifNet (Zellers et al., CVPR 2018) as SGB's MotifPredictor (PROTOCOL.md 4.5): objects of each image ordered by
box centre x, a BiLSTM object context, a highway-LSTM label decoder (SGCls/SGDet), a BiLSTM edge context, and the
shared edge head with the frequency bias."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_sequence

from sgg.config.config import get_protocol
from sgg.modeling.registry import ROI_RELATION_PREDICTORS

from ..layers.batch_access import gt_labels
from ..layers.box_geometry import BoxPositionEncoder
from ..layers.context_predictor import ContextEdgePredictor, ObjectContext
from ..layers.embeddings import label_embedding
from ..layers.init import xavier_init
from ..layers.moving_average import update_moving_average
from ..layers.object_labels import decode_object_labels, ground_truth_objects, require_object_classifier
from ..types import RelationBatch


def order_by_center_x(batch: RelationBatch) -> Optional[PackedSequence]:
    """The Motif object order as a packed sequence of global box indices: one sequence per non-empty image, boxes
    sorted by descending centre x (SGB sorts ``cx / (max cx + 1)`` high to low, so the sequence runs from the
    rightmost box to the leftmost), ties kept in input order. None when the batch has no box."""
    sequences, offset = [], 0
    device = batch.roi_features.device
    for boxes in batch.boxes:
        if len(boxes):
            xyxy = boxes.convert("xyxy").bbox.to(device)
            centre_x = (xyxy[:, 0] + xyxy[:, 2]) / 2
            order = torch.sort(centre_x, descending=True, stable=True).indices
            sequences.append(order + offset)
        offset += len(boxes)
    if not sequences:
        return None
    return pack_sequence(sequences, enforce_sorted=False)


def run_packed(rnn: nn.LSTM, features: torch.Tensor, order: PackedSequence) -> torch.Tensor:
    """Runs ``rnn`` over ``features`` (sum N, D) in the packed order and returns (sum N, H) in the input order.

    On the CPU the LSTM runs in float32 under autocast too: on a CPU without AVX-512 oneDNN cannot build a bfloat16
    LSTM for every shape ("could not create a primitive descriptor for the LSTM forward propagation primitive", seen
    in SGDet on an AVX2-only machine), and the LSTMs are a small part of the head's time. On CUDA autocast runs it
    in half precision."""
    packed = order._replace(data=features[order.data])
    if packed.data.device.type == "cpu":
        with torch.autocast("cpu", enabled=False):
            output, _ = rnn(packed._replace(data=packed.data.float()))
    else:
        output, _ = rnn(packed)
    unpacked = output.data.new_zeros(features.shape[0], output.data.shape[1])
    unpacked[order.data] = output.data
    return unpacked


class HighwayLSTMDecoder(nn.Module):
    """The label decoder of MotifNet (SGB's ``DecoderRNN``): an LSTM cell with a highway connection from its input and
    recurrent dropout (one mask per sequence), fed at each step with the object's context and the word embedding of
    the previous object's label (a ``start`` token first). Training uses teacher forcing with the GT labels
    (background labels of unmatched SGDet boxes are replaced by the current prediction); test decodes greedily.

    Unlike SGB (``assert l_batch == 1`` at test) every step runs on all images of the batch at once.
    """

    def __init__(self, class_names: Sequence[str], glove_dir: str, embed_dim: int, input_dim: int, hidden_dim: int,
                 dropout: float):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        # row 0: start token; row c + 1: class c
        self.label_embed = label_embedding(["start"] + list(class_names), glove_dir, embed_dim)
        # with a bias, as SGB's input_linearity (zero at the start): a converted SGB decoder needs it for the highway
        # input projection, which no other bias reaches
        self.input_proj = nn.Linear(input_dim + embed_dim, 6 * hidden_dim)
        self.state_proj = nn.Linear(hidden_dim, 5 * hidden_dim)
        self.out_obj = xavier_init(nn.Linear(hidden_dim, len(class_names)))
        with torch.no_grad():
            for block in self.input_proj.weight.split(hidden_dim):
                nn.init.orthogonal_(block)
            for block in self.state_proj.weight.split(hidden_dim):
                nn.init.orthogonal_(block)
            self.input_proj.bias.zero_()
            self.state_proj.bias.zero_()
            self.state_proj.bias[hidden_dim: 2 * hidden_dim].fill_(1.0)  # forget gate starts open

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before input_proj had a bias: a zero bias computes what they computed
        bias_key = prefix + "input_proj.bias"
        if prefix + "input_proj.weight" in state_dict and bias_key not in state_dict:
            state_dict[bias_key] = torch.zeros_like(self.input_proj.bias)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def step(self, inputs: torch.Tensor, state: Tuple[torch.Tensor, torch.Tensor],
             dropout_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        hidden, memory = state
        h = self.hidden_dim
        projected_input = self.input_proj(inputs)
        projected_state = self.state_proj(hidden)
        input_gate = torch.sigmoid(projected_input[:, 0:h] + projected_state[:, 0:h])
        forget_gate = torch.sigmoid(projected_input[:, h:2 * h] + projected_state[:, h:2 * h])
        candidate = torch.tanh(projected_input[:, 2 * h:3 * h] + projected_state[:, 2 * h:3 * h])
        output_gate = torch.sigmoid(projected_input[:, 3 * h:4 * h] + projected_state[:, 3 * h:4 * h])
        memory = input_gate * candidate + forget_gate * memory
        output = output_gate * torch.tanh(memory)
        highway_gate = torch.sigmoid(projected_input[:, 4 * h:5 * h] + projected_state[:, 4 * h:5 * h])
        output = highway_gate * output + (1 - highway_gate) * projected_input[:, 5 * h:6 * h]
        if dropout_mask is not None:
            output = output * dropout_mask
        return output, memory

    def forward(self, features: torch.Tensor, order: PackedSequence,
                labels: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """``features`` (sum N, input_dim) in input order; ``labels`` (sum N,) for teacher forcing or None.
        Returns object logits (sum N, C) and the committed labels (sum N,), both in input order."""
        packed_index = order.data
        inputs = features[packed_index]
        packed_labels = labels[packed_index] if labels is not None else None
        num_sequences = int(order.batch_sizes[0])
        hidden = features.new_zeros(num_sequences, self.hidden_dim)
        memory = features.new_zeros(num_sequences, self.hidden_dim)
        previous = torch.zeros(num_sequences, dtype=torch.long, device=features.device)  # start token
        dropout_mask = None
        if self.training and self.dropout > 0:
            keep = 1.0 - self.dropout
            dropout_mask = torch.bernoulli(features.new_full((num_sequences, self.hidden_dim), keep)) / keep

        logits_steps, label_steps, start = [], [], 0
        for size in order.batch_sizes.tolist():
            step_input = torch.cat([inputs[start:start + size], self.label_embed(previous[:size])], dim=1)
            mask = dropout_mask[:size] if dropout_mask is not None else None
            hidden_t, memory_t = self.step(step_input, (hidden[:size], memory[:size]), mask)
            # sequences are sorted by length, so the active ones are always the first `size`
            hidden = torch.cat([hidden_t, hidden[size:]], dim=0)
            memory = torch.cat([memory_t, memory[size:]], dim=0)
            logits = self.out_obj(hidden_t)
            predicted = logits.detach()[:, 1:].argmax(dim=1) + 1
            if packed_labels is not None:
                committed = packed_labels[start:start + size].clone()
                committed[committed == 0] = predicted[committed == 0]
            else:
                committed = predicted
            logits_steps.append(logits)
            label_steps.append(committed)
            previous = torch.cat([committed + 1, previous[size:]], dim=0)
            start += size

        obj_logits = features.new_zeros(features.shape[0], self.out_obj.out_features)
        obj_logits = obj_logits.index_copy(0, packed_index, torch.cat(logits_steps, dim=0))
        obj_labels = torch.zeros(features.shape[0], dtype=torch.long, device=features.device)
        obj_labels[packed_index] = torch.cat(label_steps, dim=0)
        return obj_logits, obj_labels


class LSTMContext(ObjectContext):
    """Object and edge context of MotifNet. Object input = [roi feature, label embedding, box position embedding].

    ``effect_analysis`` (Causal TDE, causal.py): keep SGB's untreated averages of the decoder input, the object input
    and the edge input [label embedding, roi feature] in buffers, updated in training; ``forward(ctx_average=True)``
    at test then feeds the averages in place of the decoder input and of the edge input's first part."""

    def __init__(self, mode: str, class_names: Sequence[str], in_channels: int, glove_dir: str, embed_dim: int,
                 hidden_dim: int, obj_layers: int, edge_layers: int, dropout: float, later_nms_thresh: float,
                 effect_analysis: bool = False):
        super().__init__(mode, class_names, glove_dir, embed_dim, hidden_dim, later_nms_thresh)
        self.pos_embed = BoxPositionEncoder(batch_norm=True)
        obj_input_dim = in_channels + embed_dim + self.pos_embed.out_dim
        self.obj_ctx_rnn = nn.LSTM(obj_input_dim, hidden_dim, num_layers=obj_layers, bidirectional=True,
                                   dropout=dropout if obj_layers > 1 else 0.0)
        self.lin_obj_h = xavier_init(nn.Linear(hidden_dim * 2, hidden_dim))
        # PredCls never classifies objects, so it builds no decoder (no parameters without gradients)
        self.decoder = None if mode == "predcls" else HighwayLSTMDecoder(
            class_names, glove_dir, embed_dim, obj_input_dim + hidden_dim, hidden_dim, dropout)
        self.edge_ctx_rnn = nn.LSTM(embed_dim + in_channels + hidden_dim, hidden_dim, num_layers=edge_layers,
                                    bidirectional=True, dropout=dropout if edge_layers > 1 else 0.0)
        self.lin_edge_h = xavier_init(nn.Linear(hidden_dim * 2, hidden_dim))
        self.effect_analysis = effect_analysis
        if effect_analysis:  # SGB's buffer names (they are in its checkpoints)
            self.register_buffer("untreated_dcd_feat", torch.zeros(obj_input_dim + hidden_dim))
            self.register_buffer("untreated_obj_feat", torch.zeros(obj_input_dim))
            self.register_buffer("untreated_edg_feat", torch.zeros(embed_dim + in_channels))

    @classmethod
    def from_config(cls, cfg, obj_classes: Sequence[str], in_channels: int, statistics,
                    effect_analysis: bool = False) -> "LSTMContext":
        head = cfg.MODEL.ROI_RELATION_HEAD
        return cls(get_protocol(cfg), obj_classes, in_channels, cfg.GLOVE_DIR, head.EMBED_DIM, head.CONTEXT_HIDDEN_DIM,
                   head.CONTEXT_OBJ_LAYER, head.CONTEXT_REL_LAYER, head.CONTEXT_DROPOUT_RATE,
                   cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES, effect_analysis)

    def forward(self, batch: RelationBatch,
                ctx_average: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(obj_logits (sum N, C), obj_preds (sum N,), edge_ctx (sum N, hidden)). ``ctx_average``: the
        counterfactual pass of Causal TDE (test only, needs ``effect_analysis``)."""
        untreated = ctx_average and self.effect_analysis and not self.training
        roi_features = batch.roi_features
        obj_input = torch.cat([roi_features, self.obj_input_embed(batch),
                               self.pos_embed(batch.boxes, roi_features.device)], dim=1)
        order = order_by_center_x(batch)
        if order is None:
            return (roi_features.new_zeros(0, self.num_obj_classes),
                    torch.zeros(0, dtype=torch.long, device=roi_features.device),
                    roi_features.new_zeros(0, self.hidden_dim))

        obj_ctx = self.lin_obj_h(run_packed(self.obj_ctx_rnn, obj_input, order))
        decoder_input = torch.cat([obj_input, obj_ctx], dim=1)
        if untreated:
            decoder_input = self.untreated_dcd_feat.view(1, -1).expand_as(decoder_input)
        if batch.mode == "predcls":
            obj_logits, obj_preds = ground_truth_objects(batch, self.num_obj_classes)
        else:
            require_object_classifier(self.decoder, batch, "MotifPredictor", "object decoder")
            labels = gt_labels(batch) if self.training else None
            obj_logits, obj_preds = self.decoder(decoder_input, order, labels)
            if batch.mode == "sgdet" and not self.training:
                obj_preds = decode_object_labels(obj_logits, batch, False, self.later_nms_thresh)
        label_and_roi = torch.cat([self.obj_embed2(obj_preds), roi_features], dim=1)
        if untreated:
            label_and_roi = self.untreated_edg_feat.view(1, -1).expand_as(label_and_roi)
        edge_ctx = self.lin_edge_h(run_packed(self.edge_ctx_rnn, torch.cat([label_and_roi, obj_ctx], dim=1), order))
        if self.training and self.effect_analysis:
            update_moving_average(self.untreated_dcd_feat, decoder_input)
            update_moving_average(self.untreated_obj_feat, obj_input)
            update_moving_average(self.untreated_edg_feat, label_and_roi)
        return obj_logits, obj_preds, edge_ctx


@ROI_RELATION_PREDICTORS.register("MotifPredictor")
class MotifPredictor(ContextEdgePredictor):
    """LSTMContext + the shared edge head (``rel_compress(post_cat([head_s; tail_o]) * union) + freq_bias``)."""

    CONTEXT = LSTMContext
    # BA-SGG's clean classifier (ba_sgg.py): the modules the reference copies for Motifs
    CLASSIFIER_MODULES = ("edge_head.post_cat", "edge_head.rel_compress", "edge_head.freq_bias")
