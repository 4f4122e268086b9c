#!/usr/bin/env python
"""Convert a simple JSON description of your own scene graph dataset into the VG150 files, so that the whole
pipeline (catalog, loader, statistics, training, evaluation) runs on it unchanged.

    python tools/convert_to_vg.py my_data.json --output-dir datasets/my_data --image-root path/to/images

Input (DATASET.md, "Bring your own data", has the full schema):

    {"images": [{"file_name": "a.jpg", "width": 640, "height": 480, "split": "train",
                 "objects": [{"box": [x1, y1, x2, y2], "label": "cat", "attributes": ["black"]}, ...],
                 "relations": [{"subject": 0, "object": 1, "predicate": "on"}, ...]}, ...],
     "object_classes": [...], "predicate_classes": [...], "attribute_classes": [...]}   # optional, else sorted

Writes VG-SGG-with-attri.h5, VG-SGG-dicts-with-attri.json and image_data.json into --output-dir and links (or
copies) the images into --output-dir/VG_100K.
"""
import argparse
import json
import logging
import os

from sgg.data.vg_writer import convert_simple_dataset


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("description", help="the JSON description of the dataset")
    parser.add_argument("--output-dir", required=True, help="folder for the VG150-format files")
    parser.add_argument("--image-root", default=None,
                        help="folder the images' file_name values are relative to (default: the JSON's folder)")
    parser.add_argument("--images", choices=("link", "copy", "none"), default="link",
                        help="put the images into OUTPUT_DIR/VG_100K as symlinks (default), copies, or not at all")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not os.path.isfile(args.description):
        raise SystemExit(f"description file not found: {args.description}")
    with open(args.description) as f:
        try:
            description = json.load(f)
        except json.JSONDecodeError as err:
            raise SystemExit(f"{args.description}: not valid JSON ({err})")
    image_root = args.image_root or os.path.dirname(os.path.abspath(args.description))
    paths = convert_simple_dataset(description, args.output_dir, image_root=image_root, images=args.images)
    images = description["images"]
    num_train = sum(1 for img in images if img.get("split", "train") == "train")
    print(f"wrote {len(images)} images ({num_train} train, {len(images) - num_train} test) to {args.output_dir}:")
    for key in ("roidb_file", "dict_file", "image_file", "img_dir"):
        print(f"  {key:<10} {paths[key]}")
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
