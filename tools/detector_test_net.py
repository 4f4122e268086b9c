#!/usr/bin/env python
"""Detector evaluation (COCO AP; SGB's ``mAp`` is AP@0.5) of a trained detector:

    python tools/detector_test_net.py --config-file configs/synthetic/detector_tiny_fpn.yaml [KEY VALUE ...]
    torchrun --nproc_per_node 2 tools/detector_test_net.py --config-file ... MODEL.WEIGHT path/to/model_final.pth

Weights: OUTPUT_DIR/last_checkpoint when it exists (as SGB's test tools), else MODEL.WEIGHT; they must fit the model
exactly. The split is DATASETS.TO_TEST ("val" or "test"; empty = test). Prints ``Detection evaluation mAp=...`` and
writes OUTPUT_DIR/inference/<dataset>/detection_metrics.json.
"""
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sgg.engine import default_argument_parser, default_setup, resolve_device  # noqa: E402
from sgg.engine.detection import test_detector  # noqa: E402
from sgg.modeling import build_detection_model  # noqa: E402
from sgg.utils.checkpoint import LAST_CHECKPOINT, Checkpointer  # noqa: E402

logger = logging.getLogger("sgg.tools.detector_test_net")


def main(argv=None) -> int:
    args = default_argument_parser("Evaluate a trained object detector").parse_args(argv)
    cfg = default_setup(args=args, save=False, log_name="log_test.txt")
    model = build_detection_model(cfg).to(resolve_device(cfg))
    checkpointer = Checkpointer(model, save_dir=cfg.OUTPUT_DIR, cfg=cfg)
    if checkpointer.has_checkpoint():
        checkpointer.load_weights(checkpointer.get_checkpoint_file(),
                                  key=os.path.join(cfg.OUTPUT_DIR, LAST_CHECKPOINT), strict=True)
    elif cfg.MODEL.WEIGHT:
        checkpointer.load_weights(cfg.MODEL.WEIGHT, key="MODEL.WEIGHT", strict=True)
    else:
        raise FileNotFoundError(f"nothing to test: {os.path.join(cfg.OUTPUT_DIR, LAST_CHECKPOINT)} does not exist "
                                "and MODEL.WEIGHT is empty; point OUTPUT_DIR at a training output or set MODEL.WEIGHT")
    test_detector(cfg, model, cfg.DATASETS.TO_TEST or "test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
