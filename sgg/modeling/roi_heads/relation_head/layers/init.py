"""Weight initialisations the heads share (SGB's Xavier-normal and normal ``nn.Linear`` inits)."""
from __future__ import annotations

from torch import nn


def xavier_init(layer: nn.Linear) -> nn.Linear:
    nn.init.xavier_normal_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def normal_init(layer: nn.Linear, std: float) -> nn.Linear:
    nn.init.normal_(layer.weight, mean=0.0, std=std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer
