"""Detector evaluation with pycocotools, following SGB's conventions (PROTOCOL.md 2.1).

GT and predicted boxes become COCO ``[x1, y1, x2 - x1 + 1, y2 - y1 + 1]`` (maskrcnn's +1 width), GT areas use the
same widths, ``iscrowd`` is 0 and the categories are 1..num_classes-1. SGB's "mAp" is ``stats[1]``, AP at IoU 0.5
(maxDets 100, all areas). In predcls SGB scores the GT labels with score 1; pass them as the prediction to match.
"""
from __future__ import annotations

import contextlib
import io
import logging
from typing import Mapping, Sequence

import numpy as np

from .inputs import to_numpy

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

logger = logging.getLogger(__name__)


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1])


def evaluate_detections(groundtruths: Sequence[Mapping], predictions: Sequence[Mapping], num_classes: int,
                        quiet: bool = True) -> dict:
    """COCO box AP of per-image predictions (``boxes`` xyxy, ``labels``, ``scores``) against per-image GT
    (``boxes``, ``labels``), image i of one list belonging to image i of the other.

    Returns ``{"mAP": AP50, "AP": ..., "AP50": ..., ... "ARl": ...}`` (the twelve COCO stats by name). With
    ``quiet`` pycocotools' printing is captured and sent to the debug log. With no predictions at all every stat
    is 0.0 (pycocotools cannot load an empty result set).
    """
    # lazy: pycocotools is compiled code that some platforms lack; the relation evaluator never needs it
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(groundtruths) != len(predictions):
        raise ValueError(f"{len(groundtruths)} ground truths but {len(predictions)} predictions")
    annotations, detections = [], []
    for image_id, (gt, pred) in enumerate(zip(groundtruths, predictions)):
        for name, mapping, fields in (("groundtruth", gt, ("boxes", "labels")),
                                      ("prediction", pred, ("boxes", "labels", "scores"))):
            for field in fields:
                if field not in mapping:
                    raise ValueError(f"image {image_id}: {name} field {field!r}: missing")
        gt_boxes = _xywh(to_numpy(gt["boxes"]))
        gt_labels = to_numpy(gt["labels"]).astype(np.int64).reshape(-1)
        if len(gt_labels) != len(gt_boxes):
            raise ValueError(f"image {image_id}: groundtruth field 'labels': expected {len(gt_boxes)} labels")
        for box, label in zip(gt_boxes.tolist(), gt_labels.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label),
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
        boxes = _xywh(to_numpy(pred["boxes"]))
        scores = to_numpy(pred["scores"]).astype(np.float64).reshape(-1)
        labels = to_numpy(pred["labels"]).astype(np.float64).reshape(-1)
        if not (len(boxes) == len(scores) == len(labels)):
            raise ValueError(f"image {image_id}: prediction fields 'boxes', 'scores', 'labels': expected equal "
                             f"lengths, got {len(boxes)}, {len(scores)}, {len(labels)}")
        if len(boxes):
            detections.append(np.column_stack([np.full(len(boxes), image_id), boxes, scores, labels]))

    if not detections:
        return {"mAP": 0.0, **{name: 0.0 for name in STAT_NAMES}}
    coco_gt = COCO()
    coco_gt.dataset = {
        "info": {"description": "scene graph detector evaluation"},
        "images": [{"id": i} for i in range(len(groundtruths))],
        "categories": [{"id": c, "name": str(c), "supercategory": "object"} for c in range(1, num_classes)],
        "annotations": annotations,
    }
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(np.concatenate(detections, axis=0))
        coco_eval = COCOeval(coco_gt, coco_dt, "bbox")
        coco_eval.params.imgIds = list(range(len(groundtruths)))
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    if quiet:
        logger.debug("pycocotools output:\n%s", sink.getvalue())
    stats = [float(s) for s in coco_eval.stats]
    out = {"mAP": stats[1]}
    out.update(zip(STAT_NAMES, stats))
    return out
