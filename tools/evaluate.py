#!/usr/bin/env python
"""Re-evaluate saved scene graph predictions without the model.

    python tools/evaluate.py --predictions output/x/inference/VG150_test/predictions.sgg \
        --dataset VG150_test [--config-file CFG] [--output-dir DIR] [KEY VALUE ...]

Several files (one per process of a distributed test) may follow ``--predictions``. The ground truth comes from the
named catalog dataset (``DATASETS.DATA_DIR`` / ``SGG_DATA_DIR``); images are matched by their image id. Writes
``results.json`` and ``results.txt`` (SGB's text block) to the output directory and prints the block.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sgg.config import load_config  # noqa: E402
from sgg.data import build_dataset, get_dataset_statistics  # noqa: E402
from sgg.engine.relation_eval import dataset_evaluator_kwargs, groundtruth_lookup  # noqa: E402
from sgg.evaluation import evaluate_prediction_file, write_results  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", nargs="+", required=True, metavar="FILE",
                        help="prediction file(s) written by tools/relation_test_net.py")
    parser.add_argument("--dataset", required=True, help="catalog name of the split, e.g. VG150_test")
    parser.add_argument("--config-file", default="", metavar="FILE", help="config giving DATA_DIR, VAL_SIZE ...")
    parser.add_argument("--output-dir", default="", help="where results go (default: the first file's folder)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    flags = [o for o in args.opts if str(o).startswith("--")]
    if flags:
        parser.error(f"put {', '.join(flags)} before the KEY VALUE overrides")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for path in args.predictions:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--predictions: {path} does not exist")
    cfg = load_config(args.config_file, args.opts)
    dataset = build_dataset(cfg, args.dataset, transforms=None, check_images=False)
    lookup = groundtruth_lookup(dataset)
    # head / body / tail mean recall need the training counts: taken from DATASETS.TRAIN when the config names it
    statistics = get_dataset_statistics(cfg) if cfg.DATASETS.TRAIN else None
    evaluator = None
    for path in args.predictions:
        part = evaluate_prediction_file(path, lookup, **dataset_evaluator_kwargs(cfg, dataset, statistics))
        evaluator = part if evaluator is None else evaluator.merge(part)
    results = evaluator.compute()
    text = evaluator.format(results=results)
    out_dir = args.output_dir or os.path.dirname(os.path.abspath(args.predictions[0]))
    paths = write_results(results, text, out_dir)
    print(text)
    print(f"results: {paths['json']} and {paths['txt']}")
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
