"""The loss interface: every term takes the same inputs and returns a dict of named scalar tensors."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from sgg.config.sgg_config import ConfigError

from ..types import AuxiliaryOutputs, map_tensors


@dataclass
class RelationLossInputs:
    """What a predictor produced for a training batch, concatenated over images.

    ``aux`` carries the head-specific tensors a loss term may need (``PredictorOutput.aux``: ranker scores,
    prototypes, branch logits ...), as typed fields.
    """

    rel_logits: torch.Tensor  # (sum P, num_predicates)
    rel_labels: torch.Tensor  # (sum P,) 0 = background
    obj_logits: Optional[torch.Tensor] = None  # (sum N, num_classes)
    obj_labels: Optional[torch.Tensor] = None  # (sum N,)
    num_pairs_per_image: List[int] = field(default_factory=list)
    aux: AuxiliaryOutputs = field(default_factory=AuxiliaryOutputs)


def parse_loss_spec(spec: Sequence[str]) -> List[Tuple[str, float]]:
    """("RelationCE", "ObjectCE:0.5") -> [("RelationCE", 1.0), ("ObjectCE", 0.5)]."""
    parsed = []
    for item in spec:
        name, _, weight = str(item).partition(":")
        try:
            parsed.append((name.strip(), float(weight) if weight else 1.0))
        except ValueError:
            raise ConfigError(f"MODEL.ROI_RELATION_HEAD.LOSS: {item!r} is not NAME or NAME:WEIGHT") from None
    if not parsed:
        raise ConfigError("MODEL.ROI_RELATION_HEAD.LOSS is empty: name at least one loss, e.g. (\"RelationCE\",)")
    return parsed


class WeightedLosses(nn.Module):
    """Runs each configured term and scales its outputs by the term's weight."""

    def __init__(self, terms: List[Tuple[str, float, nn.Module]]):
        super().__init__()
        self.names = [name for name, _, _ in terms]
        self.weights = [weight for _, weight, _ in terms]
        self.terms = nn.ModuleList([module for _, _, module in terms])

    def forward(self, inputs: RelationLossInputs) -> Dict[str, torch.Tensor]:
        # Every term computes in float32 whatever DTYPE autocasts the model to: bfloat16 keeps 8 mantissa bits,
        # too few for log-sum-exps, prototype distances and the small differences the gradients come from.
        inputs = dataclasses.replace(inputs, rel_logits=_to_float32(inputs.rel_logits),
                                     obj_logits=_to_float32(inputs.obj_logits),
                                     aux=map_tensors(inputs.aux, _to_float32))
        losses: Dict[str, torch.Tensor] = {}
        with torch.autocast(inputs.rel_logits.device.type, enabled=False):
            for weight, term in zip(self.weights, self.terms):
                for key, value in term(inputs).items():
                    if key in losses:
                        raise ConfigError(f"MODEL.ROI_RELATION_HEAD.LOSS: two of its losses both produce the term "
                                          f"{key!r}; list each loss once")
                    losses[key] = value * weight
        return losses


def _to_float32(value):
    if torch.is_tensor(value) and value.is_floating_point() and value.dtype != torch.float32:
        return value.float()
    return value


def required_aux(inputs: RelationLossInputs, name: str, term: str, producers: str):
    """``inputs.aux.<name>``, or a ConfigError naming the loss term, the field and the heads that fill it."""
    value = getattr(inputs.aux, name)
    if value is None:
        raise ConfigError(f"loss term {term} needs the predictor output's aux.{name}, which the predictor did not "
                          f"produce (use it with {producers})")
    return value
