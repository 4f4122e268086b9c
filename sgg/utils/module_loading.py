"""Imports that register components: every module of a registry's package (so a file dropped there registers
itself), and a user's own modules named on a tool's command line (``--import``), so a head written outside ``sgg/``
registers itself and its config keys before the config is read and the model is built."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import pkgutil
import sys
from types import ModuleType
from typing import Iterable, List

from sgg.config.sgg_config import ConfigError


def import_package_modules(package_name: str, package_path: Iterable[str]) -> List[str]:
    """Import every module of a package in sorted order (deterministic registration); names starting with ``_``
    are left out. Returns the imported names."""
    names = sorted(info.name for info in pkgutil.iter_modules(package_path) if not info.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{package_name}.{name}")
    return names


def add_import_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="import a module (dotted name on the Python path) or a .py file before the config is "
                             "read, e.g. a relation head registered outside sgg/; repeatable")
    return parser


def import_user_module(spec: str) -> ModuleType:
    """``spec`` is a .py file (imported under its file name, e.g. ``my_head``) or a dotted module name."""
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        return _import_file(spec)
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as err:
        if err.name and (spec == err.name or spec.startswith(err.name + ".")):  # not a missing import inside it
            raise ConfigError(f"--import {spec}: no module named {err.name!r} on the Python path; give a dotted "
                              f"module name or the path of a .py file") from None
        raise


def _import_file(spec: str) -> ModuleType:
    path = os.path.abspath(spec)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--import {spec}: no such file")
    name = os.path.splitext(os.path.basename(path))[0]
    loaded = sys.modules.get(name)
    if loaded is not None:
        if os.path.abspath(getattr(loaded, "__file__", None) or "") == path:
            return loaded
        raise ConfigError(f"--import {spec}: a module named {name!r} is already imported (from "
                          f"{getattr(loaded, '__file__', None) or 'a built-in'}); rename the file")
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # by name, as a normal import: pickling its classes finds them
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_user_modules(specs: Iterable[str]) -> List[ModuleType]:
    return [import_user_module(spec) for spec in specs]
