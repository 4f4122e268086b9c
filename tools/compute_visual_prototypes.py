#!/usr/bin/env python
"""SPL's visual prototypes (METHODS.md 4.5): the class-mean union feature of every GT relation of the training split,
computed with the union-feature extractor of a trained baseline relation model (e.g. the TransformerPredictor).

    python tools/compute_visual_prototypes.py --config-file <baseline run>/config.yaml \
        --output <baseline run>/vis_protos.pt [MODEL.WEIGHT <baseline run>/model_final.pth] [KEY VALUE ...]

Weights: <OUTPUT_DIR>/last_checkpoint of the baseline when it exists, else MODEL.WEIGHT (as relation_test_net.py).
Images go through the test transforms, the union boxes are the GT subject/object boxes of each annotated relation.
Predicates without any relation (and the background row) get seeded N(0, 1) rows, as in the reference. The file is
``{"prototypes": (R, D), "counts": (R,), "predicates": names, "checkpoint": path}``; set VIS_PRO_PATH to it and
VIS_PRO_DIM / VIS_VAE_INPUT_DIM to D (MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM). One process (no torchrun).
"""
import argparse
import logging
import os


import torch

from sgg.config.sgg_config import ConfigError
from sgg.engine import default_setup, load_trained_weights, resolve_device
from sgg.engine.relation import build_scene_graph_model, load_statistics
from sgg.utils.errors import DataError

logger = logging.getLogger("sgg.tools.compute_visual_prototypes")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Class-mean union features of a trained relation model (SPL)")
    parser.add_argument("--config-file", required=True, metavar="FILE", help="the baseline run's config.yaml")
    parser.add_argument("--output", required=True, help="where to write the prototype file (.pt)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the N(0, 1) rows of predicates never seen")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides as KEY VALUE pairs")
    return parser.parse_args(argv)


@torch.no_grad()
def accumulate_union_features(model, loader, num_classes: int, device):
    """(sums (R, D) float64, counts (R,) int64) of the union features of every GT relation, by predicate."""
    from tqdm import tqdm

    head = model.relation_head
    if head.union_feature_extractor is None:
        raise ConfigError("the baseline model has no union-feature extractor (PREDICT_USE_VISION False, or a "
                          "predictor that reads no union features such as FrequencyPredictor): use a visual baseline")
    dim = head.union_feature_extractor.out_channels
    sums = torch.zeros(num_classes, dim, dtype=torch.float64)
    counts = torch.zeros(num_classes, dtype=torch.long)
    model.eval()
    for images, targets, _ in tqdm(loader, desc="union features", dynamic_ncols=True):
        images = model.detector.prepare_images(images.to(device))
        features = model.detector.extract_features(images)
        targets = [t.to(device) for t in targets]
        relations = [t.get_field("relation_tuple").long() for t in targets]
        if sum(len(r) for r in relations) == 0:
            continue
        union = head.union_feature_extractor(features, targets, [r[:, :2] for r in relations],
                                             list(images.image_sizes))
        labels = torch.cat(relations)[:, 2].cpu()
        if labels.numel() and int(labels.max()) >= num_classes:
            raise DataError(f"a GT predicate label {int(labels.max())} exceeds the {num_classes} predicate classes")
        sums.index_add_(0, labels, union.double().cpu())
        counts += torch.bincount(labels, minlength=num_classes)
    return sums, counts


def class_means(sums: torch.Tensor, counts: torch.Tensor, seed: int) -> torch.Tensor:
    """sums / counts per class; rows without samples (background, unseen predicates) are seeded N(0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(sums.shape, generator=generator, dtype=torch.float64)
    seen = counts > 0
    prototypes[seen] = sums[seen] / counts[seen, None].double()
    return prototypes.float()


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = default_setup(args.config_file, args.opts, save=False, log_name="log_visual_prototypes.txt")
    from sgg.data import build_data_loader

    statistics = load_statistics(cfg)
    device = resolve_device(cfg)
    model = build_scene_graph_model(cfg, statistics).to(device)
    weights = load_trained_weights(cfg, model)
    rel_classes = list(statistics["rel_classes"])
    sums = counts = None
    for loader in build_data_loader(cfg, "train", for_training=False):
        s, c = accumulate_union_features(model, loader, len(rel_classes), device)
        sums, counts = (s, c) if sums is None else (sums + s, counts + c)
    prototypes = class_means(sums, counts, args.seed)
    unseen = [rel_classes[i] for i in range(1, len(rel_classes)) if counts[i] == 0]
    if unseen:
        logger.warning("no training relation for %s: seeded random prototype rows", ", ".join(unseen))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    torch.save({"prototypes": prototypes, "counts": counts, "predicates": rel_classes, "checkpoint": weights},
               args.output)
    logger.info("visual prototypes %s of %d relations written to %s (set VIS_PRO_DIM and VIS_VAE_INPUT_DIM to %d)",
                tuple(prototypes.shape), int(counts.sum()), args.output, prototypes.shape[1])
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
