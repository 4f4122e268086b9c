"""Name -> class/function registries: components register with a decorator; configs name them."""
from __future__ import annotations

import difflib
from typing import Callable, Dict, Iterator, Optional

from sgg.config.sgg_config import ConfigError


class Registry:
    """``@REGISTRY.register()`` (under the object's own name) or ``@REGISTRY.register("Name")``."""

    def __init__(self, name: str, config_key: str = ""):
        self.name = name
        self.config_key = config_key
        self._entries: Dict[str, Callable] = {}

    def register(self, name: Optional[str] = None):
        def decorator(obj):
            key = name or obj.__name__
            if key in self._entries:
                raise KeyError(f"{self.name} registry: {key!r} is already registered")
            self._entries[key] = obj
            return obj

        return decorator

    def get(self, name: str) -> Callable:
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            where = f" (config key {self.config_key})" if self.config_key else ""
            raise ConfigError(f"unknown {self.name} {name!r}{where}.{hint} "
                              f"Registered: {', '.join(sorted(self._entries))}")
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __repr__(self) -> str:
        return f"Registry({self.name}: {', '.join(sorted(self._entries))})"
