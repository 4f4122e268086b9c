#!/usr/bin/env python
"""The predicate confusion matrix of a trained relation model (BA-SGG's transfer matrix input, HCA's ``cdl`` input):

    python tools/relation_confusion_matrix.py --config-file <run>/config.yaml [--output FILE.npy] \\
        OUTPUT_DIR <run> [MODEL.WEIGHT <run>/model_final.pth] [KEY VALUE ...]

The model runs in PredCls (GT boxes and labels, whatever the config's protocol) over the training split
(``DATASETS.TRAIN``, test-time transforms, every annotated relation). For every GT triplet (s, o, p) the pair (s, o)
is looked up among the predictions and C[p, argmax over foreground predicates of its scores] is incremented.
Writes the (R, R) counts as ``.npy`` (default ``OUTPUT_DIR/conf_mat_freq_train.npy``, the reference's name) and a
heat map of the row-normalised matrix with predicate names beside it (``.png``). Weights: OUTPUT_DIR/last_checkpoint,
else MODEL.WEIGHT. One process (the counts are not gathered over torchrun processes).
"""
import argparse
import logging
import os
from typing import Sequence

import numpy as np

from sgg.engine import default_argument_parser, default_setup, load_trained_weights, resolve_device

logger = logging.getLogger("sgg.tools.relation_confusion_matrix")

PREDCLS = ["MODEL.ROI_RELATION_HEAD.USE_GT_BOX", "True", "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", "True"]


def count_confusions(matrix: np.ndarray, gt_relations: np.ndarray, pairs: np.ndarray, scores: np.ndarray) -> int:
    """Add one image to ``matrix`` (R, R) in place: GT rows (s, o, p), predicted ``pairs`` (P, 2) with ``scores``
    (P, R). Returns how many GT triplets had no predicted pair (e.g. cut by a cap on stored pairs)."""
    gt_relations = np.asarray(gt_relations, dtype=np.int64).reshape(-1, 3)
    if len(gt_relations) == 0:
        return 0
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    width = int(max(pairs.max(initial=0), gt_relations[:, :2].max())) + 1
    pair_keys = pairs[:, 0] * width + pairs[:, 1]
    order = np.argsort(pair_keys, kind="stable")
    gt_keys = gt_relations[:, 0] * width + gt_relations[:, 1]
    slot = np.searchsorted(pair_keys[order], gt_keys)
    slot = np.minimum(slot, len(order) - 1) if len(order) else slot
    found = (pair_keys[order][slot] == gt_keys) if len(order) else np.zeros(len(gt_keys), dtype=bool)
    rows = order[slot[found]]
    predicted = np.asarray(scores)[rows, 1:].argmax(axis=1) + 1
    np.add.at(matrix, (gt_relations[found, 2], predicted), 1)
    return int((~found).sum())


def save_heatmap(matrix: np.ndarray, names: Sequence[str], path: str) -> None:
    """Row-normalised foreground block of ``matrix`` as a labelled heat map (OpenCV: a core dependency)."""
    import cv2

    fg = matrix[1:, 1:].astype(np.float64)
    norm = fg / np.maximum(fg.sum(axis=1, keepdims=True), 1.0)
    n, cell, font = len(fg), 18, cv2.FONT_HERSHEY_SIMPLEX
    labels = [str(x) for x in names[1:]]
    margin = 10 + 7 * max((len(s) for s in labels), default=1)
    colours = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    grid = cv2.resize(colours, (n * cell, n * cell), interpolation=cv2.INTER_NEAREST)
    canvas = np.full((margin + n * cell + 30, margin + n * cell + 10, 3), 255, np.uint8)
    canvas[margin:margin + n * cell, margin:margin + n * cell] = grid
    for i, name in enumerate(labels):
        cv2.putText(canvas, name, (4, margin + i * cell + 13), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    top = np.full((margin, n * cell, 3), 255, np.uint8).transpose(1, 0, 2).copy()  # column labels, written sideways
    for i, name in enumerate(labels):
        cv2.putText(top, name, (4, i * cell + 13), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    canvas[:margin, margin:margin + n * cell] = np.rot90(top, 1)
    cv2.putText(canvas, "rows: GT predicate, columns: predicted (row-normalised)", (4, margin + n * cell + 20), font,
                0.4, (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(path, canvas):
        raise OSError(f"could not write {path}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = default_argument_parser("Predicate confusion matrix of a trained relation model (PredCls, train split)")
    parser.add_argument("--output", default="", help="output .npy (default OUTPUT_DIR/conf_mat_freq_train.npy)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.opts = list(args.opts) + PREDCLS
    cfg = default_setup(args=args, save=False, log_name="log_confusion_matrix.txt")
    from sgg.data import build_data_loader
    from sgg.engine.inference import run_inference
    from sgg.engine.relation import build_scene_graph_model, load_statistics

    statistics = load_statistics(cfg)
    model = build_scene_graph_model(cfg, statistics).to(resolve_device(cfg))
    load_trained_weights(cfg, model)
    names = list(statistics["rel_classes"])
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    missing = 0
    for loader in build_data_loader(cfg, "train", for_training=False):
        dataset = loader.dataset

        def consume(index: int, prediction) -> None:
            nonlocal missing
            missing += count_confusions(matrix, dataset.relationships[index],
                                        prediction.get_field("rel_pair_idxs").cpu().numpy(),
                                        prediction.get_field("pred_rel_scores").float().cpu().numpy())

        run_inference(model, loader, pass_targets=True, consumer=consume)
    if missing:
        logger.warning("%d GT triplets had no predicted pair (not counted)", missing)
    output = args.output or os.path.join(cfg.OUTPUT_DIR, "conf_mat_freq_train.npy")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    np.save(output, matrix)
    picture = os.path.splitext(output)[0] + ".png"
    save_heatmap(matrix, names, picture)
    logger.info("confusion matrix %s (%d GT triplets counted) written to %s, heat map %s", matrix.shape,
                int(matrix.sum()), output, picture)
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
