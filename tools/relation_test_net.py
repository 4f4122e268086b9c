#!/usr/bin/env python
"""Relation evaluation of a trained scene graph model, as SGB's ``tools/relation_test_net.py``:

    python tools/relation_test_net.py --config-file configs/synthetic/relation_predcls.yaml [MODEL.WEIGHT ckpt.pth]

Weights: OUTPUT_DIR/last_checkpoint when it exists (as SGB), else MODEL.WEIGHT; they must fit exactly. The split is
DATASETS.TO_TEST (train / val / test; empty = test). Prints SGB's result block and writes results.json,
results.txt and (TEST.RELATION.SAVE_PREDICTIONS) the compact prediction file predictions.sgg to
OUTPUT_DIR/inference/<dataset>/; re-evaluate that file later with tools/evaluate.py. ``--import my_head.py``
(repeatable) imports a head written outside sgg/ first, as for relation_train_net.py.
"""
import logging

from sgg.engine import default_argument_parser, default_setup, load_trained_weights, resolve_device
from sgg.engine.relation import build_scene_graph_model, load_statistics
from sgg.engine.relation_eval import test_relations
from sgg.utils.module_loading import add_import_argument, import_user_modules

logger = logging.getLogger("sgg.tools.relation_test_net")


def main(argv=None) -> int:
    args = add_import_argument(default_argument_parser("Evaluate a trained scene graph model")).parse_args(argv)
    import_user_modules(args.imports)  # a head outside sgg/ registers itself (and its config keys) first
    cfg = default_setup(args=args, save=False, log_name="log_test.txt")
    statistics = load_statistics(cfg)
    model = build_scene_graph_model(cfg, statistics).to(resolve_device(cfg))
    load_trained_weights(cfg, model)
    test_relations(cfg, model, statistics, cfg.DATASETS.TO_TEST or "test")
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
