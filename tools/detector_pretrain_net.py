#!/usr/bin/env python
"""Detector pre-training, as SGB's ``tools/detector_pretrain_net.py``:

    python tools/detector_pretrain_net.py --config-file configs/synthetic/detector_tiny_fpn.yaml [KEY VALUE ...]
    torchrun --nproc_per_node 4 tools/detector_pretrain_net.py --config-file configs/detector/vg150_X_101_32_8_FPN.yaml

Resumes from OUTPUT_DIR/last_checkpoint when it exists (only when the config agrees with the run's; a new
SOLVER.MAX_ITER needs SOLVER.EXTEND_RUN True: docs/training.md), else starts from MODEL.WEIGHT (weights only) if set.
Validates on DATASETS.VAL every SOLVER.VAL_PERIOD (COCO AP@0.5, kept as model_best.pth), then, unless --skip-test,
evaluates the final model on DATASETS.TEST and prints ``Detection evaluation mAp=...``. Ctrl-C saves the last
completed iteration and exits 130.
"""
import logging

from sgg.config import ConfigError
from sgg.data import build_data_loader
from sgg.engine import Trainer, default_argument_parser, default_setup, evaluate_detector
from sgg.engine.detection import check_num_classes, dataset_label_names
from sgg.engine.detection_eval import test_detector
from sgg.modeling import build_detection_model
from sgg.utils import comm

logger = logging.getLogger("sgg.tools.detector_pretrain_net")


def main(argv=None) -> int:
    args = default_argument_parser("Pre-train the object detector").parse_args(argv)
    cfg = default_setup(args=args)
    if cfg.MODEL.RELATION_ON:
        raise ConfigError("tools/detector_pretrain_net.py trains the detector alone: set MODEL.RELATION_ON False "
                          "(relation training is tools/relation_train_net.py)")
    label_names = dataset_label_names(cfg)
    check_num_classes(cfg, label_names)
    model = build_detection_model(cfg)

    val_fn = None
    if (cfg.SOLVER.TO_VAL or cfg.SOLVER.PRE_VAL) and cfg.DATASETS.VAL:
        val_loaders = build_data_loader(cfg, "val", is_distributed=comm.get_world_size() > 1)
        val_fn = lambda m: evaluate_detector(cfg, m, val_loaders)  # noqa: E731
    trainer = Trainer(cfg, model, val_fn=val_fn, default_metric="mAP", label_names=label_names)
    trainer.resume_or_load()
    trainer.train()

    if not args.skip_test:
        if not cfg.DATASETS.TEST:
            logger.warning("DATASETS.TEST is empty: nothing to test")
        else:
            test_detector(cfg, trainer.model, "test")
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
