#!/usr/bin/env python
"""Train and evaluate a list of experiments on one detector and write one comparison table.

    python tools/run_benchmark.py --experiments configs/benchmark_synthetic.yaml --output-root output/benchmark
    python tools/run_benchmark.py --experiments ... --only Transformer FREQ --protocols predcls   # a subset
    python tools/run_benchmark.py --experiments ... --seeds 0               # every row's first seed first
    python tools/run_benchmark.py --experiments ... --collect-only          # tables from finished runs only
    python tools/run_benchmark.py --experiments ... --collect-only --export-records benchmarks/results/synthetic
                                   # + the runs' results without checkpoints (rebuild the tables, resume a benchmark)
    python tools/run_benchmark.py --experiments ... SOLVER.MAX_ITER 20      # KEY VALUE pairs for every run
                                                                   # (the detector's training and test included)

The experiment list format is documented in ``sgg/benchmarking/runner.py``. Runs whose results exist are skipped;
the detector is trained from ``detector.config`` when ``detector.weights`` is missing and tested once for its AP@0.5.
Writes ``<output-root>/benchmark.md``, ``benchmark.json``, ``per_predicate/*.png`` and, for the rows with a parent
(a debiasing method on its CE row), ``benchmark_changes.json``: each row minus its parent, seed against seed, also
the last table of ``benchmark.md``.
"""
import argparse
import json
import logging
import os
import shutil
import sys
import time

from tqdm import tqdm

from sgg.benchmarking.changes import changes_table, parent_changes
from sgg.benchmarking.runner import (detector_ap50, detector_fingerprint, export_records, find_results,
                                     load_benchmark_spec, run_detector_sha256, run_dir, write_detector_record,
                                     run_one, summarise, table_detector_ap50, train_command, write_tables)
from sgg.config.sgg_config import ConfigError
from sgg.utils.errors import RunError

logger = logging.getLogger("sgg.tools.run_benchmark")


def script_env() -> dict:
    """The environment of every launched run: scripts call ``${PYTHON:-python}``, so PYTHON is this interpreter (a
    virtual environment used without activation would otherwise give the scripts another python)."""
    return {**os.environ, "PYTHON": sys.executable}


def ensure_detector(spec, extra_opts, dry_run: bool) -> str:
    """The detector weights: trained with ``detector.config`` when missing, then tested once (AP@0.5)."""
    weights = spec.detector_weights
    if not weights:
        raise ConfigError(f"{spec.path}: detector.weights is required (the detector checkpoint every run shares)")
    folder = os.path.dirname(weights) or "."
    env, threads = script_env(), ""
    if spec.detector_threads:  # the thread count its weights repeat at (docs/benchmark.md)
        env.update(OMP_NUM_THREADS=str(spec.detector_threads), MKL_NUM_THREADS=str(spec.detector_threads))
        threads = f" (OMP_NUM_THREADS={spec.detector_threads})"
    if not os.path.isfile(weights):
        if not spec.detector_config:
            raise FileNotFoundError(f"{spec.path}: detector weights {weights} do not exist and no detector.config "
                                    "is given to train them")
        command = [sys.executable, "tools/detector_pretrain_net.py", "--config-file", spec.detector_config,
                   *extra_opts, "OUTPUT_DIR", folder]
        logger.info("training the detector%s: %s", threads, " ".join(command))
        if not dry_run:
            run_one(command, folder, env=env)
            produced = os.path.join(folder, "model_final.pth")
            if os.path.abspath(produced) != os.path.abspath(weights):
                shutil.copyfile(produced, weights)
    if detector_ap50(weights) is None and spec.detector_config and not dry_run:
        command = [sys.executable, "tools/detector_test_net.py", "--config-file", spec.detector_config,
                   *extra_opts, "MODEL.WEIGHT", weights, "OUTPUT_DIR", folder]
        logger.info("testing the detector%s: %s", threads, " ".join(command))
        run_one(command, os.path.join(folder, "detector_test"), env=env)
    return weights


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", required=True, help="the experiment list (yaml)")
    parser.add_argument("--output-root", default="output/benchmark", help="one folder per experiment and protocol")
    parser.add_argument("--only", nargs="+", default=None, help="run only these experiment names")
    parser.add_argument("--protocols", nargs="+", default=None, help="run only these protocols")
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="run only these of each experiment's seeds (e.g. every first seed before any second)")
    parser.add_argument("--collect-only", action="store_true", help="write the tables from finished runs only")
    parser.add_argument("--export-records", metavar="DIR", default=None,
                        help="also copy every finished run's results (no checkpoints) into DIR; "
                             "--collect-only --output-root DIR rebuilds the tables from them")
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE pairs appended to every run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    if len(args.opts) % 2:
        parser.error(f"KEY VALUE overrides come in pairs, got {args.opts}")
    spec = load_benchmark_spec(args.experiments)
    names = {e.name for e in spec.experiments}
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        parser.error(f"--only: {unknown} are not in {args.experiments} (it has {sorted(names)})")
    experiments = [e for e in spec.experiments if not args.only or e.name in args.only]

    if not args.collect_only:
        detector = ensure_detector(spec, args.opts, args.dry_run)
        jobs = [(e, p, s) for e in experiments for p in e.protocols for s in e.seeds_for(p)
                if (not args.protocols or p in args.protocols) and (args.seeds is None or s in args.seeds)]
        sha256 = detector_fingerprint(detector) if os.path.isfile(detector) else None  # None: a dry run's
        ap50 = detector_ap50(detector) if sha256 else None
        start = time.time()
        for exp, protocol, seed in tqdm(jobs, desc="experiments", unit="run"):
            output_dir = run_dir(args.output_root, exp.name, protocol, seed)
            if find_results(output_dir):
                logger.info("%s %s seed %d: results exist, skipped", exp.name, protocol, seed)
                recorded = run_detector_sha256(output_dir)
                if sha256 and recorded and recorded != sha256:
                    logger.warning("%s %s seed %d was trained on other detector weights (SHA-256 %s, %s is %s): "
                                   "the table will say the rows do not share a detector", exp.name, protocol, seed,
                                   recorded[:12], detector, sha256[:12])
                continue
            command = train_command(exp, protocol, seed, detector, output_dir, args.opts)
            logger.info("%s %s seed %d: %s", exp.name, protocol, seed, " ".join(command))
            if args.dry_run:
                continue
            write_detector_record(output_dir, detector, sha256, ap50)
            seconds = run_one(command, output_dir, env=script_env())
            if not find_results(output_dir):
                raise RunError(f"{exp.name} {protocol} seed {seed} finished but left no "
                               f"{output_dir}/inference/<dataset>/results.json (see {output_dir}/run.log)")
            logger.info("%s %s seed %d: done in %.0f s", exp.name, protocol, seed, seconds)
        logger.info("all runs done in %.0f s", time.time() - start)
    if args.dry_run:
        return 0
    ap50 = table_detector_ap50(spec, args.output_root, args.collect_only)
    rows = summarise(spec, args.output_root, ap50)
    changes = parent_changes(spec, args.output_root)
    paths = write_tables(rows, spec.ks, args.output_root, appendix=changes_table(changes, spec.ks))
    with open(os.path.join(args.output_root, "benchmark_changes.json"), "w") as f:
        json.dump(changes, f, indent=1)
    with open(paths["markdown"]) as f:
        print(f.read())
    logger.info("wrote %s and %s", paths["markdown"], paths["json"])
    if args.export_records:
        count = export_records(spec, args.output_root, args.export_records)
        logger.info("exported the records of %d runs to %s", count, args.export_records)
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
