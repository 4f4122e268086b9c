#!/usr/bin/env python
"""Generate the synthetic Visual Genome (the project's embedded default dataset) in the exact VG150 file format.

    python tools/make_synthetic_vg.py                                  # ~3000 train + 1000 test images, < 1 minute
    python tools/make_synthetic_vg.py --annotations-only --output-dir datasets/vg_scale   # VG scale, no images
    python tools/make_synthetic_vg.py --profile vglike      # drawn VG-like scenes in datasets/synthetic_vglike

Writes ``VG-SGG-with-attri.h5``, ``VG-SGG-dicts-with-attri.json``, ``image_data.json``, ``zeroshot_triplet.pytorch``
and ``VG_100K/{image_id}.jpg`` into --output-dir, then prints the dataset statistics and the predicate distribution.
The output is identical for the same flags and seed. DATASET.md describes the dataset.
"""
import argparse
import logging
import os

from sgg.data.synthetic import PROFILES, VG_NUM_IMAGES, format_summary, generate_synthetic_vg

OUTPUT_FOLDERS = {"vglike": "synthetic_vglike"}  # the catalog's folder of each profile with its own entries


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default=None,
                        help="dataset folder (default: datasets/synthetic_vg, where the SyntheticVG_* catalog "
                             "entries look under the data root; datasets/synthetic_vglike, that of the "
                             "SyntheticVGLike_* entries, with --profile vglike)")
    parser.add_argument("--num-train", type=int, default=3000, help="train-split images (default 3000)")
    parser.add_argument("--num-test", type=int, default=1000, help="test-split images (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed and flags = identical files")
    parser.add_argument("--annotations-only", action="store_true",
                        help="write the annotation files only, no images (VG-scale by default: see --num-images)")
    parser.add_argument("--num-images", type=int, default=None,
                        help=f"with --annotations-only: total images, split 70/30 train/test by position like VG "
                             f"(default {VG_NUM_IMAGES:,}); overrides --num-train/--num-test")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="scene statistics: 'images' (2-8 objects on 128-256 px images; default when drawing), "
                             "'vg' (VG's ~10.6 boxes and ~5.8 relations per image; default for annotations only) "
                             "or 'vglike' (VG150's scene statistics and steeper predicate tail on 320-448 px "
                             "images, to be drawn)")
    parser.add_argument("--workers", type=int, default=2, help="processes drawing images (default 2)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    num_train, num_test = args.num_train, args.num_test
    if args.num_images is not None and not args.annotations_only:
        raise SystemExit("--num-images goes with --annotations-only; use --num-train/--num-test for images")
    if args.annotations_only and (args.num_images is not None or (num_train, num_test) == (3000, 1000)):
        total = args.num_images if args.num_images is not None else VG_NUM_IMAGES
        num_train, num_test = int(total * 0.7), total - int(total * 0.7)
    output_dir = args.output_dir or os.path.join("datasets", OUTPUT_FOLDERS.get(args.profile, "synthetic_vg"))
    summary = generate_synthetic_vg(output_dir, num_train=num_train, num_test=num_test, seed=args.seed,
                                    annotations_only=args.annotations_only, profile=args.profile,
                                    workers=args.workers)
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
