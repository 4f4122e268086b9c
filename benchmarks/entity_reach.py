#!/usr/bin/env python
"""How many GT triplets an SGCls or SGDet run's objects can reach at all, next to its R@K.

    python benchmarks/entity_reach.py output/benchmark_vglike/Motif/sgdet/seed0 [--dataset SyntheticVGLike_test]

Reads the run's ``config.yaml`` and ``inference/<dataset>/predictions.sgg`` (written by the run's test). A GT triplet
is *reached* when some predicted box matches its subject and another predicted box matches its object, each with
IoU >= the run's match threshold (``TEST.RELATION.IOU_THRESHOLD``, with the evaluator's IoU convention,
``TEST.RELATION.LEGACY_IOU``) and the GT label: the share no ranking of the pairs can exceed, since every pair of
predicted objects is a candidate. Printed beside R@20/50/100 (mean over images, as the evaluator's), it tells whether
R@K is bounded by the objects (in SGDet the detections, in SGCls the labels predicted for the GT boxes) or by the
ranking of pairs (BENCHMARKS.md, "VG-like comparison"). The share is per image, then averaged over images with
relations, like R@K. SGCls runs also print the share of GT boxes given their GT label (the boxes are the GT's, in
order). PredCls is given the GT labels too, so every triplet is reached there.
"""
import argparse
import json
import os

import numpy as np

from sgg.evaluation.matching import box_iou


def reached_triplets(gt_boxes, gt_labels, relations, pred_boxes, pred_labels, iou_threshold=0.5,
                     legacy_iou=True) -> int:
    """The number of GT triplets (subject, object, predicate rows of ``relations``) whose subject and object are each
    matched by a different predicted box with IoU >= ``iou_threshold`` and the GT box's label. The IoU is the
    evaluator's (``legacy_iou``: maskrcnn-benchmark's +1 pixel convention, SGB's default)."""
    relations = np.asarray(relations, dtype=np.int64).reshape(-1, 3)
    if len(relations) == 0 or len(pred_boxes) == 0:
        return 0
    iou = box_iou(gt_boxes, pred_boxes, legacy_iou)
    matches = (iou >= iou_threshold) & (np.asarray(gt_labels)[:, None] == np.asarray(pred_labels)[None, :])
    reached = 0
    for subject, obj, _ in relations:
        subject_boxes, object_boxes = np.flatnonzero(matches[subject]), np.flatnonzero(matches[obj])
        # one predicted box cannot be both ends of a pair
        if len(subject_boxes) and len(object_boxes) and len(np.union1d(subject_boxes, object_boxes)) > 1:
            reached += 1
    return reached


def labels_matching(gt_labels, pred_labels, image_id="") -> tuple:
    """(GT boxes whose predicted label is the GT's, GT boxes) of one SGCls image, whose predicted objects are the GT
    boxes in order."""
    gt_labels, pred_labels = np.asarray(gt_labels), np.asarray(pred_labels)
    if gt_labels.shape != pred_labels.shape:
        raise SystemExit(f"image {image_id!r}: {len(pred_labels)} predicted labels for {len(gt_labels)} GT boxes; an "
                         f"SGCls prediction labels the GT boxes in order (was it written for another split?)")
    return int((gt_labels == pred_labels).sum()), len(gt_labels)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="an SGCls or SGDet run's OUTPUT_DIR (config.yaml, inference/<dataset>/)")
    parser.add_argument("--dataset", default="SyntheticVGLike_test", help="catalog name of the tested split")
    args = parser.parse_args(argv)

    from sgg.config import load_config
    from sgg.data import build_dataset
    from sgg.engine.relation_eval import groundtruth_lookup
    from sgg.evaluation import read_prediction_file

    folder = os.path.join(args.run_dir, "inference", args.dataset)
    cfg = load_config(os.path.join(args.run_dir, "config.yaml"), [], freeze=False)
    cfg.OUTPUT_DIR = folder  # a statistics cache, if one is built, goes beside the predictions
    cfg.freeze()
    reader = read_prediction_file(os.path.join(folder, "predictions.sgg"))
    mode = reader.meta["mode"]
    if mode not in ("sgcls", "sgdet"):
        raise SystemExit(f"{reader.path}: mode {mode!r}; the reach of the predicted objects is an SGCls or SGDet "
                         f"question (PredCls is given the GT boxes and labels, so every triplet is reached)")
    iou_threshold = float(reader.meta.get("iou_threshold") or cfg.TEST.RELATION.IOU_THRESHOLD)
    legacy_iou = bool(reader.meta.get("legacy_iou", cfg.TEST.RELATION.LEGACY_IOU))
    lookup = groundtruth_lookup(build_dataset(cfg, args.dataset, transforms=None, check_images=False))
    shares, labels_right, boxes = [], 0, 0
    for record in reader:
        gt = lookup(record.image_id)
        if mode == "sgcls":
            right, count = labels_matching(gt["labels"], record.prediction["labels"], record.image_id)
            labels_right, boxes = labels_right + right, boxes + count
        relations = np.asarray(gt["relations"]).reshape(-1, 3)
        if len(relations):
            shares.append(reached_triplets(gt["boxes"], gt["labels"], relations, record.prediction["boxes"],
                                           record.prediction["labels"], iou_threshold, legacy_iou)
                          / len(relations))
    results = json.load(open(os.path.join(folder, "results.json")))
    recalls = " / ".join(f"{100 * results[f'R@{k}']:.1f}" for k in (20, 50, 100))
    labels, ends = "", "the detections"
    if mode == "sgcls":
        labels = f"GT boxes given their GT label {100 * labels_right / max(boxes, 1):.1f} % of {boxes}; "
        ends = "the predicted labels"
    print(f"{args.run_dir}: {mode}, {len(shares)} images with relations; {labels}GT triplets reached by {ends} "
          f"{100 * float(np.mean(shares)):.1f} % (IoU >= {iou_threshold}, label right); R@20 / 50 / 100 {recalls}")


if __name__ == "__main__":
    main()
