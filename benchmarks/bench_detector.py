"""Detector speed: our GeneralizedRCNN next to torchvision's Faster R-CNN on the same inputs, in the same run.

Two cases, each timing a training step (forward, backward, SGD step) and inference (eval, no_grad) per image:

* ``R-50-FPN`` on 600x1000 images vs ``torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None,
  weights_backbone=None, min_size=600, max_size=1000)``. Both use torchvision's detection defaults (2000/1000 RPN
  proposals, 512 sampled RoIs, 1024-d MLP, score threshold 0.05, NMS 0.5, 100 detections) and 151 classes. So that
  the two networks are the same, torchvision's BatchNorm layers (its choice when no weights are given) are swapped
  for the FrozenBatchNorm2d our ResNets use; all layers train in both.
* ``tiny-FPN`` with ``configs/synthetic/detector_tiny_fpn.yaml`` on 192x256 images (batch 8) vs torchvision's
  ``FasterRCNN`` class around the same tiny-FPN backbone with the same settings.

torchvision's models get min/max sizes equal to the input so their transform does not resize differently; they
still normalise and batch inside the model, as they do in use. Ours gets the padded ``ImageList`` the data loader
produces. Steps alternate between the two models so that machine noise hits both alike; medians are reported.

    python benchmarks/bench_detector.py                  # both cases
    python benchmarks/bench_detector.py --cases tiny --iters 20
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch import nn


from torchvision.models.detection import FasterRCNN, fasterrcnn_resnet50_fpn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

from sgg.config import get_cfg
from sgg.modeling import build_detection_model
from sgg.structures import BoxList, to_image_list

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def make_inputs(batch, height, width, num_classes, seed=0):
    """Images with a few boxes each; the same tensors feed both models."""
    gen = torch.Generator().manual_seed(seed)
    images, ours, theirs = [], [], []
    for _ in range(batch):
        images.append(torch.rand(3, height, width, generator=gen))
        n = 8
        xy = torch.rand(n, 2, generator=gen) * torch.tensor([width * 0.6, height * 0.6])
        wh = (torch.rand(n, 2, generator=gen) * 0.35 + 0.05) * torch.tensor([width, height])
        boxes = torch.cat([xy, xy + wh], dim=1)
        labels = torch.randint(1, num_classes, (n,), generator=gen)
        target = BoxList(boxes, (width, height))
        target.add_field("labels", labels)
        ours.append(target)
        theirs.append({"boxes": boxes, "labels": labels})
    return images, ours, theirs


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d by a FrozenBatchNorm2d with the same statistics (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


def r50_case(num_classes=151):
    cfg = get_cfg()
    cfg.merge_from_list([
        "MODEL.BACKBONE.CONV_BODY", "R-50-FPN", "MODEL.RANDOM_INIT_BACKBONE", True,
        "MODEL.BACKBONE.FREEZE_CONV_BODY_AT", 0, "MODEL.RESNETS.STRIDE_IN_1X1", False,
        "MODEL.RPN.RPN_MID_CHANNEL", 256, "MODEL.RPN.ASPECT_RATIOS", (0.5, 1.0, 2.0),
        "MODEL.RPN.PRE_NMS_TOP_N_TRAIN", 2000, "MODEL.RPN.PRE_NMS_TOP_N_TEST", 1000,
        "MODEL.RPN.FPN_POST_NMS_TOP_N_TRAIN", 2000, "MODEL.RPN.FPN_POST_NMS_TOP_N_TEST", 1000,
        "MODEL.ROI_HEADS.FG_IOU_THRESHOLD", 0.5, "MODEL.ROI_HEADS.BG_IOU_THRESHOLD", 0.5,
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 512, "MODEL.ROI_HEADS.POSITIVE_FRACTION", 0.25,
        "MODEL.ROI_HEADS.SCORE_THRESH", 0.05, "MODEL.ROI_HEADS.NMS", 0.5, "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", 100,
        "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", 1024, "MODEL.ROI_BOX_HEAD.NUM_CLASSES", num_classes,
        "MODEL.ROI_RELATION_HEAD.ADD_GTBOX_TO_PROPOSAL_IN_TRAIN", True,  # torchvision always adds GT proposals
    ])
    ours = build_detection_model(cfg)
    theirs = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes,
                                     min_size=600, max_size=1000)
    freeze_batchnorm(theirs)
    return "R-50-FPN", ours, theirs, dict(batch=2, height=600, width=1000, num_classes=num_classes)


def tiny_case(num_classes=151):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, "configs", "synthetic", "detector_tiny_fpn.yaml"))
    cfg.merge_from_list(["MODEL.ROI_BOX_HEAD.NUM_CLASSES", num_classes])
    ours = build_detection_model(cfg)
    m, r = cfg.MODEL, cfg.MODEL.RPN
    backbone = build_detection_model(cfg).backbone  # same architecture, its own weights
    anchors = AnchorGenerator(tuple((s,) for s in r.ANCHOR_SIZES), (tuple(r.ASPECT_RATIOS),) * len(r.ANCHOR_SIZES))
    res = m.ROI_BOX_HEAD.POOLER_RESOLUTION
    theirs = FasterRCNN(
        backbone, num_classes=None, min_size=cfg.INPUT.MIN_SIZE_TEST, max_size=cfg.INPUT.MAX_SIZE_TEST,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=r.PRE_NMS_TOP_N_TRAIN, rpn_pre_nms_top_n_test=r.PRE_NMS_TOP_N_TEST,
        rpn_post_nms_top_n_train=r.FPN_POST_NMS_TOP_N_TRAIN, rpn_post_nms_top_n_test=r.FPN_POST_NMS_TOP_N_TEST,
        rpn_nms_thresh=r.NMS_THRESH, rpn_fg_iou_thresh=r.FG_IOU_THRESHOLD, rpn_bg_iou_thresh=r.BG_IOU_THRESHOLD,
        rpn_batch_size_per_image=r.BATCH_SIZE_PER_IMAGE, rpn_positive_fraction=r.POSITIVE_FRACTION,
        box_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], res, m.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO),
        box_head=TwoMLPHead(backbone.out_channels * res * res, m.ROI_BOX_HEAD.MLP_HEAD_DIM),
        box_predictor=FastRCNNPredictor(m.ROI_BOX_HEAD.MLP_HEAD_DIM, num_classes),
        box_score_thresh=m.ROI_HEADS.SCORE_THRESH, box_nms_thresh=m.ROI_HEADS.NMS,
        box_detections_per_img=m.ROI_HEADS.DETECTIONS_PER_IMG,
        box_fg_iou_thresh=m.ROI_HEADS.FG_IOU_THRESHOLD, box_bg_iou_thresh=m.ROI_HEADS.BG_IOU_THRESHOLD,
        box_batch_size_per_image=m.ROI_HEADS.BATCH_SIZE_PER_IMAGE,
        box_positive_fraction=m.ROI_HEADS.POSITIVE_FRACTION,
    )
    return "tiny-FPN", ours, theirs, dict(batch=8, height=cfg.INPUT.MIN_SIZE_TEST, width=cfg.INPUT.MAX_SIZE_TEST,
                                          num_classes=num_classes)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(name, ours, theirs, shape, iters, warmup):
    images, our_targets, their_targets = make_inputs(shape["batch"], shape["height"], shape["width"],
                                                     shape["num_classes"])
    batch = to_image_list(images, 32)  # what our data loader hands the model
    sgd = {k: torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
           for k, model in (("ours", ours), ("theirs", theirs))}

    def train_ours():
        loss = sum(ours(batch, our_targets).values())
        sgd["ours"].zero_grad()
        loss.backward()
        sgd["ours"].step()

    def train_theirs():
        loss = sum(theirs(images, their_targets).values())
        sgd["theirs"].zero_grad()
        loss.backward()
        sgd["theirs"].step()

    def infer_ours():
        with torch.no_grad():
            ours(batch)

    def infer_theirs():
        with torch.no_grad():
            theirs(images)

    rows = {}
    for phase, fns in (("train", (train_ours, train_theirs)), ("infer", (infer_ours, infer_theirs))):
        for model in (ours, theirs):
            model.train(phase == "train")
        times = ([], [])
        for i in range(warmup + iters):
            for slot, fn in enumerate(fns):
                t = timed(fn)
                if i >= warmup:
                    times[slot].append(t)
        rows[phase] = tuple(statistics.median(t) for t in times)
    b = shape["batch"]
    print(f"\n{name}: batch {b} of {shape['height']}x{shape['width']}, {iters} timed iterations after {warmup} warm-up")
    print("| measure | ours | torchvision | ours / torchvision |")
    print("|---|---|---|---|")
    tr, inf = rows["train"], rows["infer"]
    print(f"| training step (s/iter, batch {b}) | {tr[0]:.3f} | {tr[1]:.3f} | {tr[0] / tr[1]:.2f} |")
    print(f"| inference (s/image) | {inf[0] / b:.4f} | {inf[1] / b:.4f} | {inf[0] / inf[1]:.2f} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=["r50", "tiny"], choices=["r50", "tiny"])
    parser.add_argument("--iters", type=int, default=0, help="timed iterations (default: 5 for r50, 20 for tiny)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    for case in args.cases:
        torch.manual_seed(0)
        name, ours, theirs, shape = (r50_case if case == "r50" else tiny_case)()
        iters = args.iters or (5 if case == "r50" else 20)
        bench(name, ours, theirs, shape, iters, args.warmup)


if __name__ == "__main__":
    main()
