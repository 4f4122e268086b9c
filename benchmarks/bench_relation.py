#!/usr/bin/env python
"""Relation head speed: training iterations per second and inference images per second for each baseline
predictor in each protocol at the synthetic (tiny-FPN) config on the CPU, and the peak memory of SGDet inference
with 80 detections per image (6,320 pairs).

    python benchmarks/bench_relation.py [--iters 10] [--images 16] [--predictors MotifPredictor ...]

Uses random weights and random 192x256 images with 6 GT boxes each; speed does not depend on what was learnt. The
detector is forced to keep 80 boxes in SGDet (score threshold 0), the worst case of SGB's setting.
"""
import argparse
import os
import resource
import time

import numpy as np
import torch

from sgg.config import load_config
from sgg.modeling.detector.scene_graph_rcnn import SceneGraphRCNN
from sgg.structures import BoxList, to_image_list

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "synthetic",
                      "relation_base.yaml")
PROTOCOLS = {"predcls": ("True", "True"), "sgcls": ("True", "False"), "sgdet": ("False", "False")}


def fake_statistics(num_classes=31, num_predicates=23):
    rng = np.random.default_rng(0)
    dist = rng.dirichlet(np.ones(num_predicates), size=(num_classes, num_classes)).astype(np.float32)
    return {"pred_dist": np.log(dist + 1e-3), "fg_matrix": np.ones((num_classes, num_classes, num_predicates)),
            "obj_classes": ["__background__"] + [f"c{i}" for i in range(1, num_classes)],
            "rel_classes": ["__background__"] + [f"p{i}" for i in range(1, num_predicates)]}


def fake_batch(batch_size, generator, num_boxes=6, size=(256, 192)):
    images, targets = [], []
    for _ in range(batch_size):
        images.append(torch.randn(3, size[1], size[0], generator=generator))
        xy = torch.rand(num_boxes, 2, generator=generator) * torch.tensor([size[0] - 60.0, size[1] - 60.0])
        wh = 20 + torch.rand(num_boxes, 2, generator=generator) * 40
        target = BoxList(torch.cat([xy, xy + wh], 1), size)
        target.add_field("labels", torch.randint(1, 31, (num_boxes,), generator=generator))
        relation = torch.zeros(num_boxes, num_boxes, dtype=torch.long)
        rels = [[i, i + 1, 1 + i % 22] for i in range(num_boxes - 1)]
        for s, o, p in rels:
            relation[s, o] = p
        target.add_field("relation", relation)
        target.add_field("relation_tuple", torch.tensor(rels))
        targets.append(target)
    return to_image_list(images, 32), targets


def build(predictor, protocol):
    box, label = PROTOCOLS[protocol]
    cfg = load_config(CONFIG, ["MODEL.ROI_RELATION_HEAD.PREDICTOR", predictor,
                               "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", box,
                               "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", label,
                               "MODEL.ROI_HEADS.SCORE_THRESH", "0.0", "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", "80",
                               "GLOVE_DIR", "/nonexistent"])
    return SceneGraphRCNN.from_config(cfg, fake_statistics()), cfg


def measure(predictor, protocol, iters, images):
    torch.manual_seed(0)
    model, cfg = build(predictor, protocol)
    generator = torch.Generator().manual_seed(0)
    batch = fake_batch(cfg.SOLVER.IMS_PER_BATCH, generator)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    model.train()
    for step in range(iters + 2):  # two warm-up steps
        if step == 2:
            start = time.perf_counter()
        losses = model(*batch)
        loss = sum(losses.values())
        optimizer.zero_grad()
        if loss.requires_grad:
            loss.backward()
        optimizer.step()
    train_its = iters / (time.perf_counter() - start)
    model.eval()
    test = [fake_batch(cfg.TEST.IMS_PER_BATCH, generator) for _ in range(max(images // cfg.TEST.IMS_PER_BATCH, 1))]
    pairs = 0
    with torch.no_grad():
        model(*test[0])
        start = time.perf_counter()
        for imgs, targets in test:
            for out in model(imgs, targets):
                pairs += len(out.get_field("rel_pair_idxs"))
    seconds = time.perf_counter() - start
    count = len(test) * cfg.TEST.IMS_PER_BATCH
    return train_its, count / seconds, pairs / count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--predictors", nargs="+",
                        default=["FrequencyPredictor", "MotifPredictor", "TransformerPredictor"])
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch 8 train / 8 test; tiny-FPN")
    print(f"{'predictor':<22} {'protocol':<8} {'train it/s':>10} {'test img/s':>10} {'pairs/img':>9}")
    for predictor in args.predictors:
        for protocol in PROTOCOLS:
            train_its, test_ips, pairs = measure(predictor, protocol, args.iters, args.images)
            print(f"{predictor:<22} {protocol:<8} {train_its:>10.2f} {test_ips:>10.1f} {pairs:>9.0f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of the whole run (SGDet with 80 boxes, 6,320 pairs per image included): {peak:.0f} MB")


if __name__ == "__main__":
    main()
