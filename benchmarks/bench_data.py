#!/usr/bin/env python
"""Data-loading benchmark on a VG-scale annotation file (108,073 images, ~1.15M boxes, ~0.64M relations).

    python benchmarks/bench_data.py [--data-dir output/bench_data/vg_scale] [--num-images 108073] [--fetches 5000]

Generates the annotation-only synthetic file once (tools/make_synthetic_vg.py --annotations-only) and reuses it, then
times, for each split with the relation-training settings (and train with the detector-pretraining settings):
opening the files and building the index, and ``get_groundtruth`` fetches per second (random items). Also times the
frequency statistics of the train split. Prints a markdown table for BENCHMARKS.md. Target: each split < 3 s.
"""
import argparse
import os
import platform
import statistics as stats
import sys
import time

import numpy as np

from sgg.data.datasets import VGDataset
from sgg.data.statistics import compute_statistics
from sgg.data.synthetic import VG_NUM_IMAGES, generate_synthetic_vg
from sgg.data.vg_format import H5_FILE, dataset_paths

# (label, split, options): relation training as SGB builds it (PROTOCOL 1.1), and detector pretraining
SETTINGS = [
    ("train (relation)", "train", dict(filter_empty_rels=True, filter_non_overlap=False)),
    ("val (relation)", "val", dict(filter_empty_rels=True, filter_non_overlap=False)),
    ("test (relation)", "test", dict(filter_empty_rels=True, filter_non_overlap=False)),
    ("train (detector)", "train", dict(filter_empty_rels=False, filter_non_overlap=False)),
    ("train (SGDet overlap)", "train", dict(filter_empty_rels=True, filter_non_overlap=True)),
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.path.join("output", "bench_data", "vg_scale"))
    parser.add_argument("--num-images", type=int, default=VG_NUM_IMAGES)
    parser.add_argument("--fetches", type=int, default=5000, help="get_groundtruth calls per split")
    parser.add_argument("--repeats", type=int, default=3, help="index builds per split (the median is reported)")
    parser.add_argument("--regenerate", action="store_true", help="rewrite the annotation file even if present")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.regenerate or not os.path.isfile(os.path.join(args.data_dir, H5_FILE)):
        summary = generate_synthetic_vg(args.data_dir, num_train=int(args.num_images * 0.7),
                                        num_test=args.num_images - int(args.num_images * 0.7), seed=0,
                                        annotations_only=True)
        print(f"generated {args.num_images} images of annotations in {summary['seconds']:.1f} s "
              f"({summary['boxes_per_image']:.2f} boxes, {summary['relations_per_image']:.2f} relations per image)")
    paths = dataset_paths(args.data_dir)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"file: {paths['roidb_file']} ({os.path.getsize(paths['roidb_file']) / 1e6:.0f} MB)\n")
    print("| split (settings) | images | boxes | relations | open + index (s) | get_groundtruth / s |")
    print("|---|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for label, split, options in SETTINGS:
        times = []
        for _ in range(args.repeats):
            begin = time.perf_counter()
            ds = VGDataset(split, **paths, check_images=False, **options)
            times.append(time.perf_counter() - begin)
        indices = rng.integers(0, len(ds), size=args.fetches)
        evaluation = split != "train"
        begin = time.perf_counter()
        for i in indices.tolist():
            ds.get_groundtruth(i, evaluation=evaluation)
        rate = args.fetches / (time.perf_counter() - begin)
        boxes = sum(len(b) for b in ds.gt_boxes)
        rels = sum(len(r) for r in ds.relationships)
        print(f"| {label} | {len(ds):,} | {boxes:,} | {rels:,} | {stats.median(times):.2f} | {rate:,.0f} |")

    ds = VGDataset("train", **paths, check_images=False, filter_duplicate_rels=False)
    begin = time.perf_counter()
    compute_statistics(ds)
    print(f"\nfrequency statistics of the train split (SGB setting, {len(ds):,} images): "
          f"{time.perf_counter() - begin:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
