"""Causal TDE's untreated moving averages (SGB's ``moving_average``), kept by its context layers and predictor."""
from __future__ import annotations

import torch

UNTREATED_AVERAGE_RATIO = 0.0005  # SGB's average_ratio of the Causal TDE moving averages


@torch.no_grad()
def update_moving_average(average: torch.Tensor, rows: torch.Tensor, ratio: float = UNTREATED_AVERAGE_RATIO) -> None:
    """In place: ``average <- (1 - ratio) * average + ratio * mean(rows)`` (SGB's ``moving_average``, Causal TDE's
    untreated features). A batch without rows leaves the average as it is (SGB would write NaN)."""
    if rows.shape[0] == 0:
        return
    average.mul_(1.0 - ratio).add_(rows.detach().float().mean(dim=0).view(-1).to(average.dtype), alpha=ratio)
