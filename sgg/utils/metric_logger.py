"""Running statistics of training scalars (losses, times) and their one-line text form."""
from __future__ import annotations

from collections import defaultdict, deque
from typing import Dict

import torch


class SmoothedValue:
    """A scalar series: the median / mean over the last ``window`` values and the mean over everything seen."""

    def __init__(self, window: int = 20):
        self.values = deque(maxlen=window)
        self.total = 0.0
        self.count = 0

    def update(self, value: float) -> None:
        value = float(value)
        self.values.append(value)
        self.total += value
        self.count += 1

    @property
    def latest(self) -> float:
        return self.values[-1] if self.values else float("nan")

    @property
    def median(self) -> float:
        return float(torch.tensor(list(self.values)).median()) if self.values else float("nan")

    @property
    def avg(self) -> float:
        return sum(self.values) / len(self.values) if self.values else float("nan")

    @property
    def global_avg(self) -> float:
        return self.total / self.count if self.count else float("nan")


class MetricLogger:
    """Named :class:`SmoothedValue` series; ``str()`` gives ``name: median (global mean)`` for each one."""

    def __init__(self, delimiter: str = "  ", window: int = 20):
        self.meters: Dict[str, SmoothedValue] = defaultdict(lambda: SmoothedValue(window))
        self.delimiter = delimiter

    def update(self, **values) -> None:
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                value = value.item()
            self.meters[name].update(value)

    def __getattr__(self, name: str) -> SmoothedValue:
        meters = self.__dict__.get("meters")
        if meters is not None and name in meters:
            return meters[name]
        raise AttributeError(f"{type(self).__name__} has no meter {name!r}")

    def __contains__(self, name: str) -> bool:
        return name in self.meters

    def format(self, names) -> str:
        return self.delimiter.join(f"{n}: {self.meters[n].median:.4f} ({self.meters[n].global_avg:.4f})"
                                   for n in names if n in self.meters)

    def __str__(self) -> str:
        return self.format(sorted(self.meters))
