#!/usr/bin/env python
"""Detector evaluation (COCO AP; SGB's ``mAp`` is AP@0.5) of a trained detector:

    python tools/detector_test_net.py --config-file configs/synthetic/detector_tiny_fpn.yaml [KEY VALUE ...]
    torchrun --nproc_per_node 2 tools/detector_test_net.py --config-file ... MODEL.WEIGHT path/to/model_final.pth

Weights: OUTPUT_DIR/last_checkpoint when it exists (as SGB's test tools), else MODEL.WEIGHT; they must fit the model
exactly. MODEL.ROI_BOX_HEAD.NUM_CLASSES must match the training dataset's classes (checked first, as in
detector_pretrain_net.py). The split is DATASETS.TO_TEST ("val" or "test"; empty = test). Prints ``Detection
evaluation mAp=...`` and writes OUTPUT_DIR/inference/<dataset>/detection_metrics.json.
"""
import logging

from sgg.engine import default_argument_parser, default_setup, load_trained_weights, resolve_device
from sgg.engine.detection import check_num_classes, dataset_label_names
from sgg.engine.detection_eval import test_detector
from sgg.modeling import build_detection_model

logger = logging.getLogger("sgg.tools.detector_test_net")


def main(argv=None) -> int:
    args = default_argument_parser("Evaluate a trained object detector").parse_args(argv)
    cfg = default_setup(args=args, save=False, log_name="log_test.txt")
    check_num_classes(cfg, dataset_label_names(cfg))  # before the model: a wrong count would only fail at loading
    model = build_detection_model(cfg).to(resolve_device(cfg))
    load_trained_weights(cfg, model)
    test_detector(cfg, model, cfg.DATASETS.TO_TEST or "test")
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
