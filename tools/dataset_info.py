#!/usr/bin/env python
"""Open the configured datasets through the catalog and print what a researcher checks first.

    python tools/dataset_info.py --config-file configs/synthetic/relation_predcls.yaml [KEY VALUE ...]
    python tools/dataset_info.py --config-file configs/synthetic_vglike/relation_predcls.yaml \
        --compare-dict ../shared/data/vg150/VG-SGG-dicts-with-attri.json

Prints split sizes (images, boxes, relations), the predicate distribution of the training split with its head / body /
tail groups, and writes the frequency statistics cache and a bar chart (``predicate_distribution.png``) to OUTPUT_DIR.
With --compare-dict (VG150's dictionary file), first prints the annotation statistics of the first training
dataset's h5 file (all images, before any loader filter) next to VG150's.
"""
import argparse
import logging
import os

import numpy as np

from sgg.config import get_protocol, load_config, save_config
from sgg.config.paths_catalog import DatasetCatalog, resolve_data_dir
from sgg.data import build_dataset, get_dataset_statistics
from sgg.data.vg_format import load_vg_dicts
from sgg.data.vg_statistics import format_comparison, h5_statistics, vg150_reference
from sgg.utils.plots import save_bar_chart


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to a yaml config")
    parser.add_argument("--compare-dict", default="", metavar="FILE",
                        help="VG150's VG-SGG-dicts-with-attri.json: print the dataset's statistics next to VG150's")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def split_summary(dataset) -> str:
    boxes = sum(len(b) for b in dataset.gt_boxes)
    rels = sum(len(r) for r in dataset.relationships)
    n = max(len(dataset), 1)
    return (f"{dataset.name:<32} {len(dataset):>8} images {boxes:>9} boxes ({boxes / n:5.1f}/img) "
            f"{rels:>8} relations ({rels / n:4.1f}/img)")


def print_comparison(cfg, vg150_dict_file: str) -> None:
    """The first training dataset's h5 statistics next to VG150's (read first, so a bad path fails early)."""
    reference = vg150_reference(vg150_dict_file)
    name = cfg.DATASETS.TRAIN[0]
    files = DatasetCatalog.get(name, cfg.DATASETS.DATA_DIR)
    num_predicates = len(load_vg_dicts(files["dict_file"])["ind_to_predicates"]) - 1
    print(f"\nAnnotation statistics of {files['roidb_file']} (all splits, no loader filter) and VG150's:")
    print(format_comparison(h5_statistics(files["roidb_file"], num_predicates), reference, files["collection"]))


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config_file, args.opts)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    save_config(cfg)
    root = resolve_data_dir(cfg.DATASETS.DATA_DIR)
    print(f"protocol: {get_protocol(cfg)}   data root: {root}   output: {cfg.OUTPUT_DIR}")
    if args.compare_dict:
        print_comparison(cfg, args.compare_dict)
    print("\nSplits (relation-training filters of the configured protocol):")
    for names in (cfg.DATASETS.TRAIN, cfg.DATASETS.VAL, cfg.DATASETS.TEST):
        for name in names:
            print("  " + split_summary(build_dataset(cfg, name)))

    stats = get_dataset_statistics(cfg)
    counts = np.asarray(stats["predicate_counts"], dtype=np.int64)
    names = list(stats["rel_classes"])
    groups = stats.get("predicate_groups", {})
    group_of = {int(p): g for g, members in groups.items() for p in members}
    total = max(int(counts[1:].sum()), 1)
    print(f"\nTraining-split predicate annotations ({len(names) - 1} classes, {total} relations):")
    order = [int(p) for p in np.argsort(-counts[1:], kind="stable") + 1]
    widest = max(counts[1:].max(), 1)
    for p in order:
        bar = "#" * int(round(40 * counts[p] / widest))
        print(f"  {names[p]:<16} {counts[p]:>8} {100.0 * counts[p] / total:6.2f}%  {group_of.get(p, ''):<5} {bar}")
    top3 = sum(counts[p] for p in order[:3]) / total
    rare = sum(1 for p in order if counts[p] / total < 0.02)
    print(f"\n  top-3 predicates hold {100 * top3:.1f}% of relations; {rare} of {len(order)} predicates hold < 2% each")
    for group in ("head", "body", "tail"):
        if group in groups:
            print(f"  {group:<5}: {', '.join(names[int(p)] for p in groups[group])}")
    chart = os.path.join(cfg.OUTPUT_DIR, "predicate_distribution.png")
    save_bar_chart(chart, [names[p] for p in order], [int(counts[p]) for p in order],
                   title="training predicates (count)")
    print(f"\nbar chart: {chart}")
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
