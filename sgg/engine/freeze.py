"""Freezing parameters by name: ``SOLVER.FREEZE_PATTERNS`` and the API later stages use (e.g. the detector during
relation training)."""
from __future__ import annotations

import logging
import re
from typing import Iterable, List

from torch import nn

from sgg.config.sgg_config import ConfigError

logger = logging.getLogger(__name__)


def freeze_by_patterns(model: nn.Module, patterns: Iterable[str], key: str = "SOLVER.FREEZE_PATTERNS") -> List[str]:
    """Set ``requires_grad=False`` on every parameter whose name matches one of ``patterns`` at its start
    (``re.match``: ``"backbone"`` freezes the whole backbone, ``"roi_heads\\.box\\."`` the box head,
    ``".*\\.bias$"`` every bias). A pattern that matches nothing is an error, since it is almost always a typo.
    Returns the names of the frozen parameters."""
    patterns = [str(p) for p in patterns]
    if not patterns:
        return []
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as err:
            raise ConfigError(f"{key}: {pattern!r} is not a valid regular expression: {err}") from None
    names = [name for name, _ in model.named_parameters()]
    used = set()
    frozen = []
    for name, param in model.named_parameters():
        for index, regex in enumerate(compiled):
            if regex.match(name):
                param.requires_grad_(False)
                frozen.append(name)
                used.add(index)
                break
    unmatched = [p for i, p in enumerate(patterns) if i not in used]
    if unmatched:
        prefixes = sorted({n.split(".")[0] for n in names})
        raise ConfigError(f"{key}: pattern(s) {unmatched} match no parameter name (matched from the start of the "
                          f"name). Top-level modules: {', '.join(prefixes)}; e.g. {', '.join(names[:5])}")
    logger.info("Froze %d of %d parameter tensors matching %s", len(frozen), len(names), patterns)
    return frozen
