"""SPL's synergetic prototypes on the PE-Net trunk (Zhang et al., ACM MM 2024; METHODS.md 4.5).

    z0 = Linear(r)                                      base classifier; every logit vector is row-standardised
    z1 = std(z0) * sigmoid(w1) + std(z_sem) * (1 - sigmoid(w1))   semantic: PE-Net's word-vector prototypes
    z2 = ... z_vis = exp(tau2) cos(q_vis, P_vis)        visual: class-mean union features V (offline file)
         P_vis = proj(Dropout(ReLU(Linear V))),  q_vis = proj(Dropout(ReLU r)) + Linear(u - VAE_vis(u))
    z3 = ... z_con = exp(tau3) cos(q_con, P_con)        conceptual: predicate text embeddings T (offline file)
         P_con = Linear(VAE_con(T)),             q_con = Linear(Dropout(ReLU r))
    (every Dropout draws its own mask: the visual and conceptual queries do not share one)
    z  = z1 + z2 + z3 (enabled branches; z0 standardised alone when none is)

Fix of the reference code: w1..w3 are registered ``nn.Parameter``s (learnt, in the state dict and checkpoints); the
reference's ``nn.Parameter(...).cuda()`` made them unregistered random tensors drawn anew at every start.
"""
from __future__ import annotations

import logging
import os
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sgg.config.sgg_config import ConfigError
from sgg.utils.errors import DataError

from ..types import SPLOutputs, VAEOutputs
from .prototypes import cosine_logits, initial_logit_scale

logger = logging.getLogger(__name__)

HEAD = "MODEL.ROI_RELATION_HEAD"
STD_EPS = 1e-5


def standardize(logits: torch.Tensor) -> torch.Tensor:
    """Row-wise (z - mean_c z) / (std_c z + eps), std with Bessel's correction, as torch.std."""
    return (logits - logits.mean(dim=-1, keepdim=True)) / (logits.std(dim=-1, keepdim=True) + STD_EPS)


def spl_enabled(cfg) -> bool:
    """SPL.ENABLED "on" / "off", or "auto": on when a prototype file is named (the SPL README command names both)."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    value = str(head.SPL.ENABLED).lower()
    if value in ("on", "true"):
        return True
    if value in ("off", "false"):
        return False
    if value != "auto":
        raise ConfigError(f"{HEAD}.SPL.ENABLED must be 'on', 'off' or 'auto', got {head.SPL.ENABLED!r}")
    return bool(head.VIS_PRO_PATH) or bool(concept_path(cfg)[1])


def concept_path(cfg) -> Tuple[str, str]:
    """(config key, path) of the conceptual prototypes chosen by CON_PRO_TYPE."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    keys = {"CLIP": "CON_PRO_CLIP_PATH", "LLAMA": "CON_PRO_LLAMA_PATH", "FILE": "CON_PRO_PATH"}
    kind = str(head.CON_PRO_TYPE).upper()
    if kind not in keys:
        raise ConfigError(f"{HEAD}.CON_PRO_TYPE must be one of {', '.join(keys)}, got {head.CON_PRO_TYPE!r}")
    return f"{HEAD}.{keys[kind]}", head[keys[kind]]


def read_prototype_tensor(path: str, key: str) -> torch.Tensor:
    """A 2-D float tensor from a .pt (tensor, or dict with "prototypes") or .npy file; ``key`` names the source in
    errors (a config key or a tool option)."""
    if path.endswith(".npy"):
        data = torch.from_numpy(np.load(path))
    else:
        data = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(data, dict):
            if "prototypes" not in data:
                raise DataError(f"{key}: {path} holds a dict without a 'prototypes' entry (keys: {sorted(data)})")
            data = data["prototypes"]
    data = torch.as_tensor(data).float()
    if data.ndim != 2:
        raise DataError(f"{key}: {path} has shape {tuple(data.shape)}, expected (classes, features)")
    return data


def load_prototype_file(path: str, key: str, num_classes: int, dim: int, dim_key: str) -> torch.Tensor:
    """A (num_classes, dim) float tensor from a .pt (tensor, or dict with "prototypes") or .npy file."""
    if not path:
        raise ConfigError(f"{key} is empty: SPL needs this prototype file (docs/penet_spl.md says how to build it), "
                          f"or turn the branch off")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{key}: prototype file {path} does not exist (docs/penet_spl.md: how to build it)")
    data = read_prototype_tensor(path, key)
    if data.shape[0] != num_classes:
        raise DataError(f"{key}: {path} has {data.shape[0]} rows but there are {num_classes} predicate classes "
                        f"({HEAD}.NUM_CLASSES, background included): it was built for another dataset")
    if data.shape[1] != dim:
        raise DataError(f"{key}: {path} has {data.shape[1]}-d rows but {dim_key} is {dim}")
    if not torch.isfinite(data).all():
        raise DataError(f"{key}: {path} contains non-finite values")
    return data


REFERENCE_VAE_WIDTH = 4096
REFERENCE_VAE_STD = 0.02


def vae_init_std(input_dim: int, configured: float) -> float:
    """The std of the VAE's Linear weights: ``configured`` when positive, else 0.02 * sqrt(4096 / input_dim).

    The reference draws N(0, 0.02) for its 4096-d VAEs (gain ~0.02 sqrt(fan_in) = 1.3 per layer). The same std on a
    50- or 256-d VAE shrinks the signal ~10x per layer over eight layers: the reconstruction is a constant, the
    conceptual prototypes all coincide, and the VAE loss can only shrink the union features. Scaling by the width
    keeps the reference's per-layer gain (and is exactly 0.02 at 4096-d inputs)."""
    if configured > 0:
        return float(configured)
    return REFERENCE_VAE_STD * (REFERENCE_VAE_WIDTH / max(int(input_dim), 1)) ** 0.5


class VAE(nn.Module):
    """SPL's VAE: encoder D -> D -> D/2 -> 2L (LeakyReLU 0.1), heads mu and log sigma^2 (2L -> L); decoder
    L -> 2L -> D/2 -> D -> D. In eval mode the latent is mu (deterministic predictions; the reference samples).
    Linear weights N(0, ``init_std``) (``vae_init_std``), biases 0."""

    def __init__(self, input_dim: int, latent_dim: int, name: str = "VAE", init_std: float = REFERENCE_VAE_STD):
        super().__init__()
        if latent_dim < 1 or latent_dim > input_dim:
            raise ConfigError(f"{name}: the latent size {latent_dim} must be between 1 and the input size {input_dim}")
        if init_std <= 0:
            raise ConfigError(f"{name}: the weight init std must be positive, got {init_std}")
        half = max(input_dim // 2, 1)
        act = lambda: nn.LeakyReLU(0.1)  # noqa: E731
        self.encoder = nn.Sequential(nn.Linear(input_dim, input_dim), act(), nn.Linear(input_dim, half), act(),
                                     nn.Linear(half, 2 * latent_dim), act())
        self.mu = nn.Linear(2 * latent_dim, latent_dim)
        self.logvar = nn.Linear(2 * latent_dim, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 2 * latent_dim), act(), nn.Linear(2 * latent_dim, half),
                                     act(), nn.Linear(half, input_dim), act(), nn.Linear(input_dim, input_dim))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, init_std)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction, mu, logvar)."""
        hidden = self.encoder(x)
        mu, logvar = self.mu(hidden), self.logvar(hidden)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z), mu, logvar


class SPLBranches(nn.Module):
    """The three prototype branches and their learnable fusion with the base classifier (module doc)."""

    def __init__(self, num_classes: int, mlp_dim: int, dropout: float, temperature: float, fusion_init: float,
                 semantic: bool = True, visual_prototypes: Optional[torch.Tensor] = None,
                 vis_latent_dim: int = 0, concept_prototypes: Optional[torch.Tensor] = None,
                 con_latent_dim: int = 0, detach_vae_input: bool = False, vae_init: float = 0.0):
        super().__init__()
        self.detach_vae_input = detach_vae_input
        d, match_dim = mlp_dim, 2 * mlp_dim
        self.num_classes = num_classes
        self.base_classifier = nn.Linear(d, num_classes)
        self.dropout = nn.Dropout(dropout)
        self.semantic = semantic
        self.branches = [name for name, on in (("sem", semantic), ("vis", visual_prototypes is not None),
                                               ("con", concept_prototypes is not None)) if on]
        # the fix: registered parameters, one (1, R) fusion vector per branch
        self.fusion = nn.ParameterDict({name: nn.Parameter(torch.full((1, num_classes), float(fusion_init)))
                                        for name in self.branches})
        self.logit_scales = nn.ParameterDict({name: nn.Parameter(initial_logit_scale(temperature))
                                              for name in self.branches if name != "sem"})
        if visual_prototypes is not None:
            union_dim = visual_prototypes.shape[1]
            self.register_buffer("visual_prototypes", visual_prototypes.clone())
            self.vis_prototype_in = nn.Linear(union_dim, d)
            self.vis_project = nn.Linear(d, match_dim)  # shared by the prototypes and the relations
            self.vis_residual = nn.Linear(union_dim, match_dim)
            self.vis_vae = VAE(union_dim, vis_latent_dim, f"{HEAD}.VIS_VAE_LATENT_DIM / VIS_VAE_INPUT_DIM",
                               vae_init_std(union_dim, vae_init))
        if concept_prototypes is not None:
            self.register_buffer("concept_prototypes", concept_prototypes.clone())
            self.con_vae = VAE(concept_prototypes.shape[1], con_latent_dim,
                               f"{HEAD}.CON_VAE_LATENT_DIM / CON_VAE_INPUT_DIM",
                               vae_init_std(concept_prototypes.shape[1], vae_init))
            self.con_prototype_project = nn.Linear(concept_prototypes.shape[1], match_dim)
            self.con_project = nn.Linear(d, match_dim)

    @classmethod
    def from_config(cls, cfg, union_dim: int, num_classes: int) -> "SPLBranches":
        head = cfg.MODEL.ROI_RELATION_HEAD
        spl = head.SPL
        if head.STORE_UNION:
            raise ConfigError(f"{HEAD}.STORE_UNION True is the reference's way to collect union features; here "
                              f"run tools/compute_visual_prototypes.py and keep STORE_UNION False")
        visual = concept = None
        if spl.VISUAL_BRANCH:
            for key, value in (("VIS_PRO_DIM", head.VIS_PRO_DIM), ("VIS_VAE_INPUT_DIM", head.VIS_VAE_INPUT_DIM)):
                if value != union_dim:
                    raise ConfigError(f"{HEAD}.{key} is {value} but the union features are {union_dim}-d "
                                      f"(MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM)")
            if head.VIS_VAE_LATENT_DIM > head.VIS_VAE_INPUT_DIM:
                raise ConfigError(f"{HEAD}.VIS_VAE_LATENT_DIM ({head.VIS_VAE_LATENT_DIM}) is larger than "
                                  f"VIS_VAE_INPUT_DIM ({head.VIS_VAE_INPUT_DIM}): a VAE latent must not exceed its "
                                  f"input")
            visual = load_prototype_file(head.VIS_PRO_PATH, f"{HEAD}.VIS_PRO_PATH", num_classes, head.VIS_PRO_DIM,
                                         f"{HEAD}.VIS_PRO_DIM")
        if spl.CONCEPT_BRANCH:
            if head.CON_VAE_INPUT_DIM != head.CON_PRO_DIM:
                raise ConfigError(f"{HEAD}.CON_VAE_INPUT_DIM ({head.CON_VAE_INPUT_DIM}) must equal CON_PRO_DIM "
                                  f"({head.CON_PRO_DIM}): the text VAE reads the prototype file's rows")
            if head.CON_VAE_LATENT_DIM > head.CON_VAE_INPUT_DIM:
                raise ConfigError(f"{HEAD}.CON_VAE_LATENT_DIM ({head.CON_VAE_LATENT_DIM}) is larger than "
                                  f"CON_VAE_INPUT_DIM ({head.CON_VAE_INPUT_DIM}): a VAE latent must not exceed its "
                                  f"input")
            key, path = concept_path(cfg)
            concept = load_prototype_file(path, key, num_classes, head.CON_PRO_DIM, f"{HEAD}.CON_PRO_DIM")
        return cls(num_classes, head.PENET.MLP_DIM, head.PENET.DROPOUT, head.PENET.TEMPERATURE, spl.FUSION_INIT,
                   semantic=spl.SEMANTIC_BRANCH, visual_prototypes=visual, vis_latent_dim=head.VIS_VAE_LATENT_DIM,
                   concept_prototypes=concept, con_latent_dim=head.CON_VAE_LATENT_DIM,
                   detach_vae_input=spl.DETACH_VAE_INPUT, vae_init=spl.VAE_INIT_STD)

    def fuse(self, name: str, base: torch.Tensor, branch_logits: torch.Tensor) -> torch.Tensor:
        weight = torch.sigmoid(self.fusion[name])
        return base * weight + standardize(branch_logits) * (1.0 - weight)

    def forward(self, r: torch.Tensor, semantic_logits: torch.Tensor, semantic_prototypes: torch.Tensor,
                union_features: Optional[torch.Tensor]) -> Tuple[torch.Tensor, SPLOutputs]:
        base = standardize(self.base_classifier(r))
        outputs = SPLOutputs()
        fused = []
        if self.semantic:
            fused.append(self.fuse("sem", base, semantic_logits))
            outputs.sem_prototypes = semantic_prototypes
        if "vis" in self.branches:
            if union_features is None:
                raise ConfigError("the SPL visual branch needs union features: set "
                                  "MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION True")
            # the reference lets the VAE loss reach the union-feature extractor (it can shrink the features);
            # DETACH_VAE_INPUT feeds the VAE a detached copy instead
            vae_input = union_features.detach() if self.detach_vae_input else union_features
            # each branch draws its own dropout mask on r, as the reference (prototypes, relations, then the VAE)
            prototypes = self.vis_project(self.dropout(F.relu(self.vis_prototype_in(self.visual_prototypes))))
            relations = self.vis_project(self.dropout(F.relu(r)))
            recon, mu, logvar = self.vis_vae(vae_input)
            query = relations + self.vis_residual(union_features - recon)
            fused.append(self.fuse("vis", base, cosine_logits(query, prototypes, self.logit_scales["vis"])))
            outputs.vis_prototypes = prototypes
            outputs.vis_vae = VAEOutputs(input=vae_input, recon=recon, mu=mu, logvar=logvar)
        if "con" in self.branches:
            recon, mu, logvar = self.con_vae(self.concept_prototypes)
            prototypes = self.con_prototype_project(recon)
            query = self.con_project(self.dropout(F.relu(r)))
            fused.append(self.fuse("con", base, cosine_logits(query, prototypes, self.logit_scales["con"])))
            outputs.con_prototypes = prototypes
            outputs.con_vae = VAEOutputs(input=self.concept_prototypes, recon=recon, mu=mu, logvar=logvar)
        logits = torch.stack(fused).sum(0) if fused else base
        return logits, outputs
