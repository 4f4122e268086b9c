#!/usr/bin/env python
"""Re-evaluate saved scene graph predictions without the model.

    python tools/evaluate.py --predictions output/x/inference/VG150_test/predictions.sgg \
        --dataset VG150_test [--config-file CFG] [--output-dir DIR] [--allow-subset] [--overwrite] [KEY VALUE ...]

Several files (one per process of a distributed test) may follow ``--predictions``. The ground truth comes from the
named catalog dataset (``DATASETS.DATA_DIR`` / ``SGG_DATA_DIR``); images are matched by their image id. Every image of
the dataset must have a prediction unless ``--allow-subset`` is given (the printed block then says "N of M images").

Writes ``results_reeval.json`` / ``results_reeval.txt`` beside the first predictions file, or ``results.json`` /
``results.txt`` in ``--output-dir``; existing results are never replaced without ``--overwrite``. A file written by
``tools/relation_test_net.py`` stores the run's head/body/tail counts and match IoU, so the numbers are the run's
whatever config is given; a ``TEST.RELATION.IOU_THRESHOLD`` that differs from the file's is refused.
"""
import argparse
import logging
import os

from sgg.config import load_config
from sgg.data import build_dataset, get_dataset_statistics
from sgg.engine.relation_eval import dataset_evaluator_kwargs, dataset_image_ids, groundtruth_lookup
from sgg.evaluation import evaluate_prediction_file, read_prediction_file, write_results
from sgg.evaluation.report import results_paths
from sgg.utils.errors import EvaluationError, RunError

logger = logging.getLogger("sgg.evaluate")
REEVAL_STEM = "results_reeval"  # beside the run's own results.json / results.txt, which stay untouched
SHOWN_MISSING_IDS = 5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", nargs="+", required=True, metavar="FILE",
                        help="prediction file(s) written by tools/relation_test_net.py")
    parser.add_argument("--dataset", required=True, help="catalog name of the split, e.g. VG150_test")
    parser.add_argument("--config-file", default="", metavar="FILE", help="config giving DATA_DIR, VAL_SIZE ...")
    parser.add_argument("--output-dir", default="",
                        help="where results.json / results.txt (and a statistics cache, if one is needed) go "
                             "(default: results_reeval.* beside the first predictions file)")
    parser.add_argument("--allow-subset", action="store_true",
                        help="score the predicted images even if some images of the dataset have no prediction")
    parser.add_argument("--overwrite", action="store_true", help="replace results files that already exist")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    flags = [o for o in args.opts if str(o).startswith("--")]
    if flags:
        parser.error(f"put {', '.join(flags)} before the KEY VALUE overrides")
    return args


def output_location(args):
    """(folder, file stem) of the results; refuses to replace existing files without ``--overwrite``."""
    if args.output_dir:
        out_dir, stem = os.path.abspath(args.output_dir), "results"
    else:
        out_dir, stem = os.path.dirname(os.path.abspath(args.predictions[0])), REEVAL_STEM
    existing = [p for p in results_paths(out_dir, stem).values() if os.path.exists(p)]
    if existing and not args.overwrite:
        raise RunError(f"{existing[0]} already exists: pass --overwrite to replace it, or another --output-dir")
    return out_dir, stem


def stored_settings(readers, cfg) -> dict:
    """The head/body/tail counts and match IoU the files were written with (empty for files that do not store them,
    e.g. format version 1). Refuses files that disagree with each other and a config whose IoU differs."""
    stored = [{k: r.meta[k] for k in ("predicate_counts", "split_rule", "iou_threshold") if r.meta.get(k) is not None}
              for r in readers]
    if any(s != stored[0] for s in stored[1:]):
        raise EvaluationError(f"{', '.join(r.path for r in readers)}: the files were written with different "
                              f"head/body/tail counts or match IoU; were they written by one run?")
    iou = stored[0].get("iou_threshold")
    if iou is not None and float(iou) != float(cfg.TEST.RELATION.IOU_THRESHOLD):
        raise EvaluationError(f"{readers[0].path} was scored with TEST.RELATION.IOU_THRESHOLD {iou}, the config "
                              f"gives {cfg.TEST.RELATION.IOU_THRESHOLD}; drop the key (or set it to {iou}) to "
                              f"reproduce the run's numbers")
    return stored[0]


def evaluator_kwargs(cfg, dataset, stored: dict) -> dict:
    """The file's own counts and IoU when it has them; otherwise the config's (then head/body/tail depend on
    DATASETS.TRAIN, DATASETS.VAL_SIZE, DATASETS.NUM_IM and DATASETS.DATA_DIR, which decide the training split)."""
    if "predicate_counts" in stored:
        kwargs = dataset_evaluator_kwargs(cfg, dataset)
        kwargs.pop("predicate_counts")
        kwargs.pop("iou_threshold")
        return kwargs
    statistics = None
    if cfg.DATASETS.TRAIN:
        logger.warning("the predictions file stores no training counts: head/body/tail groups come from %s with "
                       "this config's DATASETS.VAL_SIZE / NUM_IM; they match the run only with its config",
                       cfg.DATASETS.TRAIN[0])
        statistics = get_dataset_statistics(cfg)
    return dataset_evaluator_kwargs(cfg, dataset, statistics)


def check_coverage(args, dataset_ids, predicted: set) -> dict:
    """Coverage of the dataset by the predictions; missing images are an error unless ``--allow-subset``."""
    missing = [i for i in dataset_ids if i not in predicted]
    if missing and not args.allow_subset:
        raise EvaluationError(
            f"{', '.join(args.predictions)}: predictions for {len(predicted)} of the {len(dataset_ids)} images of "
            f"{args.dataset}; {len(missing)} missing (first ids: {', '.join(map(str, missing[:SHOWN_MISSING_IDS]))}). "
            f"Pass every file of a distributed test (predictions_rank*.sgg), or --allow-subset to score only the "
            f"predicted images")
    return {"dataset": args.dataset, "images_predicted": len(predicted), "images_in_dataset": len(dataset_ids),
            "subset": bool(missing)}


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for path in args.predictions:
        if not os.path.isfile(path):
            raise EvaluationError(f"--predictions: {path} does not exist")
    readers = [read_prediction_file(path) for path in args.predictions]  # a foreign file fails here, not later
    out_dir, stem = output_location(args)
    cfg = load_config(args.config_file, args.opts, freeze=False)
    cfg.OUTPUT_DIR = out_dir  # a statistics cache goes there, never into the current folder
    cfg.freeze()
    stored = stored_settings(readers, cfg)
    dataset = build_dataset(cfg, args.dataset, transforms=None, check_images=False)
    lookup = groundtruth_lookup(dataset)
    predicted = set()

    def lookup_and_record(image_id):
        predicted.add(image_id)
        return lookup(image_id)

    kwargs = evaluator_kwargs(cfg, dataset, stored)
    evaluator = None
    for path in args.predictions:
        part = evaluate_prediction_file(path, lookup_and_record, **kwargs)
        evaluator = part if evaluator is None else evaluator.merge(part)
    coverage = check_coverage(args, dataset_image_ids(dataset), predicted)
    results = evaluator.compute()
    results["coverage"] = coverage
    note = None
    if coverage["subset"]:
        note = (f"Subset: {coverage['images_predicted']} of {coverage['images_in_dataset']} images of "
                f"{args.dataset} (--allow-subset); not comparable with results on the whole split")
    text = evaluator.format(results=results, note=note)
    paths = write_results(results, text, out_dir, stem)
    print(text)
    print(f"results: {paths['json']} and {paths['txt']}")
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
