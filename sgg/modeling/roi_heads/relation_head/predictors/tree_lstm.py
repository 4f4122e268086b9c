"""VCTree's TreeLSTMs (SGB's ``utils_treelstm.py``) on the binary trees of vctree_tree.py.

SGB walks each tree recursively, one node per step. Here every node of a level of the whole batch (all nodes of one
height going up, of one depth going down) is one step: a node only reads its children's (up) or its parent's (down)
state, so the result is the same. Names of the layers are SGB's, so its weights map one to one.

* ``UpwardTreeLSTM`` (SGB ``BiTreeLSTM_Foreward``, leaves to root): gates i, o, f_left, f_right, u, r from the node's
  input and its two children's hidden states; c = i*u + f_l*c_left + f_r*c_right, h = o*tanh(c), and the highway
  output r*h + (1 - r)*px(x).
* ``DownwardTreeLSTM`` (SGB ``BiTreeLSTM_Backward``, root to leaves): gates i, o, f, u, r from the input and the
  parent's state.
* ``BiTreeLSTM`` (SGB ``MultiLayer_BTreeLSTM``): layers of [upward; downward], each direction half the width.
* ``TreeLSTMDecoder`` (SGB ``DecoderTreeLSTM``): a downward TreeLSTM whose input is the node's features and the word
  embedding of its parent's label (``start`` at the root); each node's class logits come from ``out``. At test the
  label passed down is the argmax over the foreground classes; in training it is sampled from the foreground softmax
  (SGB's choice; the committed prediction stays the argmax).

Dropout (training only): one mask per image and per direction, on the hidden output, as SGB draws one per tree.
Absent children / the root's parent read a zero state (the extra row ``N`` of the state tensors).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.embeddings import label_embedding
from .vctree_tree import Forest


def _orthogonal_blocks(weight: torch.Tensor, rows: int) -> None:
    """SGB's block_orthogonal with blocks of ``rows`` rows and every column."""
    with torch.no_grad():
        for block in weight.split(rows):
            nn.init.orthogonal_(block)


def _or_zero_row(index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Indices with NO_NODE (-1) sent to the zero row ``num_nodes``."""
    return torch.where(index < 0, torch.full_like(index, num_nodes), index)


class UpwardTreeLSTM(nn.Module):
    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.px = nn.Linear(input_dim, hidden_dim)
        self.ioffux = nn.Linear(input_dim, 6 * hidden_dim)
        self.ioffuh_left = nn.Linear(hidden_dim, 6 * hidden_dim)
        self.ioffuh_right = nn.Linear(hidden_dim, 6 * hidden_dim)
        for layer in (self.px, self.ioffux, self.ioffuh_left, self.ioffuh_right):
            _orthogonal_blocks(layer.weight, hidden_dim)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():  # SGB's forget-gate bias 0.5 (f_left, f_right)
            self.ioffuh_left.bias[2 * hidden_dim:4 * hidden_dim].fill_(0.5)
            self.ioffuh_right.bias[2 * hidden_dim:4 * hidden_dim].fill_(0.5)

    def forward(self, forest: Forest, features: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        num_nodes = forest.num_nodes
        memory = features.new_zeros(num_nodes + 1, self.hidden_dim)
        hidden = features.new_zeros(num_nodes + 1, self.hidden_dim)
        left, right = _or_zero_row(forest.left, num_nodes), _or_zero_row(forest.right, num_nodes)
        for nodes in forest.upward:
            x = features[nodes]
            l, r = left[nodes], right[nodes]
            gates = self.ioffux(x) + self.ioffuh_left(hidden[l]) + self.ioffuh_right(hidden[r])
            i, o, f_left, f_right, u, highway = gates.chunk(6, dim=1)
            c = torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f_left) * memory[l] \
                + torch.sigmoid(f_right) * memory[r]
            h = torch.sigmoid(o) * torch.tanh(c)
            gate = torch.sigmoid(highway)
            h = gate * h + (1 - gate) * self.px(x)
            if mask is not None:
                h = h * mask[nodes]
            memory = memory.index_copy(0, nodes, c.to(memory.dtype))
            hidden = hidden.index_copy(0, nodes, h.to(hidden.dtype))
        return hidden[:num_nodes]


class DownwardTreeLSTM(nn.Module):
    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.px = nn.Linear(input_dim, hidden_dim)
        self.iofux = nn.Linear(input_dim, 5 * hidden_dim)
        self.iofuh = nn.Linear(hidden_dim, 5 * hidden_dim)
        for layer in (self.px, self.iofux, self.iofuh):
            _orthogonal_blocks(layer.weight, hidden_dim)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():  # SGB's forget-gate bias 1
            self.iofuh.bias[2 * hidden_dim:3 * hidden_dim].fill_(1.0)

    def cell(self, x: torch.Tensor, parent_memory: torch.Tensor, parent_hidden: torch.Tensor,
             mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        i, o, f, u, highway = (self.iofux(x) + self.iofuh(parent_hidden)).chunk(5, dim=1)
        c = torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f) * parent_memory
        h = torch.sigmoid(o) * torch.tanh(c)
        gate = torch.sigmoid(highway)
        h = gate * h + (1 - gate) * self.px(x)
        if mask is not None:
            h = h * mask
        return c, h

    def forward(self, forest: Forest, features: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        num_nodes = forest.num_nodes
        memory = features.new_zeros(num_nodes + 1, self.hidden_dim)
        hidden = features.new_zeros(num_nodes + 1, self.hidden_dim)
        parent = _or_zero_row(forest.parent, num_nodes)
        for nodes in forest.downward:
            p = parent[nodes]
            c, h = self.cell(features[nodes], memory[p], hidden[p], mask[nodes] if mask is not None else None)
            memory = memory.index_copy(0, nodes, c.to(memory.dtype))
            hidden = hidden.index_copy(0, nodes, h.to(hidden.dtype))
        return hidden[:num_nodes]


def image_dropout_mask(forest: Forest, num_images: int, width: int, dropout: float,
                       reference: torch.Tensor) -> torch.Tensor:
    """(N, width): one inverted-dropout mask per image (SGB's get_dropout_mask per tree), repeated for its nodes."""
    keep = 1.0 - dropout
    per_image = torch.bernoulli(reference.new_full((num_images, width), keep, dtype=torch.float32)) / keep
    return per_image[forest.image]


class BiTreeLSTM(nn.Module):
    """Layers of [upward; downward] TreeLSTMs of half the width each; layer k > 0 reads layer k - 1's output."""

    def __init__(self, input_dim: int, output_dim: int, num_layers: int, dropout: float):
        super().__init__()
        if output_dim % 2:
            raise ValueError(f"the bidirectional TreeLSTM needs an even width (two halves), got {output_dim}")
        self.dropout = dropout
        self.upward = nn.ModuleList()
        self.downward = nn.ModuleList()
        for layer in range(num_layers):
            width = input_dim if layer == 0 else output_dim
            self.upward.append(UpwardTreeLSTM(width, output_dim // 2))
            self.downward.append(DownwardTreeLSTM(width, output_dim // 2))

    def forward(self, forest: Forest, features: torch.Tensor, num_images: int) -> torch.Tensor:
        for upward, downward in zip(self.upward, self.downward):
            masks = [image_dropout_mask(forest, num_images, lstm.hidden_dim, self.dropout, features)
                     if self.training and self.dropout > 0 else None for lstm in (upward, downward)]
            features = torch.cat([upward(forest, features, masks[0]), downward(forest, features, masks[1])], dim=1)
        return features


class TreeLSTMDecoder(nn.Module):
    """Object classification down the tree (SGB's ``DecoderTreeLSTM``, direction 'backward')."""

    def __init__(self, class_names: Sequence[str], glove_dir: str, embed_dim: int, input_dim: int, hidden_dim: int,
                 dropout: float):
        super().__init__()
        self.dropout = dropout
        # row 0: the start token, row c + 1: class c
        self.obj_embed = label_embedding(["start"] + list(class_names), glove_dir, embed_dim)
        self.out = nn.Linear(hidden_dim, len(class_names))
        self.decoderLSTM = DownwardTreeLSTM(input_dim + embed_dim, hidden_dim)

    def forward(self, forest: Forest, features: torch.Tensor, num_images: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(N, input_dim) -> class logits (N, C) and committed labels (N,) (argmax over the foreground)."""
        lstm = self.decoderLSTM
        num_nodes = forest.num_nodes
        mask = image_dropout_mask(forest, num_images, lstm.hidden_dim, self.dropout, features) \
            if self.training and self.dropout > 0 and num_nodes else None
        memory = features.new_zeros(num_nodes + 1, lstm.hidden_dim)
        hidden = features.new_zeros(num_nodes + 1, lstm.hidden_dim)
        logits = features.new_zeros(num_nodes, self.out.out_features)
        committed = torch.zeros(num_nodes, dtype=torch.long, device=features.device)
        passed_row = torch.zeros(num_nodes + 1, dtype=torch.long, device=features.device)  # row N: start token
        parent = _or_zero_row(forest.parent, num_nodes)
        for nodes in forest.downward:
            p = parent[nodes]
            x = torch.cat([features[nodes], self.obj_embed(passed_row[p])], dim=1)
            c, h = lstm.cell(x, memory[p], hidden[p], mask[nodes] if mask is not None else None)
            memory = memory.index_copy(0, nodes, c.to(memory.dtype))
            hidden = hidden.index_copy(0, nodes, h.to(hidden.dtype))
            node_logits = self.out(h)
            best = node_logits.detach()[:, 1:].argmax(dim=1) + 1
            if self.training:
                passed = torch.multinomial(F.softmax(node_logits.detach().float(), dim=1)[:, 1:], 1).squeeze(1) + 1
            else:
                passed = best
            logits = logits.index_copy(0, nodes, node_logits.to(logits.dtype))
            committed = committed.index_copy(0, nodes, best)
            passed_row = passed_row.index_copy(0, nodes, passed + 1)
        return logits, committed
