"""The SGB text block (PROTOCOL.md 2.4, reproduced exactly) plus our extra lines, and results.json / results.txt."""
from __future__ import annotations

import json
import math
import os
from typing import Optional, Sequence

RULE = "=" * 100 + "\n"
DETAILS_HEAD = "----------------------- Details ------------------------\n"
DETAILS_TAIL = "-" * 56 + "\n"


def _line(results: dict, key: str, label: str, kind: str) -> str:
    # each value keeps SGB's 'label @ %d: %.4f; ' cell; the label is right-aligned to 5 characters as SGB's are
    cells = "".join(f"{label:>5} @ {k}: {results[f'{key}@{k}']:.4f}; " for k in results["ks"])
    return f"SGG eval: {cells} for mode={results['mode']}, type={kind}.\n"


def _details(results: dict, key: str, names: Optional[Sequence[str]]) -> str:
    k = results["ks"][-1]
    values = results["per_predicate"][f"{key}@{k}"]
    labels = list(names[1:]) if names is not None else results["per_predicate"]["names"]
    return DETAILS_HEAD + "".join("({}:{:.4f}) ".format(n, v) for n, v in zip(labels, values)) + "\n" + DETAILS_TAIL


def format_results(results: dict, predicate_names: Optional[Sequence[str]] = None,
                   detection_map: Optional[float] = None, extras: bool = True, note: Optional[str] = None) -> str:
    """SGB's block: separator, optional detection line, R, ng-R, zR, ng-zR, mR + details, ng-mR + details,
    A (predcls/sgcls only), separator. Then, with ``extras``, F@K, ng-F@K and head/body/tail mR lines.
    A ``note`` (e.g. "Scored 40 of 1000 images ...") is printed as a header line right after the first separator."""
    text = "\n" + RULE
    if note:
        text += note.rstrip("\n") + "\n" + RULE
    if detection_map is not None:
        text += "Detection evaluation mAp=%.4f\n" % detection_map + RULE
    text += _line(results, "R", "R", "Recall(Main)")
    text += _line(results, "ngR", "ng-R", "No Graph Constraint Recall(Main)")
    text += _line(results, "zR", "zR", "Zero Shot Recall")
    text += _line(results, "ngzR", "ng-zR", "No Graph Constraint Zero Shot Recall")
    text += _line(results, "mR", "mR", "Mean Recall")
    text += _details(results, "R", predicate_names)
    text += _line(results, "ngmR", "ng-mR", "No Graph Constraint Mean Recall")
    text += _details(results, "ngR", predicate_names)
    if results["mode"] in ("predcls", "sgcls"):
        text += _line(results, "A", "A", "TopK Accuracy")
    text += RULE
    if extras:
        text += _line(results, "F", "F", "F (harmonic mean of R and mR)")
        text += _line(results, "ngF", "ng-F", "No Graph Constraint F")
        for group in ("head", "body", "tail"):
            if f"{group}_mR@{results['ks'][0]}" in results:
                size = len(results.get("predicate_groups", {}).get(group, []))
                text += _line(results, f"{group}_mR", "mR", f"Mean Recall over {size} {group} predicates")
        for group in ("head", "body", "tail"):
            if f"{group}_ngmR@{results['ks'][0]}" in results:
                size = len(results.get("predicate_groups", {}).get(group, []))
                text += _line(results, f"{group}_ngmR", "ng-mR",
                              f"No Graph Constraint Mean Recall over {size} {group} predicates")
        text += RULE
    return text


def _json_safe(value):
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _json_safe(value.item())
    return value


def results_paths(out_dir: str, stem: str = "results") -> dict:
    """``{"json": out_dir/<stem>.json, "txt": out_dir/<stem>.txt}``."""
    return {"json": os.path.join(out_dir, f"{stem}.json"), "txt": os.path.join(out_dir, f"{stem}.txt")}


def write_results(results: dict, text: str, out_dir: str, stem: str = "results") -> dict:
    """Write ``<stem>.json`` (every number incl. per predicate; NaN as null) and ``<stem>.txt`` (the text block)
    into ``out_dir``; return the two paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = results_paths(out_dir, stem)
    with open(paths["json"], "w") as f:
        json.dump(_json_safe(results), f, indent=1, allow_nan=False)
        f.write("\n")
    with open(paths["txt"], "w") as f:
        f.write(text)
    return paths
