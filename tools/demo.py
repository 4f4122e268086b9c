#!/usr/bin/env python
"""Scene graphs of your own images with a trained checkpoint:

    python tools/demo.py --checkpoint output/qt/MotifPredictor/sgdet/model_final.pth --input photos/ --output out/
    python tools/demo.py --checkpoint <predcls run>/model_final.pth --input a.jpg --boxes boxes.json --output out/

``--input``: image files and/or folders (every file OpenCV can read). Per image ``<file name>.json`` (objects with
boxes, labels and scores; the ``--top-k`` relations by triplet score) and ``<file name>.png`` (the image with the boxes
of those relations beside the graph), e.g. ``a.jpg.json`` and ``a.jpg.png``, so ``a.jpg`` and ``a.png`` both keep
their results. ``--output`` must not be a folder that holds input images (results would overwrite or mix with them),
and two inputs may not share a file name (their results and their ``--boxes`` entries would be the same). SGDet checkpoints find the objects themselves; PredCls / SGCls checkpoints need the boxes
(and, for PredCls, the labels) in ``--boxes``: ``{"<image file name>": {"boxes": [[x1, y1, x2, y2], ...],
"labels": ["person", ...]}}``. Unreadable images are reported and skipped; the exit code is then 1.
"""
import argparse
import json
import logging
import os
import sys

from sgg.config.sgg_config import ConfigError
from sgg.predict import SceneGraphPredictor, read_image
from sgg.utils.errors import DataError, RunError
from sgg.utils.visualize import draw_scene_graph, save_picture

logger = logging.getLogger("sgg.tools.demo")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jp2")


def list_images(inputs):
    files = []
    for item in inputs:
        if os.path.isdir(item):
            files += sorted(os.path.join(item, f) for f in os.listdir(item) if f.lower().endswith(IMAGE_SUFFIXES))
        elif os.path.exists(item):
            files.append(item)
        else:
            raise FileNotFoundError(f"--input: {item} does not exist")
    if not files:
        raise DataError(f"--input: no image files in {', '.join(inputs)}")
    return files


def check_output_folder(images, output: str) -> None:
    """Refuse an output folder that holds input images: results written there would overwrite them (``a.png``) or be
    read as inputs by the next run."""
    folder = os.path.realpath(output)
    inside = [path for path in images if os.path.realpath(os.path.dirname(os.path.abspath(path))) == folder]
    if inside:
        raise RunError(f"--output {output} holds {len(inside)} of the input images ({', '.join(inside[:3])}): results "
                       f"would overwrite or mix with them; choose another folder, e.g. "
                       f"{os.path.join(output, 'scene_graphs')}")


def output_stems(images, output: str):
    """Per image, the path of its results without the extension: ``<output>/<file name>`` (``a.jpg`` and ``a.png``
    give ``a.jpg.json`` and ``a.png.json``). Two inputs with one file name would share results (and ``--boxes``
    entry), so they are refused."""
    seen = {}
    for path in images:
        name = os.path.basename(path)
        if name in seen and os.path.realpath(seen[name]) != os.path.realpath(path):
            raise RunError(f"--input: {seen[name]} and {path} have the same file name {name}: their results (and "
                           f"--boxes entries) would be the same; rename one or run them separately")
        seen[name] = path
    return [os.path.join(output, os.path.basename(path)) for path in images]


def load_boxes(path: str):
    if not path:
        return {}
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--boxes: {path} does not exist")
    with open(path) as f:
        try:
            boxes = json.load(f)
        except ValueError as err:
            raise DataError(f"--boxes: {path} is not valid JSON: {err}") from None
    if not isinstance(boxes, dict):
        raise DataError(f"--boxes: {path} must map image file names to {{'boxes': [...], 'labels': [...]}}")
    return boxes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Scene graphs of your own images")
    parser.add_argument("--checkpoint", required=True, help="a relation checkpoint (model_final.pth)")
    parser.add_argument("--input", nargs="+", required=True, help="image files or folders")
    parser.add_argument("--output", required=True,
                        help="folder for <file name>.json and <file name>.png (not a folder holding inputs)")
    parser.add_argument("--boxes", default="", help="PredCls / SGCls: JSON of boxes (and labels) per image name")
    parser.add_argument("--top-k", type=int, default=10, help="relations kept per image (by triplet score)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--no-picture", action="store_true", help="write the JSON only")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        if args.top_k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
        images = list_images(args.input)
        check_output_folder(images, args.output)
        stems = output_stems(images, args.output)
        boxes = load_boxes(args.boxes)
        predictor = SceneGraphPredictor(args.checkpoint, device=args.device)
    except (FileNotFoundError, ValueError) as err:
        logger.error("%s", err)
        return 2
    from tqdm import tqdm

    os.makedirs(args.output, exist_ok=True)
    failed = 0
    for path, stem in tqdm(list(zip(images, stems)), desc="scene graphs", disable=not sys.stderr.isatty()):
        name = os.path.basename(path)
        given = boxes.get(name, {})
        try:
            image = read_image(path)
            graph = predictor(image, boxes=given.get("boxes"), labels=given.get("labels"), top_k=args.top_k)
        except (FileNotFoundError, ValueError) as err:
            logger.error("%s: %s", path, err)
            failed += 1
            continue
        graph["image"] = path
        with open(stem + ".json", "w") as f:
            json.dump(graph, f, indent=1)
        if not args.no_picture:
            save_picture(stem + ".png", draw_scene_graph(image, graph))
    logger.info("%d of %d images done, results in %s", len(images) - failed, len(images), args.output)
    return 1 if failed else 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
