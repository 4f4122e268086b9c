#!/usr/bin/env python
"""Scene-Graph-Benchmark.pytorch checkpoints as this framework's: its pretrained Faster R-CNN (X-101-32x8d-FPN on VG150)
as a detector, or a trained SGB relation model (detector + relation head) as a whole scene graph model.

    python tools/convert_sgb_checkpoint.py --sgb-checkpoint pretrained_faster_rcnn/model_final.pth \
        --output checkpoints/sgb_detector_X101.pth [--config-file configs/e2e_relation_detector_X_101_32_8_FPN_1x.yaml]
    python tools/relation_train_net.py --config-file configs/e2e_relation_X_101_32_8_FPN_1x_sgb_detector.yaml \
        MODEL.PRETRAINED_DETECTOR_CKPT checkpoints/sgb_detector_X101.pth ...

    python tools/convert_sgb_checkpoint.py --sgb-checkpoint <SGB motif predcls run>/model_final.pth \
        --output checkpoints/sgb_motif_predcls.pth \
        --config-file configs/e2e_relation_X_101_32_8_FPN_1x_sgb_detector.yaml \
        MODEL.ROI_RELATION_HEAD.PREDICTOR MotifPredictor MODEL.ROI_RELATION_HEAD.USE_GT_BOX True \
        MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL True
    python tools/relation_test_net.py --config-file <the same config and options> MODEL.WEIGHT checkpoints/...pth

Every tensor of SGB's detector is renamed onto the detector the config builds (sgg/utils/sgb_checkpoint.py lists the
rules); shapes must agree, nothing may be left over, and the anchors stored in the checkpoint are checked against the
config's. With a relation config (``MODEL.RELATION_ON True``) and a checkpoint that holds SGB's relation head
(``roi_heads.relation.*``), the relation head is converted too (sgg/utils/sgb_relation_checkpoint.py: the box and
union feature extractors and the MotifPredictor / TransformerPredictor / VCTreePredictor / IMPPredictor weights; the
predictor is recognised from the keys and must be the config's), and the SGB keys without a counterpart here are
listed with the reason. Otherwise SGB's relation and attribute heads are reported and skipped. The output holds the converted weights and the config
(and the label names when the config's dataset is on this machine), as a checkpoint of tools/detector_pretrain_net.py
or tools/relation_train_net.py does. docs/detector.md lists the numeric conventions that differ ("SGB's numeric
conventions") and what the relation mapping does ("SGB checkpoints").
"""
import argparse
import logging
import os
import warnings

import torch

from sgg.utils.errors import CheckpointError, one_line
from sgg.utils.sgb_checkpoint import convert_sgb_state_dict, sgb_state_dict
from sgg.utils.sgb_relation_checkpoint import (convert_sgb_relation_state, dropped_summary,
                                               split_relation_state)

logger = logging.getLogger("sgg.tools.convert_sgb_checkpoint")
SGB_CONVENTIONS = ["MODEL.BOX_CODER_PLUS_ONE", "True", "MODEL.RPN.LEGACY_ANCHORS", "True",
                   "MODEL.RESNETS.FROZEN_BN_EPS", "0.0", "MODEL.ROI_BOX_HEAD.POOLER_LEGACY_LEVELS", "True",
                   "MODEL.ROI_BOX_HEAD.POOLER_ALIGNED", "False", "MODEL.RPN.FPN_POST_NMS_PER_LEVEL_CAP", "True",
                   "MODEL.NMS_PLUS_ONE", "True", "MODEL.CLIP_TO_LAST_PIXEL", "True",
                   "MODEL.ROI_HEADS.PROPOSAL_ORDER", "True"]
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                              "e2e_relation_detector_X_101_32_8_FPN_1x.yaml")


def load_sgb_config(config_file: str, opts):
    from sgg.config import load_config

    # every weight comes from the checkpoint: no ImageNet file is needed to build the network; the saved config
    # records SGB's numeric conventions, which a model using the converted weights should keep
    return load_config(config_file, ["MODEL.RANDOM_INIT_BACKBONE", "True", *SGB_CONVENTIONS, *opts])


def build_detector(cfg):
    """The detector of ``cfg`` and its config with MODEL.RELATION_ON False (what a detector checkpoint records)."""
    from sgg.modeling.detector.generalized_rcnn import GeneralizedRCNN

    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.RELATION_ON = False
    cfg.freeze()
    return cfg, GeneralizedRCNN.from_config(cfg)


def label_names_of(cfg):
    """The dataset's class and predicate names when its dictionary file is on this machine (tools/demo.py reads
    them from the checkpoint), else None."""
    from sgg.engine.detection import dataset_label_names

    try:
        return dataset_label_names(cfg)
    except Exception:  # no catalog entry or no dictionary file here: the demo then needs DATASETS.DATA_DIR
        return None


def build_scene_graph_model(cfg, label_names):
    """The whole model of a relation config, sized by the config alone: the checkpoint overwrites every learnt table,
    so the statistics are placeholders and the label embeddings' GloVe file is not read."""
    from sgg.engine.relation import build_scene_graph_model as build
    from sgg.predict import placeholder_statistics

    if label_names:
        obj_classes, rel_classes = label_names["ind_to_classes"], label_names["ind_to_predicates"]
    else:
        obj_classes = [f"class_{i}" for i in range(cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES)]
        rel_classes = [f"predicate_{i}" for i in range(cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES)]
    build_cfg = cfg.clone()
    build_cfg.defrost()
    build_cfg.GLOVE_DIR = os.path.join(os.devnull, "no_glove")  # never a folder: no GloVe file is read
    build_cfg.freeze()
    word_vectors = logging.getLogger("sgg.utils.word_vectors")
    level = word_vectors.level
    word_vectors.setLevel(logging.ERROR)  # its "no GloVe file: random vectors" notice does not apply here
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="word vectors glove")
            return build(build_cfg, placeholder_statistics(obj_classes, rel_classes))
    finally:
        word_vectors.setLevel(level)


def read_sgb_checkpoint(sgb_path: str):
    if not os.path.isfile(sgb_path):
        raise FileNotFoundError(f"--sgb-checkpoint: {sgb_path} does not exist")
    try:
        checkpoint = torch.load(sgb_path, map_location="cpu", weights_only=False)
    except Exception as err:  # pickle / zip errors of a damaged or foreign file
        raise CheckpointError(f"--sgb-checkpoint: {sgb_path} could not be read as a torch checkpoint: "
                              f"{one_line(err)}") from None
    try:
        return sgb_state_dict(checkpoint)
    except ValueError as err:
        raise CheckpointError(f"--sgb-checkpoint: {sgb_path}: {err}") from None


def convert(sgb_path: str, config_file: str, opts=()):
    """(config, model, converted state dict, skipped SGB keys with the reason). The model is the whole scene graph
    model when the config has MODEL.RELATION_ON and the checkpoint SGB's relation head, else the detector."""
    state = read_sgb_checkpoint(sgb_path)
    cfg = load_sgb_config(config_file, opts)
    rest, relation = split_relation_state(state)
    if cfg.MODEL.RELATION_ON and not relation:
        logger.info("%s holds no SGB relation head (roi_heads.relation.*): converting the detector only", sgb_path)
    if not (cfg.MODEL.RELATION_ON and relation):
        detector_cfg, detector = build_detector(cfg)
        converted, skipped = convert_detector(state, detector)
        detector.load_state_dict(converted, strict=True)
        return detector_cfg, detector, converted, skipped
    model = build_scene_graph_model(cfg, label_names_of(cfg))
    converted, skipped = convert_detector(rest, model.detector)
    prefix = "relation_head."
    relation_target = {k[len(prefix):]: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    relation_converted, dropped = convert_sgb_relation_state(relation, relation_target,
                                                             cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR)
    full = {**{f"detector.{k}": v for k, v in converted.items()},
            **{prefix + k: v for k, v in relation_converted.items()}}
    unfilled = sorted(set(model.state_dict()) - set(full))
    if unfilled:  # a part of the model outside the detector and the relation head
        raise CheckpointError(f"the SGB checkpoint provides nothing for {len(unfilled)} tensors of this model, e.g. "
                              f"{unfilled[:4]}")
    model.load_state_dict(full, strict=True)
    return cfg, model, full, {**skipped, **dropped}


def convert_detector(state, detector):
    """SGB's detector tensors of ``state`` onto ``detector``'s names (its anchors checked), and the skipped keys."""
    anchors = detector.rpn.anchor_generator.num_anchors_per_location()
    return convert_sgb_state_dict(state, detector.state_dict(), len(anchors), anchors[0])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Convert an SGB checkpoint (detector, or detector + relation head) "
                                                 "to this framework")
    parser.add_argument("--sgb-checkpoint", required=True, help="SGB's model_final.pth (detector or relation run)")
    parser.add_argument("--output", required=True, help="converted checkpoint to write")
    parser.add_argument("--config-file", default=DEFAULT_CONFIG,
                        help="the config it must fit: a detector config, or a relation config to convert SGB's "
                             "relation head too")
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
    for line in dropped_summary(skipped):
        logger.info("%s", line)
    output = {"model": converted, "config": cfg.dump(), "source": os.path.abspath(args.sgb_checkpoint),
              "sgb_skipped": skipped}  # SGB key -> why it has no counterpart here
    relation = cfg.MODEL.RELATION_ON
    label_names = label_names_of(cfg) if relation else None
    if label_names:
        output["label_names"] = label_names
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    torch.save(output, args.output)
    if relation:
        logger.info("converted %d tensors (detector and %s) into %s; use it as MODEL.WEIGHT of "
                    "tools/relation_test_net.py / relation_train_net.py, or --checkpoint of tools/demo.py, with %s, "
                    "the same options and SGB's conventions: %s", len(converted),
                    cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR, args.output, args.config_file, " ".join(SGB_CONVENTIONS))
    else:
        logger.info("converted %d tensors into %s; use it as MODEL.PRETRAINED_DETECTOR_CKPT (or MODEL.WEIGHT of "
                    "tools/detector_test_net.py) with %s and SGB's conventions: %s", len(converted), args.output,
                    args.config_file, " ".join(SGB_CONVENTIONS))
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
