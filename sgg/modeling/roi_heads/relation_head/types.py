"""What flows into and out of a relation predictor. Every predictor takes a RelationBatch and returns a
PredictorOutput, so any predictor works with any sampler, feature extractor, loss and post-processor."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

from sgg.structures import BoxList


@dataclass
class RelationBatch:
    """One batch of images at the relation head.

    ``boxes[i]``: image i's boxes (xyxy, input-image coordinates, ``size = (w, h)``) with fields ``labels`` (GT labels
    in PredCls/SGCls; the matched GT label in SGDet training; absent at SGDet test), ``predict_logits`` (N, C)
    detector class logits (all protocols; in PredCls/SGCls those of the GT boxes) and, in SGDet, ``boxes_per_cls`` (N, C, 4).
    ``roi_features`` and ``union_features`` are concatenated over images in ``boxes`` / ``pair_idxs`` order.
    """

    mode: str
    boxes: List[BoxList]
    pair_idxs: List[torch.Tensor]  # per image (P_i, 2) indices into boxes[i]
    roi_features: torch.Tensor  # (sum N_i, D)
    union_features: Optional[torch.Tensor] = None  # (sum P_i, D_union), None without PREDICT_USE_VISION
    rel_labels: Optional[List[torch.Tensor]] = None  # training: per image (P_i,), 0 = background
    rel_binarys: Optional[List[torch.Tensor]] = None  # training: per image (N_i, N_i) symmetric 0/1
    features: Optional[Dict[str, torch.Tensor]] = None  # the backbone's feature maps (image-level context)
    image_sizes: Optional[List[Tuple[int, int]]] = None  # (h, w) of each image before padding
    union_spatial_features: Optional[torch.Tensor] = None  # (sum P_i, D_union) Causal SEPARATE_SPATIAL, else None

    @property
    def num_boxes(self) -> List[int]:
        return [len(b) for b in self.boxes]

    @property
    def num_pairs(self) -> List[int]:
        return [len(p) for p in self.pair_idxs]

    @property
    def training_labels(self) -> bool:
        return self.rel_labels is not None


class FixedFields:
    """Base of the output dataclasses: assigning a field that does not exist (a typo) raises AttributeError at once,
    as reading one does."""

    def __setattr__(self, name: str, value) -> None:
        if name not in self.__dataclass_fields__:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}; its fields are "
                                 f"{', '.join(self.__dataclass_fields__)}")
        object.__setattr__(self, name, value)


@dataclass
class GlobalContextOutputs(FixedFields):
    """LinkNet's global context encoding, for the "gce" loss term."""

    logits: torch.Tensor  # (B, C) multi-label class-presence logits of each image
    targets: Optional[torch.Tensor] = None  # (B, C) 0/1 presence; None when the boxes carry no labels (SGDet test)


@dataclass
class RankerOutputs(FixedFields):
    """The Ranker re-scorer's pair scores, for the "ranker" loss term."""

    logits: torch.Tensor  # (sum P,)
    scores: torch.Tensor  # (sum P,) sigmoid(logits)


@dataclass
class CausalBranchLogits(FixedFields):
    """Causal TDE's branch logits in training, for CausalAuxiliaryCE (each (sum P, R))."""

    ctx: torch.Tensor
    vis: Optional[torch.Tensor] = None  # None with FUSION_TYPE gate (SGB drops the visual and frequency losses)
    frq: Optional[torch.Tensor] = None


@dataclass
class PairScoreTargets(FixedFields):
    """VCTree's pair score logits and GT pair matrix, every image's N x N flattened and concatenated, for
    VCTreeBinary."""

    logits: torch.Tensor  # (sum N_i^2,)
    targets: torch.Tensor  # (sum N_i^2,) 1 where the two boxes carry a GT relation (either direction)
    image: torch.Tensor  # (sum N_i^2,) long, the image of each entry


@dataclass
class PrototypeOutputs(FixedFields):
    """PE-Net's matching space, for the PENet* loss terms."""

    rel_embed: torch.Tensor  # (sum P, 2D) projected relation representations
    prototypes: torch.Tensor  # (R, 2D) predicate prototypes


@dataclass
class VAEOutputs(FixedFields):
    """One SPL VAE pass: input x, reconstruction and the posterior's mean and log-variance."""

    input: torch.Tensor
    recon: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


@dataclass
class SPLOutputs(FixedFields):
    """SPL's branches (None where a branch is off), for SPLVAE and SPLPrototypeSimilarity."""

    sem_prototypes: Optional[torch.Tensor] = None  # (R, 2D) the semantic branch's (PE-Net's) prototypes
    vis_prototypes: Optional[torch.Tensor] = None  # (R, 2D)
    vis_vae: Optional[VAEOutputs] = None
    con_prototypes: Optional[torch.Tensor] = None  # (R, 2D)
    con_vae: Optional[VAEOutputs] = None

    def prototype_sets(self) -> Dict[str, torch.Tensor]:
        """Branch name ("sem", "vis", "con") -> prototypes, for the branches that are on."""
        sets = {"sem": self.sem_prototypes, "vis": self.vis_prototypes, "con": self.con_prototypes}
        return {branch: prototypes for branch, prototypes in sets.items() if prototypes is not None}

    def vaes(self) -> Dict[str, VAEOutputs]:
        """Branch name ("vis", "con") -> VAE pass, for the branches that are on."""
        return {branch: vae for branch, vae in (("vis", self.vis_vae), ("con", self.con_vae)) if vae is not None}


@dataclass
class AuxiliaryOutputs(FixedFields):
    """What a predictor (or re-scorer) fills for its own loss terms; every field is None unless that head fills it.
    A loss term reads its field and raises a ConfigError naming itself and the heads that fill it when it is None."""

    global_context: Optional[GlobalContextOutputs] = None  # LinkNetPredictor
    ranker: Optional[RankerOutputs] = None  # the Ranker re-scorer
    causal: Optional[CausalBranchLogits] = None  # CausalAnalysisPredictor (training)
    pair_scores: Optional[PairScoreTargets] = None  # VCTreePredictor, Causal with the VCTree context (training)
    prototypes: Optional[PrototypeOutputs] = None  # PrototypeEmbeddingNetwork
    spl: Optional[SPLOutputs] = None  # PrototypeEmbeddingNetwork with SPL on


def map_tensors(value, fn):
    """``value`` with ``fn`` applied to every leaf of its dataclass fields, recursively (a new object; None stays)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: map_tensors(getattr(value, f.name), fn)
                                             for f in dataclasses.fields(value) if f.init})
    return value if value is None else fn(value)


@dataclass
class PredictorOutput(FixedFields):
    """Refined object logits (sum N, C), the object labels the pairs were scored with (sum N,), relation logits
    (sum P, R), the relation representation the final classifier reads (``rel_features`` (sum P, D); the Ranker
     re-scorer reads it; None for a head without one, e.g. FREQ) and what the head's loss terms need (``aux``)."""

    obj_logits: torch.Tensor
    obj_preds: torch.Tensor
    rel_logits: torch.Tensor
    rel_features: Optional[torch.Tensor] = None
    aux: AuxiliaryOutputs = field(default_factory=AuxiliaryOutputs)
