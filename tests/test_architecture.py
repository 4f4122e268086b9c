"""The house rules of the import graph, read from the source with ``ast`` (nothing is imported):

* no import cycle between modules of ``sgg`` (imports inside functions count: they only hide a cycle);
* no import of an ``sgg`` module inside a function (function-level imports are for optional dependencies);
* ``sgg.modeling`` imports neither ``sgg.data`` nor ``sgg.engine``;
* ``sgg.engine`` imports no predictor module;
* ``sgg.benchmarking`` (runs the tools as subprocesses) imports neither ``sgg.engine`` nor ``sgg.modeling``.

An accepted breach would be listed in ``KNOWN``; the relation-head refactor (issue 26) emptied it. The test fails
on a new breach and on a listed one that is gone (then delete its line), so the list only shrinks.
"""
from __future__ import annotations

import ast
import os
from typing import Dict, List, Set, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (rule, module, target) as the test reports them; issue 26 emptied this list: a new entry needs a reason here.
KNOWN: Set[Tuple[str, str, str]] = set()


def module_files(root: str) -> Dict[str, str]:
    """``{"sgg.a.b": path}`` for every module and package (``__init__``) under ``root/sgg``."""
    modules = {}
    for folder, _, files in os.walk(os.path.join(root, "sgg")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                modules[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return modules


def import_targets(module: str, is_package: bool, node: ast.AST, modules: Dict[str, str]) -> List[str]:
    """The ``sgg`` modules an import statement loads: ``from pkg import name`` is ``pkg.name`` when that is a
    module, else ``pkg``; relative imports are resolved against ``module``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    base = node.module or ""
    if node.level:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[:len(parts) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
    if base not in modules:
        return []
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]


def read_graph(root: str) -> Tuple[Dict[str, Set[str]], Set[Tuple[str, str]]]:
    """All import edges between ``sgg`` modules, and the (module, target) pairs imported inside a function."""
    modules = module_files(root)
    edges: Dict[str, Set[str]] = {module: set() for module in modules}
    late: Set[Tuple[str, str]] = set()
    for module, path in modules.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        is_package = path.endswith("__init__.py")
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges[module].update(t for t in import_targets(module, is_package, node, modules) if t != module)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        late.update((module, t) for t in import_targets(module, is_package, inner, modules)
                                    if t != module)
    return edges, late


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def breaches(root: str) -> Set[Tuple[str, str, str]]:
    edges, late = read_graph(root)
    found = set()
    for component in cycles(edges):
        members = set(component)
        found.update(("cycle", a, b) for a in component for b in edges[a] if b in members and a < b)
    for module, targets in edges.items():
        for target in targets:
            if module.startswith("sgg.modeling.") and target.split(".")[:2] in (["sgg", "data"], ["sgg", "engine"]):
                found.add((f"modeling imports {target.split('.')[1]}", module, target))
            if module.startswith("sgg.engine.") and ".relation_head.predictors" in target:
                found.add(("engine imports a predictor", module, target))
            if module.startswith("sgg.benchmarking") and target.split(".")[1] in ("engine", "modeling"):
                found.add((f"benchmarking imports {target.split('.')[1]}", module, target))
    found.update(("function-level import", module, target) for module, target in late)
    return found


def test_import_graph_keeps_the_house_rules():
    found = breaches(REPO)
    new = sorted(found - KNOWN)
    gone = sorted(KNOWN - found)
    assert not new, "import rules broken (tests/test_architecture.py says which and why):\n" + "\n".join(map(str, new))
    assert not gone, "no longer broken, delete from KNOWN in tests/test_architecture.py:\n" + "\n".join(map(str, gone))


def test_the_checker_sees_a_planted_cycle_and_a_planted_late_import(tmp_path):
    package = tmp_path / "sgg"
    (package / "modeling").mkdir(parents=True)
    (package / "engine").mkdir()
    (package / "data").mkdir()
    (package / "benchmarking").mkdir()
    for folder in (package, package / "modeling", package / "engine", package / "data", package / "benchmarking"):
        (folder / "__init__.py").write_text("")
    (package / "engine" / "a.py").write_text("from . import b\n")
    (package / "engine" / "b.py").write_text("def f():\n    from sgg.engine import a\n")
    (package / "modeling" / "head.py").write_text("from sgg.data import loader\n")
    (package / "data" / "loader.py").write_text("import os\n")
    (package / "benchmarking" / "runner.py").write_text("from sgg.modeling import head\n")
    assert breaches(str(tmp_path)) == {
        ("cycle", "sgg.engine.a", "sgg.engine.b"),
        ("function-level import", "sgg.engine.b", "sgg.engine.a"),
        ("modeling imports data", "sgg.modeling.head", "sgg.data.loader"),
        ("benchmarking imports modeling", "sgg.benchmarking.runner", "sgg.modeling.head"),
    }


def test_tools_and_benchmarks_import_the_installed_package():
    """Scripts run against the installed ``sgg`` (pip install -e .), not a path they put in front of it; only the
    side-by-side scripts add the user's SGB copy to the path."""
    offenders = []
    for folder in ("tools", "benchmarks"):
        for name in sorted(os.listdir(os.path.join(REPO, folder))):
            if not name.endswith(".py"):
                continue
            with open(os.path.join(REPO, folder, name)) as f:
                for line in f:
                    if "sys.path.insert" in line and "sgb" not in line.lower():
                        offenders.append(f"{folder}/{name}")
    assert offenders == []
