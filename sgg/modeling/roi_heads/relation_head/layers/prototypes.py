"""Prototype matching shared by PE-Net (predictors/penet.py) and SPL's branches (layers/spl.py): cosine logits
with a CLIP-style learnt temperature."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sgg.config.sgg_config import ConfigError


def cosine_logits(queries: torch.Tensor, prototypes: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """exp(logit_scale) * cos(query_i, prototype_p): (B, D) x (R, D) -> (B, R) (CLIP-style learnt temperature)."""
    # float32 under autocast too: cosines of near-parallel vectors differ in the third decimal, below bfloat16's
    # resolution, and the learnt scale (up to 1/0.1) multiplies the rounding error into the logits.
    with torch.autocast(queries.device.type, enabled=False):
        return logit_scale.float().exp() * F.normalize(queries.float(), dim=-1) @ F.normalize(prototypes.float(),
                                                                                               dim=-1).t()


def initial_logit_scale(temperature: float) -> torch.Tensor:
    if temperature <= 0:
        raise ConfigError(f"MODEL.ROI_RELATION_HEAD.PENET.TEMPERATURE must be > 0, got {temperature}")
    return torch.tensor(math.log(1.0 / temperature))
