#!/usr/bin/env python
"""Scene-Graph-Benchmark.pytorch's pretrained Faster R-CNN (X-101-32x8d-FPN on VG150) as this framework's detector:

    python tools/convert_sgb_checkpoint.py --sgb-checkpoint pretrained_faster_rcnn/model_final.pth \
        --output checkpoints/sgb_detector_X101.pth [--config-file configs/e2e_relation_detector_X_101_32_8_FPN_1x.yaml]
    python tools/relation_train_net.py --config-file configs/e2e_relation_X_101_32_8_FPN_1x_sgb_detector.yaml \
        MODEL.PRETRAINED_DETECTOR_CKPT checkpoints/sgb_detector_X101.pth ...

Every tensor of SGB's detector is renamed onto the detector the config builds (sgg/utils/sgb_checkpoint.py lists the
rules); shapes must agree, nothing may be left over (SGB's relation / attribute heads are reported and skipped), and
the anchors stored in the checkpoint are checked against the config's. The output holds the converted weights and the
config, as a checkpoint of tools/detector_pretrain_net.py does. docs/demo.md lists the numeric conventions that differ.
"""
import argparse
import logging
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sgg.utils.errors import CheckpointError, one_line  # noqa: E402
from sgg.utils.sgb_checkpoint import convert_sgb_state_dict, sgb_state_dict  # noqa: E402

logger = logging.getLogger("sgg.tools.convert_sgb_checkpoint")
SGB_CONVENTIONS = ["MODEL.BOX_CODER_PLUS_ONE", "True", "MODEL.RPN.LEGACY_ANCHORS", "True",
                   "MODEL.RESNETS.FROZEN_BN_EPS", "0.0", "MODEL.ROI_BOX_HEAD.POOLER_LEGACY_LEVELS", "True",
                   "MODEL.ROI_BOX_HEAD.POOLER_ALIGNED", "False", "MODEL.RPN.FPN_POST_NMS_PER_LEVEL_CAP", "True",
                   "MODEL.NMS_PLUS_ONE", "True", "MODEL.CLIP_TO_LAST_PIXEL", "True",
                   "MODEL.ROI_HEADS.PROPOSAL_ORDER", "True"]
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                              "e2e_relation_detector_X_101_32_8_FPN_1x.yaml")


def build_detector(config_file: str, opts):
    from sgg.config import load_config
    from sgg.modeling.detector.generalized_rcnn import GeneralizedRCNN

    # every weight comes from the checkpoint: no ImageNet file is needed to build the network; the saved config
    # records SGB's numeric conventions, which a model using the converted detector should keep
    cfg = load_config(config_file, ["MODEL.RANDOM_INIT_BACKBONE", "True", "MODEL.RELATION_ON", "False",
                                    *SGB_CONVENTIONS, *opts])
    return cfg, GeneralizedRCNN.from_config(cfg)


def convert(sgb_path: str, config_file: str, opts=()):
    if not os.path.isfile(sgb_path):
        raise FileNotFoundError(f"--sgb-checkpoint: {sgb_path} does not exist")
    try:
        checkpoint = torch.load(sgb_path, map_location="cpu", weights_only=False)
    except Exception as err:  # pickle / zip errors of a damaged or foreign file
        raise CheckpointError(f"--sgb-checkpoint: {sgb_path} could not be read as a torch checkpoint: "
                              f"{one_line(err)}") from None
    try:
        state = sgb_state_dict(checkpoint)
    except ValueError as err:
        raise CheckpointError(f"--sgb-checkpoint: {sgb_path}: {err}") from None
    cfg, detector = build_detector(config_file, opts)
    anchors = detector.rpn.anchor_generator.num_anchors_per_location()
    converted, skipped = convert_sgb_state_dict(state, detector.state_dict(), len(anchors), anchors[0])
    detector.load_state_dict(converted, strict=True)
    return cfg, detector, converted, skipped


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Convert an SGB Faster R-CNN checkpoint to this framework")
    parser.add_argument("--sgb-checkpoint", required=True, help="SGB's detector model_final.pth")
    parser.add_argument("--output", required=True, help="converted checkpoint to write")
    parser.add_argument("--config-file", default=DEFAULT_CONFIG, help="the detector config it must fit")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        cfg, _, converted, skipped = convert(args.sgb_checkpoint, args.config_file, args.opts)
    except (FileNotFoundError, ValueError) as err:
        logger.error("%s", err)
        return 2
    reasons = sorted(set(skipped.values()))
    for reason in reasons:
        logger.info("skipped %d SGB tensors: %s", sum(1 for r in skipped.values() if r == reason), reason)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    torch.save({"model": converted, "config": cfg.dump(), "source": os.path.abspath(args.sgb_checkpoint)},
               args.output)
    logger.info("converted %d tensors into %s; use it as MODEL.PRETRAINED_DETECTOR_CKPT (or MODEL.WEIGHT of "
                "tools/detector_test_net.py) with %s and SGB's conventions: %s", len(converted), args.output,
                args.config_file, " ".join(SGB_CONVENTIONS))
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
