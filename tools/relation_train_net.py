#!/usr/bin/env python
"""Relation training, as SGB's ``tools/relation_train_net.py``:

    python tools/relation_train_net.py --config-file configs/synthetic/relation_predcls.yaml \
        MODEL.ROI_RELATION_HEAD.PREDICTOR TransformerPredictor MODEL.PRETRAINED_DETECTOR_CKPT <detector>/model_final.pth
    torchrun --nproc_per_node 2 tools/relation_train_net.py --config-file ... (same flags)

The protocol follows MODEL.ROI_RELATION_HEAD.USE_GT_BOX / USE_GT_OBJECT_LABEL. Resumes from OUTPUT_DIR/last_checkpoint
when it exists (only when the config agrees with the run's; a new SOLVER.MAX_ITER needs SOLVER.EXTEND_RUN True:
docs/training.md), else loads MODEL.PRETRAINED_DETECTOR_CKPT into the (frozen) detector. Validates on DATASETS.VAL every
SOLVER.VAL_PERIOD (R@100 picks model_best.pth and drives the plateau schedule), then, unless --skip-test, evaluates the
final model on DATASETS.TEST and prints SGB's result block. Ctrl-C saves the last completed iteration and exits 130.
``--import my_head.py`` (repeatable; a .py file or a dotted module name) imports a head written outside sgg/ before
the config is read (docs/relation_head.md); relation_test_net.py takes the same option.
"""
import logging

from sgg.engine import Trainer, default_argument_parser, default_setup
from sgg.engine.relation import build_scene_graph_model, load_initial_weights, load_statistics
from sgg.engine.relation_eval import relation_val_fn, test_relations
from sgg.utils.module_loading import add_import_argument, import_user_modules

logger = logging.getLogger("sgg.tools.relation_train_net")


def main(argv=None) -> int:
    args = add_import_argument(default_argument_parser("Train a relation head")).parse_args(argv)
    import_user_modules(args.imports)  # a head outside sgg/ registers itself (and its config keys) first
    cfg = default_setup(args=args)
    statistics = load_statistics(cfg)
    model = build_scene_graph_model(cfg, statistics)
    val_fn = None
    if (cfg.SOLVER.TO_VAL or cfg.SOLVER.PRE_VAL) and cfg.DATASETS.VAL:
        val_fn = relation_val_fn(cfg, statistics)
    label_names = {"ind_to_classes": list(statistics["obj_classes"]),
                   "ind_to_predicates": list(statistics["rel_classes"])}
    trainer = Trainer(cfg, model, val_fn=val_fn, default_metric="R@100", label_names=label_names)
    if not trainer.checkpointer.has_checkpoint():
        load_initial_weights(cfg, model)
    trainer.resume_or_load()
    trainer.train()
    if not args.skip_test:
        if cfg.DATASETS.TEST:
            test_relations(cfg, trainer.model, statistics, "test")
        else:
            logger.warning("DATASETS.TEST is empty: nothing to test")
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
