#!/usr/bin/env python
"""How much object-class information each backbone map holds at the GT boxes: a linear probe.

    python benchmarks/probe_backbone_classes.py --weights output/synthetic/detector/model_final.pth

For the training images of the config's dataset, every GT box is RoI-average-pooled (1 x 1, torchvision roi_align)
from each FPN map of the backbone loaded from --weights (keys ``backbone.*`` of a detector or DETR checkpoint), and
from each map average-pooled to stride 16 (``--pooled-stride``: what ``MODEL.DETR.SOURCE_FEATURE_STRIDE`` feeds the
transformer). A multinomial logistic regression on the standardised features is fitted on 70% of the boxes and its
class accuracy measured on the other 30%. A map whose accuracy is near chance cannot tell a transformer which object
it looks at, however long it trains (BENCHMARKS.md, "IterativeSG").
"""
import argparse
import os

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from sgg.config import load_config
from sgg.data import build_data_loader
from sgg.modeling.backbone import build_backbone
from sgg.modeling.iterative_sg.backbone_input import load_backbone_weights


def collect(backbone, loader, batches, pooled_stride):
    """{map name: (N, C) pooled features}, (N,) labels."""
    features, labels = {}, []
    iterator = iter(loader)
    for _ in range(batches):
        images, targets, _ = next(iterator)
        with torch.no_grad():
            maps = backbone(images.tensors)
        boxes = [t.convert("xyxy").bbox for t in targets]
        labels.append(torch.cat([t.get_field("labels") for t in targets]))
        for name, stride in backbone.feature_strides.items():
            if name not in maps or stride > pooled_stride:
                continue
            variants = {f"{name} (stride {stride})": (maps[name], stride)}
            if stride < pooled_stride:
                pooled = F.avg_pool2d(maps[name], pooled_stride // stride, ceil_mode=True)
                variants[f"{name} pooled to stride {pooled_stride}"] = (pooled, pooled_stride)
            for key, (fmap, scale) in variants.items():
                pooled_boxes = roi_align(fmap, boxes, output_size=1, spatial_scale=1.0 / scale, sampling_ratio=2,
                                         aligned=True).flatten(1)
                features.setdefault(key, []).append(pooled_boxes)
    return {k: torch.cat(v) for k, v in features.items()}, torch.cat(labels)


def probe_accuracy(x, y, num_classes, train_fraction=0.7, steps=500, seed=0):
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=generator)
    x, y = x[order], y[order]
    cut = int(train_fraction * len(y))
    mean, std = x[:cut].mean(0), x[:cut].std(0) + 1e-6
    x = (x - mean) / std
    weight = torch.zeros(x.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.01)
    for _ in range(steps):
        loss = F.cross_entropy(x[:cut] @ weight + bias, y[:cut])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(((x[cut:] @ weight + bias).argmax(1) == y[cut:]).float().mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=os.path.join(REPO, "configs", "synthetic", "iterative_sg.yaml"))
    parser.add_argument("--weights", required=True, help="detector (or DETR) checkpoint whose backbone is probed")
    parser.add_argument("--batches", type=int, default=40, help="training batches of SOLVER.IMS_PER_BATCH images")
    parser.add_argument("--pooled-stride", type=int, default=16)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    cfg = load_config(args.config_file, args.opts)
    backbone = build_backbone(cfg)
    load_backbone_weights(backbone, args.weights, cfg.MODEL.BACKBONE.CONV_BODY)
    backbone.eval()
    loader = build_data_loader(cfg, "train")
    features, labels = collect(backbone, loader, args.batches, args.pooled_stride)
    num_classes = cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES
    majority = float(torch.bincount(labels, minlength=num_classes).max()) / len(labels)
    print(f"{len(labels)} GT boxes of {args.batches} training batches; {num_classes - 1} classes; the most frequent "
          f"class is {majority:.3f} of the boxes\n")
    print("| backbone map | class accuracy of a linear probe (held-out 30%) |\n|---|---:|")
    for name, x in features.items():
        print(f"| {name} | {probe_accuracy(x, labels, num_classes):.3f} |")


if __name__ == "__main__":
    main()
