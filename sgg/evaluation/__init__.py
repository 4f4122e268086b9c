"""Scene graph evaluation: SGB-exact VG150 relation metrics, detector AP and compact prediction files.

See docs/evaluation.md for the metric definitions and the documented choices.
"""
from .coco_eval import evaluate_detections
from .matching import box_iou, first_match_ranks, paired_iou
from .prediction_file import (PredictionFileReader, PredictionFileWriter, PredictionRecord,
                              evaluate_prediction_file, read_prediction_file)
from .predicate_split import split_head_body_tail
from .ranking import RankedPrediction, rank_prediction, stable_topk
from .relation_nms import relation_nms
from .report import format_results, write_results
from .sg_evaluator import SceneGraphEvaluator

__all__ = [
    "SceneGraphEvaluator", "split_head_body_tail", "evaluate_detections", "PredictionFileWriter",
    "PredictionFileReader", "PredictionRecord", "read_prediction_file", "evaluate_prediction_file",
    "write_results", "format_results", "RankedPrediction", "rank_prediction", "stable_topk", "relation_nms",
    "box_iou", "paired_iou", "first_match_ranks",
]
