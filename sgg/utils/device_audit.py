"""Finds, at run time and on the CPU, the two mistakes a first CUDA run would find: tensors created without the
device of their inputs, and host syncs in a training step.

``DeviceAudit`` is a ``TorchFunctionMode``: every torch function and tensor method called inside ``with
DeviceAudit():`` passes through it, with the Python frame that called it. Two kinds of call are recorded when that
frame lies inside the package being audited (``sgg/`` by default; torch's and torchvision's own internals are not
this project's to fix):

- a factory (``torch.zeros``, ``torch.tensor``, ``torch.arange`` ...) without ``device=``: it lands on the default
  device (the CPU), so on CUDA the next op mixes devices or copies every step;
- a host sync: ``.item()``, ``.tolist()``, ``.cpu()``, ``.numpy()``, or a tensor used as a Python bool, int, float or
  index. On CUDA each waits for the GPU queue to drain.

On the CPU neither is an error, which is why they need an audit: the calls are recorded by the site that made them
(``path/to/file.py:function``), whatever device the tensors are on.
"""
from __future__ import annotations

import collections
import os
import sys
from typing import Dict, Optional

import torch
from torch.overrides import TorchFunctionMode

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACTORIES = frozenset({"zeros", "ones", "empty", "full", "arange", "tensor", "as_tensor", "randn", "rand", "randint",
                       "randperm", "eye", "linspace", "logspace", "scalar_tensor", "empty_strided"})
HOST_SYNCS = frozenset({"item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__"})


class DeviceAudit(TorchFunctionMode):
    """``with DeviceAudit() as audit: step()`` then ``audit.factories`` and ``audit.syncs``: Counters of
    ``"relative/path.py:function"`` -> number of calls."""

    def __init__(self, package_dir: str = PACKAGE_DIR):
        super().__init__()
        self.package_dir = os.path.abspath(package_dir) + os.sep
        self.root = os.path.dirname(os.path.abspath(package_dir)) + os.sep
        self.factories: Dict[str, int] = collections.Counter()
        self.syncs: Dict[str, int] = collections.Counter()

    def _site(self) -> Optional[str]:
        frame = sys._getframe(2)  # 0: _site, 1: __torch_function__, 2: the Python code that called torch
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(self.package_dir):
            return None
        return f"{filename[len(self.root):]}:{frame.f_code.co_name}"

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in HOST_SYNCS and args and isinstance(args[0], torch.Tensor):
            site = self._site()
            if site:
                self.syncs[site] += 1
        elif name in FACTORIES and kwargs.get("device") is None and not _inherits_device(name, args):
            site = self._site()
            if site:
                self.factories[site] += 1
        return func(*args, **kwargs)


def _inherits_device(name: str, args) -> bool:
    """``torch.as_tensor(t)`` / ``torch.tensor(t)`` of a tensor keeps its device; so does a factory's ``out=``."""
    return name in ("as_tensor", "tensor") and bool(args) and isinstance(args[0], torch.Tensor)
