#!/usr/bin/env python
"""Figures of relation results (needs matplotlib: ``pip install -e .[plots]``):

    python tools/plot_results.py distribution --results <run>/inference/<dataset>/results.json --log --output d.png
    python tools/plot_results.py distribution --config-file <config>.yaml --split train --output d.png [KEY VALUE ...]
    python tools/plot_results.py recall  --results <run>/.../results.json --k 100 --output r.png
    python tools/plot_results.py compare --results-a <CE run>/.../results.json --results-b <CCE run>/.../results.json \
        --label-a CE --label-b CCE --k 100 --output change.png
    python tools/plot_results.py curves --run detector=<run>/metrics.json --run Motif=<run>/metrics.json \
        --key loss --window 10 --output curves.png
    python tools/plot_results.py tradeoff --benchmark <output-root>/benchmark.json \
        --experiments configs/benchmark_synthetic.yaml --protocol predcls --k 50 --output tradeoff.png

``distribution``: annotated instances per predicate, sorted (from a results file: the evaluated split; from a config:
any split of its datasets). ``recall``: per-predicate R@K of one run. ``compare``: per-predicate R@K of B minus A.
Predicates are in decreasing frequency order in every figure. ``curves``: logged training values (``metrics.json``
keys such as ``loss``, ``loss_rel``, ``val/AP50``) against the iteration, one panel per key, one line per run.
``tradeoff``: R@K against mR@K of a benchmark's rows in one protocol, with an arrow from each debiasing row's parent
(the experiment list's ``parent`` key, else the name's ``+``-prefix: ``Motif+BA-SGG`` comes from ``Motif``); a row
whose model gives fewer than K triplets per image (IterativeSG's queries) is drawn hollow with a dagger.
"""
import argparse
import logging

from sgg.benchmarking.runner import experiment_parents, load_benchmark_spec, triplet_cap_below
from sgg.config.sgg_config import ConfigError
from sgg.utils.result_plots import (load_per_predicate, load_benchmark_rows, load_tradeoff, plot_per_predicate_recall,
                                    plot_predicate_distribution, plot_recall_change, plot_recall_tradeoff,
                                    plot_training_curves)

logger = logging.getLogger("sgg.tools.plot_results")


def split_counts(config_file: str, split: str, opts):
    from sgg.config import load_config
    from sgg.data.build import SPLIT_TO_KEY, build_dataset, predicate_counts

    cfg = load_config(config_file or None, list(opts))
    names = list(getattr(cfg.DATASETS, SPLIT_TO_KEY[split]))
    if not names:
        raise ConfigError(f"DATASETS.{SPLIT_TO_KEY[split]} of {config_file} is empty")
    dataset = build_dataset(cfg, names[0], check_images=False)
    counts = predicate_counts(dataset)
    return list(dataset.ind_to_predicates)[1:], counts[1:], f"{names[0]}: predicate distribution"


def capped_rows(benchmark_json: str, protocol: str, k: int):
    """name -> triplets per image of the rows whose model ranks fewer than K (drawn hollow, with a dagger)."""
    caps = {row["name"]: triplet_cap_below(row, k) for row in load_benchmark_rows(benchmark_json, protocol)}
    return {name: cap for name, cap in caps.items() if cap is not None}


def parse_runs(specs):
    """``LABEL=PATH`` strings as (label, path) pairs."""
    runs = []
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise ConfigError(f"--run {spec!r}: expected LABEL=PATH to a metrics.json, e.g. Motif=out/metrics.json")
        runs.append((label, path))
    return runs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Figures of relation results")
    sub = parser.add_subparsers(dest="figure", required=True)
    dist = sub.add_parser("distribution", help="instances per predicate, sorted")
    dist.add_argument("--results", default="", help="an evaluator results.json (its GT counts)")
    dist.add_argument("--config-file", default="", help="or a config: count a split of its datasets")
    dist.add_argument("--split", default="train", choices=("train", "val", "test"))
    dist.add_argument("--log", action="store_true", help="logarithmic count axis")
    dist.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE")
    recall = sub.add_parser("recall", help="per-predicate R@K of one run")
    recall.add_argument("--results", required=True)
    compare = sub.add_parser("compare", help="per-predicate R@K of run B minus run A")
    compare.add_argument("--results-a", required=True)
    compare.add_argument("--results-b", required=True)
    compare.add_argument("--label-a", default="A")
    compare.add_argument("--label-b", default="B")
    curves = sub.add_parser("curves", help="training curves from metrics.json files")
    curves.add_argument("--run", action="append", required=True, metavar="LABEL=METRICS_JSON",
                        help="a run's label and its OUTPUT_DIR/metrics.json (repeat for several runs)")
    curves.add_argument("--key", action="append", default=None,
                        help="logged value to plot, one panel each (repeatable; default: loss)")
    curves.add_argument("--window", type=int, default=1, help="moving average over this many log lines")
    curves.add_argument("--title", default=None)
    tradeoff = sub.add_parser("tradeoff", help="R@K against mR@K of a benchmark's rows")
    tradeoff.add_argument("--benchmark", required=True, help="tools/run_benchmark.py's <output-root>/benchmark.json")
    tradeoff.add_argument("--experiments", default="",
                          help="the experiment list, for the parent arrows (none without it)")
    tradeoff.add_argument("--protocol", default="predcls", choices=("predcls", "sgcls", "sgdet"))
    tradeoff.add_argument("--title", default=None)
    for p in (dist, recall, compare, curves, tradeoff):
        p.add_argument("--output", required=True, help="PNG (or any format matplotlib writes) to create")
    for p in (recall, compare):
        p.add_argument("--k", type=int, default=100, help="the K of R@K")
    tradeoff.add_argument("--k", type=int, default=50, help="the K of R@K and mR@K")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        if args.figure == "distribution":
            if bool(args.results) == bool(args.config_file):
                raise ConfigError("distribution: give exactly one of --results and --config-file")
            if args.results:
                block = load_per_predicate(args.results)
                names, counts, title = block["names"], block["gt_count"], "predicate distribution (evaluated split)"
            else:
                names, counts, title = split_counts(args.config_file, args.split, args.opts)
            plot_predicate_distribution(names, counts, args.output, log=args.log, title=title)
        elif args.figure == "curves":
            plot_training_curves(parse_runs(args.run), args.output, keys=args.key or ["loss"], window=args.window,
                                 title=args.title)
        elif args.figure == "tradeoff":
            parents = experiment_parents(load_benchmark_spec(args.experiments)) if args.experiments else {}
            plot_recall_tradeoff(load_tradeoff(args.benchmark, args.protocol, args.k), args.output, k=args.k,
                                 parents=parents, title=args.title,
                                 capped=capped_rows(args.benchmark, args.protocol, args.k))
        elif args.figure == "recall":
            plot_per_predicate_recall(args.results, args.output, k=args.k)
        else:
            plot_recall_change(args.results_a, args.results_b, args.output, k=args.k, label_a=args.label_a,
                               label_b=args.label_b)
    except (ImportError, ValueError, KeyError, FileNotFoundError) as err:
        logger.error("%s", str(err).strip("'\""))
        return 2
    logger.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
