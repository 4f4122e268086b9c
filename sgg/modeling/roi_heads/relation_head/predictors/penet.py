"""PE-Net, the Prototype-based Embedding Network (Zheng et al., CVPR 2023; METHODS.md 4.1-4.3), and the trunk that
SPL (Zhang et al., ACM MM 2024; METHODS.md 4.5, branches in ``layers/spl.py``) builds on. Both register as
``PrototypeEmbeddingNetwork``, as in their reference code; ``MODEL.ROI_RELATION_HEAD.SPL.ENABLED`` picks SPL.

Entity embeddings:  s = W_s t_s + g_s * h(x_s),  g_s = sigmoid(Linear[W_s t_s ; h(x_s)]),  then a residual LN block
Predicate:          F(s, o) = ReLU(s + o) - (s - o)^2 ; PE-Net: r = F - g_p * u with u = h(MLP(union))
Prototypes:         c_p = project(W_p t_p) from the predicate word vectors (background included)
Logits:             exp(tau) * cos(project(r), c_p), tau learnt from log(1 / TEMPERATURE)
The losses (L_euc^e, L_sim^r, L_euc^r) are registered terms in ``losses/prototype.py`` reading ``aux.prototypes``.

Init (``PENET.INIT``): "reference" keeps PyTorch's default Linear init, and maskrcnn-benchmark's ``make_fc``
(kaiming-uniform, a = 1, zero bias) for the entity refiner, as the reference code; "xavier" is Xavier-normal with zero
bias everywhere (this project's earlier default). Dropout masks are drawn in the reference's order (per image in
the reference, batch-wide here), so a seeded one-image training step reproduces it
(tests/modeling/test_penet_golden.py).
"""
from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.config import get_protocol
from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import ROI_RELATION_PREDICTORS
from sgg.utils.word_vectors import obj_edge_vectors

from ..layers.batch_access import check_mode, class_counts, global_pair_indices
from ..layers.box_geometry import BoxPositionEncoder
from ..layers.embeddings import ObjectInputEmbedding, label_embedding
from ..layers.init import xavier_init
from ..layers.object_labels import classify_objects
from ..layers.prototypes import cosine_logits, initial_logit_scale
from ..layers.spl import SPLBranches, spl_enabled
from ..types import AuxiliaryOutputs, PredictorOutput, PrototypeOutputs, RelationBatch

logger = logging.getLogger(__name__)


INIT_SCHEMES = ("reference", "xavier")


def check_init(init: str) -> str:
    if init not in INIT_SCHEMES:
        raise ConfigError(f"MODEL.ROI_RELATION_HEAD.PENET.INIT must be one of {', '.join(INIT_SCHEMES)}, got {init!r}")
    return init


def linear(inp: int, out: int, init: str) -> nn.Linear:
    """nn.Linear with PyTorch's default init ("reference", as PE-Net's and SPL's code) or Xavier-normal ("xavier")."""
    layer = nn.Linear(inp, out)
    return xavier_init(layer) if check_init(init) == "xavier" else layer


def make_fc(inp: int, out: int, init: str) -> nn.Linear:
    """maskrcnn-benchmark's ``make_fc`` (kaiming-uniform with a = 1, zero bias), which the reference's entity
    refiner uses; Xavier-normal with ``init`` "xavier"."""
    layer = nn.Linear(inp, out)
    if check_init(init) == "xavier":
        return xavier_init(layer)
    nn.init.kaiming_uniform_(layer.weight, a=1)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(dims: Sequence[int], init: str = "reference") -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: List[nn.Module] = []
    for index, (inp, out) in enumerate(zip(dims[:-1], dims[1:])):
        if index:
            layers.append(nn.ReLU(inplace=True))
        layers.append(linear(inp, out, init))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """x <- LayerNorm(Dropout(ReLU(Linear x)) + x): PE-Net's stabiliser after each embedding."""

    def __init__(self, dim: int, dropout: float, init: str = "reference"):
        super().__init__()
        self.linear = linear(dim, dim, init)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.dropout(F.relu(self.linear(x))) + x)


class GatedFusion(nn.Module):
    """a + sigmoid(Linear[a ; b]) * b (sign=+1), or a - sigmoid(Linear[a ; b]) * b (sign=-1, the predicate gate)."""

    def __init__(self, dim: int, sign: float = 1.0, init: str = "reference"):
        super().__init__()
        self.gate = linear(2 * dim, dim, init)
        self.sign = sign

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + self.sign * torch.sigmoid(self.gate(torch.cat([a, b], dim=-1))) * b


class EntityRefiner(nn.Module):
    """PE-Net's ``refine_obj_labels``: Linear([roi ; label embedding ; box position]) -> hidden -> class logits.
    PredCls uses the GT labels (one-hot logits, no layers); SGCls/SGDet decode labels as the baselines do."""

    def __init__(self, mode: str, class_names: Sequence[str], roi_dim: int, glove_dir: str, embed_dim: int,
                 hidden_dim: int, nms_thresh: float, init: str = "reference"):
        super().__init__()
        self.mode = check_mode(mode)
        self.num_classes = len(class_names)
        self.nms_thresh = nms_thresh
        if mode != "predcls":
            self.label_input = ObjectInputEmbedding(class_names, glove_dir, embed_dim)
            self.position = BoxPositionEncoder()
            self.hidden = make_fc(roi_dim + embed_dim + self.position.out_dim, hidden_dim, init)
            self.classifier = make_fc(hidden_dim, self.num_classes, init)

    def classify(self, batch: RelationBatch) -> torch.Tensor:
        roi = batch.roi_features
        inputs = torch.cat([roi, self.label_input(batch), self.position(batch.boxes, roi.device)], dim=1)
        return self.classifier(self.hidden(inputs))

    def forward(self, batch: RelationBatch) -> Tuple[torch.Tensor, torch.Tensor]:
        classify = None if self.mode == "predcls" else lambda: self.classify(batch)
        return classify_objects(batch, self.num_classes, classify, self.training, self.nms_thresh,
                                "PrototypeEmbeddingNetwork")


def predicate_word_vectors(rel_classes: Sequence[str], glove_dir: str, dim: int) -> torch.Tensor:
    """PE-Net's ``rel_vectors``: multi-word predicates take the mean of their words; background stays random."""
    return obj_edge_vectors(rel_classes, glove_dir, dim, multiword="average")


class PrototypeEmbeddingTrunk(nn.Module):
    """Everything before the classifier: subject/object embeddings, F(s, o), the predicate prototypes."""

    def __init__(self, obj_classes: Sequence[str], rel_classes: Sequence[str], roi_dim: int, union_dim: int,
                 glove_dir: str, embed_dim: int, mlp_dim: int, dropout: float, union_gate: bool,
                 init: str = "reference"):
        super().__init__()
        d = mlp_dim
        self.mlp_dim = d
        self.entity_visual = linear(roi_dim, 2 * d, init)  # [x_s | x_o] per box
        self.entity_words = label_embedding(obj_classes, glove_dir, embed_dim)
        self.subject_semantic = mlp([embed_dim, d // 2, d], init)
        self.object_semantic = mlp([embed_dim, d // 2, d], init)
        self.vis2sem = nn.Sequential(linear(d, 2 * d, init), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                     linear(2 * d, d, init))
        self.subject_gate, self.object_gate = GatedFusion(d, init=init), GatedFusion(d, init=init)
        self.subject_block, self.object_block = ResidualBlock(d, dropout, init), ResidualBlock(d, dropout, init)
        self.relation_block = ResidualBlock(d, dropout, init)
        # PE-Net subtracts the gated union feature from F(s, o); SPL does not (its union enters the visual branch)
        self.union_mlp = mlp([union_dim, d, d], init) if union_gate else None
        self.union_gate = GatedFusion(d, sign=-1.0, init=init) if union_gate else None
        self.predicate_words = nn.Embedding(len(rel_classes), embed_dim)
        with torch.no_grad():
            self.predicate_words.weight.copy_(predicate_word_vectors(rel_classes, glove_dir, embed_dim))
        self.predicate_semantic = mlp([embed_dim, d // 2, d], init)
        self.dropout = nn.Dropout(dropout)
        self.project = mlp([d, d, 2 * d], init)  # shared by relations and prototypes: the 2D matching space

    def relation_representation(self, batch: RelationBatch, obj_preds: torch.Tensor) -> torch.Tensor:
        """(sum P, D) r before projection."""
        pairs = global_pair_indices(batch)
        visual = self.entity_visual(batch.roi_features).view(-1, 2, self.mlp_dim)
        words = self.entity_words(obj_preds.long())
        sub, obj = pairs[:, 0], pairs[:, 1]
        # both vis2sem calls before both blocks: the reference's order of dropout draws
        s_visual, o_visual = self.vis2sem(visual[sub, 0]), self.vis2sem(visual[obj, 1])
        s = self.subject_block(self.subject_gate(self.subject_semantic(words[sub]), s_visual))
        o = self.object_block(self.object_gate(self.object_semantic(words[obj]), o_visual))
        fused = F.relu(s + o) - (s - o) ** 2
        if self.union_gate is not None:
            if batch.union_features is None:
                raise ConfigError("PE-Net needs union features: set MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION True")
            fused = self.union_gate(fused, self.vis2sem(self.union_mlp(batch.union_features)))
        return self.relation_block(fused)

    def project_relations(self, r: torch.Tensor) -> torch.Tensor:
        return self.project(self.dropout(F.relu(r)))

    def prototypes(self) -> torch.Tensor:
        """(R, 2D) semantic prototypes c_p = project(ReLU(W_p t_p))."""
        return self.project(self.dropout(F.relu(self.predicate_semantic(self.predicate_words.weight))))


@ROI_RELATION_PREDICTORS.register("PrototypeEmbeddingNetwork")
class PrototypeEmbeddingNetwork(nn.Module):
    """PE-Net, or SPL when ``spl`` (an ``SPLBranches`` from ``layers/spl.py``) is given. ``rel_features``: the
    vector the final classifier reads; ``aux.prototypes``: the projected relations (B, 2D) and the prototypes (R, 2D)
    for the PE-Net losses; ``aux.spl``: the SPL branch tensors."""

    def __init__(self, refiner: EntityRefiner, trunk: PrototypeEmbeddingTrunk, temperature: float = 0.07,
                 spl: Optional[nn.Module] = None):
        super().__init__()
        self.refiner = refiner
        self.trunk = trunk
        self.logit_scale = nn.Parameter(initial_logit_scale(temperature))
        self.spl = spl

    @classmethod
    def from_config(cls, cfg, in_channels: int, statistics):
        head = cfg.MODEL.ROI_RELATION_HEAD
        penet = head.PENET
        obj_classes, rel_classes = class_counts(statistics)
        if head.NUM_CLASSES != len(rel_classes):
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.NUM_CLASSES is {head.NUM_CLASSES} but the dataset has "
                              f"{len(rel_classes)} predicate classes (with background)")
        if penet.MLP_DIM < 2 or penet.EMBED_DIM < 1:
            raise ConfigError("MODEL.ROI_RELATION_HEAD.PENET.MLP_DIM must be >= 2 and EMBED_DIM >= 1")
        use_spl = spl_enabled(cfg)
        init = check_init(penet.INIT)
        refiner = EntityRefiner(get_protocol(cfg), obj_classes, in_channels, cfg.GLOVE_DIR, penet.EMBED_DIM,
                                head.CONTEXT_HIDDEN_DIM, cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES, init)
        trunk = PrototypeEmbeddingTrunk(obj_classes, rel_classes, in_channels, in_channels, cfg.GLOVE_DIR,
                                        penet.EMBED_DIM, penet.MLP_DIM, penet.DROPOUT, union_gate=not use_spl,
                                        init=init)
        spl = SPLBranches.from_config(cfg, in_channels, len(rel_classes)) if use_spl else None
        return cls(refiner, trunk, penet.TEMPERATURE, spl)

    def forward(self, batch: RelationBatch) -> PredictorOutput:
        obj_logits, obj_preds = self.refiner(batch)
        r = self.trunk.relation_representation(batch, obj_preds)
        # dropout draws in each reference's order: PE-Net projects the relations first, SPL the prototypes
        if self.spl is None:
            embed = self.trunk.project_relations(r)
            prototypes = self.trunk.prototypes()
        else:
            prototypes = self.trunk.prototypes()
            embed = self.trunk.project_relations(r)
        semantic_logits = cosine_logits(embed, prototypes, self.logit_scale)
        aux = AuxiliaryOutputs(prototypes=PrototypeOutputs(rel_embed=embed, prototypes=prototypes))
        if self.spl is None:
            rel_logits, rel_features = semantic_logits, embed
        else:
            rel_logits, aux.spl = self.spl(r, semantic_logits, prototypes, batch.union_features)
            rel_features = r
        return PredictorOutput(obj_logits=obj_logits, obj_preds=obj_preds, rel_logits=rel_logits,
                               rel_features=rel_features, aux=aux)
