#!/usr/bin/env python
"""What the VG150 comparison (configs/benchmark_vg150.yaml) would cost: the measured per-image cost of a training
step and of inference for each model at VG150 scale, times the images each experiment of the list trains on
(SOLVER.MAX_ITER x SOLVER.IMS_PER_BATCH of its merged config) and tests on (the 26,446 VG150 test images).

    python benchmarks/bench_vg150_cost.py [--models Motif Transformer ...] [--protocols predcls ...] [--iters 2]

Each model is built from its VG150 config with random weights (no detector checkpoint, ImageNet weights or GloVe is
needed: speed does not depend on what was learnt) and fed 600 x 800 images (VG's usual size after the 600 / 1,000
resize; 800 x 1,066 for IterativeSG and its DETR, their test size) with 12 GT boxes and 6 relations each, VG150's
averages; SGDet keeps 80 detections (score threshold 0, SGB's worst case, 6,320 pairs). A training step is forward, backward and an SGD step on one image; inference is one image.
The debiasing variants (CCE + Ranker, BA-SGG stage 2, reweighting, cdl, the SPL VAEs) change the loss or add a small
module on the same network, so each experiment is costed with its predictor's measurement (COST_MODEL). Only
training and testing are counted, not the prerequisites a recipe trains first (they are the list's own CE rows) nor
the once-off confusion-matrix and prototype passes; the DETR pre-training of the IterativeSG rows is its own row.

The measurement is on this machine's CPU; there is no GPU here. The GPU column is calibrated against a published
number: in the same process the script also times a training step of torchvision's Faster R-CNN R-50-FPN on one
800 x 1,200 image, the network and input scale of detectron2's model-zoo "R50-FPN 1x" whose published training speed
is 0.210 s per iteration of 16 images on 8 V100s, i.e. REFERENCE_GPU_SECONDS = 0.105 s per image per GPU. GPU time =
CPU time x 0.105 / (that CPU step). It assumes every model speeds up on a GPU as Faster R-CNN does: an estimate.
"""
import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from sgg.benchmarking.runner import PROTOCOL_SWITCHES, load_benchmark_spec
from sgg.config import load_config
from sgg.modeling.detector.detectors import meta_architecture_name
from sgg.modeling.registry import META_ARCHITECTURES
from sgg.structures import BoxList, to_image_list

REFERENCE_GPU_SECONDS = 0.105  # detectron2 R50-FPN 1x: 0.210 s/iteration, 16 images on 8 V100s
TEST_IMAGES = 26446
IMAGE_SIZE = (800, 600)  # (w, h): SGB's 600 / 1,000 resize of a 4:3 VG image
DETR_IMAGE_SIZE = (1066, 800)  # IterativeSG and its DETR train at 480-800 / 1,333 and test at 800
BASE = "configs/e2e_relation_X_101_32_8_FPN_1x.yaml"
MODELS = {  # name: (config, opts, protocols)
    "FREQ": (BASE, ["MODEL.ROI_RELATION_HEAD.PREDICTOR", "FrequencyPredictor"], None),
    "Motif": (BASE, ["MODEL.ROI_RELATION_HEAD.PREDICTOR", "MotifPredictor"], None),
    "Transformer": (BASE, ["MODEL.ROI_RELATION_HEAD.PREDICTOR", "TransformerPredictor"], None),
    "VCTree": (BASE, ["MODEL.ROI_RELATION_HEAD.PREDICTOR", "VCTreePredictor"], None),
    "IMP": (BASE, ["MODEL.ROI_RELATION_HEAD.PREDICTOR", "IMPPredictor"], None),
    "Causal-Motifs": ("configs/causal/causal_motifs.yaml", [], None),
    "LinkNet": ("configs/linknet/linknet_ce.yaml", [], None),
    "PE-Net": ("configs/penet/penet.yaml", ["MODEL.USE_REWEIGHT", "none", "MODEL.ROI_RELATION_HEAD.LOSS",
                                            '("RelationCE", "ObjectCE", "PENetEuclidean")'], None),
    "HCA": ("configs/hca/hca_ce.yaml", [], None),
    "IterativeSG": ("configs/iterative_sg/vg150_R101.yaml", [], ["sgdet"]),
    "DETR": ("configs/iterative_sg/vg150_detr_R101.yaml", [], ["sgdet"]),  # IterativeSG's pre-training (detection)
}
PRETRAINING = {"IterativeSG": "DETR", "IterativeSG-no-weights": "DETR"}  # once, shared by these rows
COST_MODEL = {"FREQ": "FREQ", "Motif": "Motif", "Transformer": "Transformer", "LinkNet": "LinkNet", "PE-Net": "PE-Net",
              "SPL": "PE-Net", "HCA": "HCA", "IterativeSG": "IterativeSG", "Transformer+CCE+Ranker": "Transformer",
              "LinkNet+CCE+Ranker": "LinkNet", "Transformer+BA-SGG": "Transformer", "Motif+BA-SGG": "Motif",
              "Transformer+Reweight": "Transformer", "PE-Net+Reweight": "PE-Net", "SPL+Reweight": "PE-Net",
              "IterativeSG-no-weights": "IterativeSG", "Transformer+cdl": "Transformer", "HCA+cdl": "HCA",
              "HCA+cdl+BA-SGG": "HCA", "VCTree": "VCTree", "IMP": "IMP", "Causal-Motifs": "Causal-Motifs",
              "Motifs-TDE": "Causal-Motifs"}


def fake_statistics(num_classes=151, num_predicates=51):
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 1000, size=(num_classes, num_classes, num_predicates)).astype(np.float64)
    counts[:, :, 0] = 0
    dist = counts / counts.sum(-1, keepdims=True).clip(min=1)
    return {"pred_dist": np.log(dist + 1e-3).astype(np.float32), "fg_matrix": counts,
            "obj_classes": ["__background__"] + [f"c{i}" for i in range(1, num_classes)],
            "rel_classes": ["__background__"] + [f"p{i}" for i in range(1, num_predicates)],
            "predicate_counts": counts.sum((0, 1))}


def fake_image(generator, size=IMAGE_SIZE, num_boxes=12, num_rels=6):
    width, height = size
    xy = torch.rand(num_boxes, 2, generator=generator) * torch.tensor([width - 200.0, height - 200.0])
    wh = 40 + torch.rand(num_boxes, 2, generator=generator) * 160
    target = BoxList(torch.cat([xy, xy + wh], 1), size)
    target.add_field("labels", torch.randint(1, 151, (num_boxes,), generator=generator))
    rels = torch.tensor([[i, i + 1, 1 + i % 50] for i in range(num_rels)])
    relation = torch.zeros(num_boxes, num_boxes, dtype=torch.long)
    relation[rels[:, 0], rels[:, 1]] = rels[:, 2]
    target.add_field("relation", relation)
    target.add_field("relation_tuple", rels)
    return torch.randn(3, height, width, generator=generator), target


def build(model_name, protocol):
    config, opts, _ = MODELS[model_name]
    box, label = PROTOCOL_SWITCHES[protocol]
    cfg = load_config(os.path.join(REPO, config), [
        *opts, "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", box, "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", label,
        "MODEL.RANDOM_INIT_BACKBONE", "True", "MODEL.PRETRAINED_BACKBONE_PATH", "", "GLOVE_DIR", "/nonexistent",
        "MODEL.ROI_HEADS.SCORE_THRESH", "0.0", "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", "80", "DTYPE", "float32"])
    meta = META_ARCHITECTURES.get(meta_architecture_name(cfg))
    if not cfg.MODEL.RELATION_ON:  # the DETR detector
        return meta.from_config(cfg)
    return meta.from_config(cfg, fake_statistics())


def measure(model_name, protocol, iters):
    """(train seconds per image, test seconds per image): medians over ``iters`` steps after one warm-up."""
    torch.manual_seed(0)
    model = build(model_name, protocol)
    size = DETR_IMAGE_SIZE if model_name in ("IterativeSG", "DETR") else IMAGE_SIZE
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()
    train_times = []
    for step in range(iters + 1):
        image, target = fake_image(generator, size)
        start = time.perf_counter()
        loss = sum(model(to_image_list([image], 32), [target]).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            train_times.append(time.perf_counter() - start)
    model.eval()
    test_times = []
    with torch.no_grad():
        for step in range(iters + 1):
            image, target = fake_image(generator, size)
            start = time.perf_counter()
            model(to_image_list([image], 32), [target])
            if step:
                test_times.append(time.perf_counter() - start)
    return statistics.median(train_times), statistics.median(test_times)


def measure_reference(iters):
    """CPU seconds of one training step of torchvision's Faster R-CNN R-50-FPN on an 800 x 1,200 image."""
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=81, min_size=800, max_size=1333)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    model.train()
    times = []
    for step in range(iters + 1):
        xy = torch.rand(12, 2, generator=generator) * torch.tensor([1000.0, 600.0])
        target = {"boxes": torch.cat([xy, xy + 40 + 160 * torch.rand(12, 2, generator=generator)], 1),
                  "labels": torch.randint(1, 81, (12,), generator=generator)}
        image = torch.rand(3, 800, 1200, generator=generator)
        start = time.perf_counter()
        loss = sum(model([image], [target]).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def days(seconds):
    return seconds / 86400


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", default=os.path.join(REPO, "configs", "benchmark_vg150.yaml"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOL_SWITCHES), choices=list(PROTOCOL_SWITCHES))
    parser.add_argument("--iters", type=int, default=2, help="timed steps per model and protocol (after a warm-up)")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
          f"one {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} image per step ({DETR_IMAGE_SIZE[0]}x{DETR_IMAGE_SIZE[1]} for "
          f"IterativeSG and DETR); medians of {args.iters} steps")
    reference = measure_reference(args.iters)
    speedup = reference / REFERENCE_GPU_SECONDS
    print(f"calibration: torchvision Faster R-CNN R-50-FPN training step, 800x1200: {reference:.2f} s on this CPU vs "
          f"{REFERENCE_GPU_SECONDS} s per image on a V100 (detectron2 model zoo) -> GPU = CPU / {speedup:.0f}")
    costs = {}
    print("\n| model | protocol | train s/image (CPU) | test s/image (CPU) |\n|---|---|---:|---:|")
    for name in args.models:
        for protocol in args.protocols:
            if MODELS[name][2] and protocol not in MODELS[name][2]:
                continue
            costs[name, protocol] = measure(name, protocol, args.iters)
            print(f"| {name} | {protocol} | {costs[name, protocol][0]:.2f} | {costs[name, protocol][1]:.2f} |",
                  flush=True)

    spec = load_benchmark_spec(args.experiments)
    print(f"\nEstimated wall time of {os.path.relpath(args.experiments, REPO)} per run (training + testing "
          f"{TEST_IMAGES:,} images); GPU = CPU / {speedup:.0f} (see the module docstring)\n")
    print("| experiment | protocol | iterations x batch | CPU days | GPU hours (1 GPU) |\n|---|---|---|---:|---:|")
    total_gpu = 0.0
    detr_cfg = load_config(os.path.join(REPO, MODELS["DETR"][0]), [])
    if ("DETR", "sgdet") in costs and any(e.name in PRETRAINING for e in spec.experiments):
        seconds = detr_cfg.SOLVER.MAX_ITER * detr_cfg.SOLVER.IMS_PER_BATCH * costs["DETR", "sgdet"][0]
        total_gpu += seconds / speedup / 3600
        print(f"| DETR pre-training (once, for the IterativeSG rows) | detection | {detr_cfg.SOLVER.MAX_ITER:,} x "
              f"{detr_cfg.SOLVER.IMS_PER_BATCH} | {days(seconds):.0f} | {seconds / speedup / 3600:.0f} |")
    for exp in spec.experiments:
        model = COST_MODEL.get(exp.name)
        cfg = load_config(os.path.join(REPO, exp.config), exp.opts)
        images = cfg.SOLVER.MAX_ITER * cfg.SOLVER.IMS_PER_BATCH
        for protocol in exp.protocols:
            if (model, protocol) not in costs:
                continue
            train, test = costs[model, protocol]
            seconds = images * train + TEST_IMAGES * test
            total_gpu += seconds / speedup / 3600
            print(f"| {exp.name} | {protocol} | {cfg.SOLVER.MAX_ITER:,} x {cfg.SOLVER.IMS_PER_BATCH} | "
                  f"{days(seconds):.0f} | {seconds / speedup / 3600:.0f} |")
    print(f"\nTotal of the rows above: about {total_gpu:,.0f} GPU hours ({total_gpu / 24:.0f} GPU days).")


if __name__ == "__main__":
    main()
