"""PE-Net's prototype losses (METHODS.md 4.2) and SPL's VAE and prototype-separation losses (4.5).

Each is a registered LOSS term that reads what the PrototypeEmbeddingNetwork predictor puts in ``aux.prototypes`` /
``aux.spl``; a term whose tensors are absent (e.g. an SPL term with every branch it reads off) stops with an error
naming the term and the field.

* ``PENetEuclidean`` (loss_dis, L_euc^e): g_i = ||r - c_i||^2; mean over pairs of max(0, g_y - mean of the k1
  smallest g_i over i != y + gamma1).
* ``PENetPrototypeL21`` (loss_l21, L_sim^r): S = C_hat C_hat_detached^T; ||S||_{2,1} / R^2 = sum_i ||S_i||_2 / R^2.
* ``PENetPrototypeDistance`` (loss_proto_dist, L_euc^r): d_ij = ||c_i - c_j.detach()||^2; mean over i of
  max(0, gamma2 - min_{j != i} d_ij) (the self distance is excluded explicitly).
* ``SPLVAE`` (loss_vis_vae, loss_con_vae): mean ||x - x_hat||_2 + mean KL(q(z|x) || N(0, I)) per enabled VAE.
* ``SPLPrototypeSimilarity`` (loss_sem_simi, loss_vis_simi, loss_con_simi): mean off-diagonal cosine similarity of
  each branch's prototypes (one side detached), (sum S - tr S) / (R - 1)^2 as the reference divides.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.modeling.registry import RELATION_LOSSES

from .base import RelationLossInputs, required_aux


PRODUCERS = "PrototypeEmbeddingNetwork; SPL terms need the SPL branch switched on"


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, D) x (M, D) -> (N, M) ||a_i - b_j||^2 by expansion (no (N, M, D) tensor; gradient-safe at 0)."""
    return (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1)[None, :] - 2.0 * a @ b.t()).clamp_min(0.0)


def euclidean_prototype_loss(embed: torch.Tensor, prototypes: torch.Tensor, labels: torch.Tensor, topk: int,
                             margin: float) -> torch.Tensor:
    if embed.shape[0] == 0:
        return embed.sum() * 0.0
    distances = squared_distances(embed, prototypes)  # (B, R)
    positive = distances.gather(1, labels.long()[:, None]).squeeze(1)
    negatives = distances.scatter(1, labels.long()[:, None], float("inf"))
    k = min(int(topk), prototypes.shape[0] - 1)
    nearest = negatives.topk(k, dim=1, largest=False).values.mean(dim=1)
    return F.relu(positive - nearest + margin).mean()


def l21_similarity_loss(prototypes: torch.Tensor) -> torch.Tensor:
    normed = F.normalize(prototypes, dim=-1)
    similarity = normed @ normed.detach().t()
    return similarity.norm(dim=1).sum() / prototypes.shape[0] ** 2


def prototype_distance_loss(prototypes: torch.Tensor, margin: float) -> torch.Tensor:
    distances = squared_distances(prototypes, prototypes.detach())
    eye = torch.eye(prototypes.shape[0], dtype=torch.bool, device=prototypes.device)
    nearest = distances.masked_fill(eye, float("inf")).min(dim=1).values
    return F.relu(margin - nearest).mean()


def vae_loss(x: torch.Tensor, recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    if x.shape[0] == 0:
        return recon.sum() * 0.0
    reconstruction = (x - recon).norm(dim=1).mean()
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
    return reconstruction + kl


def off_diagonal_similarity_loss(prototypes: torch.Tensor) -> torch.Tensor:
    normed = F.normalize(prototypes, dim=-1)
    similarity = normed @ normed.detach().t()
    num = prototypes.shape[0]
    return (similarity.sum() - similarity.diagonal().sum()) / max(num - 1, 1) ** 2


@RELATION_LOSSES.register("PENetEuclidean")
class PENetEuclidean(nn.Module):
    def __init__(self, topk: int = 10, margin: float = 1.0):
        super().__init__()
        if topk < 1:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.PENET.EUC_TOPK must be >= 1, got {topk}")
        self.topk, self.margin = topk, margin

    @classmethod
    def from_config(cls, cfg, statistics=None):
        penet = cfg.MODEL.ROI_RELATION_HEAD.PENET
        return cls(penet.EUC_TOPK, penet.EUC_MARGIN)

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        outputs = required_aux(inputs, "prototypes", "PENetEuclidean", PRODUCERS)
        embed, prototypes = outputs.rel_embed, outputs.prototypes
        return {"loss_dis": euclidean_prototype_loss(embed, prototypes, inputs.rel_labels, self.topk, self.margin)}


@RELATION_LOSSES.register("PENetPrototypeL21")
class PENetPrototypeL21(nn.Module):
    @classmethod
    def from_config(cls, cfg, statistics=None):
        return cls()

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        return {"loss_l21": l21_similarity_loss(required_aux(inputs, "prototypes", "PENetPrototypeL21",
                                                             PRODUCERS).prototypes)}


@RELATION_LOSSES.register("PENetPrototypeDistance")
class PENetPrototypeDistance(nn.Module):
    def __init__(self, margin: float = 7.0):
        super().__init__()
        self.margin = margin

    @classmethod
    def from_config(cls, cfg, statistics=None):
        return cls(cfg.MODEL.ROI_RELATION_HEAD.PENET.PROTO_MARGIN)

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        prototypes = required_aux(inputs, "prototypes", "PENetPrototypeDistance", PRODUCERS).prototypes
        return {"loss_proto_dist": prototype_distance_loss(prototypes, self.margin)}


@RELATION_LOSSES.register("SPLVAE")
class SPLVAE(nn.Module):
    """Both VAE losses of the branches that are on (at least one must be)."""

    @classmethod
    def from_config(cls, cfg, statistics=None):
        return cls()

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        vaes = required_aux(inputs, "spl", "SPLVAE", PRODUCERS).vaes()
        if not vaes:
            raise ConfigError("loss term SPLVAE needs the predictor output's aux.spl.vis_vae or aux.spl.con_vae, which "
                              "the predictor did not produce (switch SPL's visual or conceptual branch on)")
        return {f"loss_{branch}_vae": vae_loss(vae.input, vae.recon, vae.mu, vae.logvar)
                for branch, vae in vaes.items()}


@RELATION_LOSSES.register("SPLPrototypeSimilarity")
class SPLPrototypeSimilarity(nn.Module):
    """The separation term of every prototype set the predictor produced (at least one)."""

    @classmethod
    def from_config(cls, cfg, statistics=None):
        return cls()

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        prototype_sets = required_aux(inputs, "spl", "SPLPrototypeSimilarity", PRODUCERS).prototype_sets()
        if not prototype_sets:
            raise ConfigError("loss term SPLPrototypeSimilarity needs at least one of the predictor output's "
                              "aux.spl.sem_prototypes / vis_prototypes / con_prototypes (switch an SPL branch on)")
        return {f"loss_{branch}_simi": off_diagonal_similarity_loss(prototypes)
                for branch, prototypes in prototype_sets.items()}
