#!/usr/bin/env python
"""Collect relation results into one markdown table (the BENCHMARKS.md baseline rows).

    python benchmarks/relation_table.py output/qt       # reads <root>/<Predictor>/<protocol>/inference/*/results.json
    python benchmarks/relation_table.py output/qt MotifPredictor Motif_CCE_Ranker   # these runs, by protocol
"""
import glob
import json
import os
import sys

PROTOCOLS = ("predcls", "sgcls", "sgdet")
KS = (20, 50, 100)


def row(results: dict, prefix: str) -> str:
    return " / ".join(f"{results.get(f'{prefix}@{k}', float('nan')):.3f}" for k in KS)


def main(root: str, names=()) -> int:
    print("| predictor | protocol | R@20/50/100 | mR@20/50/100 | F@20/50/100 | ngR@20/50/100 |")
    print("|---|---|---|---|---|---|")
    if names:  # the given runs, grouped by protocol
        order = [(predictor, protocol) for protocol in PROTOCOLS for predictor in names]
    else:
        order = [(predictor, protocol) for predictor in sorted(os.listdir(root)) for protocol in PROTOCOLS]
    for predictor, protocol in order:
        for path in sorted(glob.glob(os.path.join(root, predictor, protocol, "inference", "*", "results.json"))):
            with open(path) as f:
                results = json.load(f)
            results = {k: (float("nan") if v is None else v) for k, v in results.items() if "@" in k}
            print(f"| {predictor} | {protocol} | {row(results, 'R')} | {row(results, 'mR')} | "
                  f"{row(results, 'F')} | {row(results, 'ngR')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "output/synthetic", sys.argv[2:]))
