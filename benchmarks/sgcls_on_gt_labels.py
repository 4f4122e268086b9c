#!/usr/bin/env python
"""An SGCls-trained model tested with the GT labels (PredCls), beside its own SGCls result.

    python benchmarks/sgcls_on_gt_labels.py output/benchmark_vglike/VCTree/sgcls/seed0 --output-dir /tmp/vctree_gt

Reads the run's ``config.yaml`` and ``model_final.pth``, builds the same model in PredCls (``USE_GT_OBJECT_LABEL
True``), loads the weights without the ones PredCls has no use for (the object decoder of Motif / VCTree, which
SGCls alone builds; every weight the PredCls model has must be in the checkpoint) and tests it on DATASETS.TEST into
``--output-dir`` (never the run's folder, never over an earlier result). SGCls R@K falls short of PredCls R@K for two
reasons: wrong object labels at test, and a relation head that learned less from training on predicted labels.
This separates them: the SGCls-trained head's PredCls R@K against the PredCls-trained run's is the second
(BENCHMARKS.md, "VG-like comparison", the SGCls reading).
"""
import argparse
import json
import os


def keep_predcls_weights(state: dict, model_keys) -> tuple:
    """(the part of ``state`` the PredCls model has, the names dropped); a weight the model has and ``state``
    lacks is an error: the checkpoint is not this model's."""
    model_keys = set(model_keys)
    missing = sorted(model_keys - set(state))
    if missing:
        raise SystemExit(f"the checkpoint lacks {len(missing)} weights of the PredCls model (first: {missing[0]}); "
                         f"is it this run's?")
    kept = {k: v for k, v in state.items() if k in model_keys}
    return kept, sorted(set(state) - model_keys)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="an SGCls run's OUTPUT_DIR (config.yaml, model_final.pth, inference/)")
    parser.add_argument("--output-dir", required=True, help="where the PredCls test writes (a new folder)")
    args = parser.parse_args(argv)

    import torch

    from sgg.config import load_config
    from sgg.engine import resolve_device
    from sgg.engine.relation import build_scene_graph_model, load_statistics
    from sgg.engine.relation_eval import test_relations

    if os.path.realpath(args.output_dir) == os.path.realpath(args.run_dir):
        raise SystemExit("--output-dir: the run's own folder; give a new one (the run's SGCls results stay)")
    cfg = load_config(os.path.join(args.run_dir, "config.yaml"), [], freeze=False)
    head = cfg.MODEL.ROI_RELATION_HEAD
    if not head.USE_GT_BOX or head.USE_GT_OBJECT_LABEL:
        raise SystemExit(f"{args.run_dir}/config.yaml: not an SGCls run (USE_GT_BOX {head.USE_GT_BOX}, "
                         f"USE_GT_OBJECT_LABEL {head.USE_GT_OBJECT_LABEL}; SGCls is True, False)")
    dataset = cfg.DATASETS.TEST[0]
    results_path = os.path.join(args.output_dir, "inference", dataset, "results.json")
    if os.path.exists(results_path):
        raise SystemExit(f"--output-dir: {results_path} exists; give a new folder (nothing is overwritten)")
    own = json.load(open(os.path.join(args.run_dir, "inference", dataset, "results.json")))
    head.USE_GT_OBJECT_LABEL = True
    cfg.OUTPUT_DIR = args.output_dir
    cfg.freeze()

    statistics = load_statistics(cfg)
    model = build_scene_graph_model(cfg, statistics).to(resolve_device(cfg))  # MODEL.DEVICE, as the test tool
    checkpoint = torch.load(os.path.join(args.run_dir, "model_final.pth"), map_location="cpu", weights_only=False)
    state = checkpoint.get("model", checkpoint)
    kept, dropped = keep_predcls_weights(state, model.state_dict().keys())
    model.load_state_dict(kept, strict=True)
    print(f"loaded {len(kept)} weights; dropped {len(dropped)} that PredCls does not build"
          + (f" (e.g. {dropped[0]})" if dropped else ""))
    test_relations(cfg, model, statistics, "test")
    gt = json.load(open(results_path))

    def recalls(r):
        return " / ".join(f"{100 * r[f'R@{k}']:.1f}" for k in (20, 50, 100)) + f", mR@50 {100 * r['mR@50']:.1f}"
    print(f"{args.run_dir}: R@20 / 50 / 100 on its own labels (SGCls) {recalls(own)}; on the GT labels (PredCls) "
          f"{recalls(gt)}")


if __name__ == "__main__":
    main()
