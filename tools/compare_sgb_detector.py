#!/usr/bin/env python
"""Side-by-side check: SGB's Faster R-CNN and this framework's, converted from the same weights, give the same
proposals and detections (docs/detector.md, "Equivalence with SGB's detector").

Two steps, each in its own environment:

1. ``sgb``: in a Python where Scene-Graph-Benchmark.pytorch (``maskrcnn_benchmark``) imports, on the CPU (its compiled
   ops replaced by CPU ones: an exact port of its ``nms_cpu`` and torchvision's legacy ``roi_align``). Builds SGB's
   detector from its own yamls with seeded random weights, saves them as an SGB checkpoint, and runs it on the
   images (resized and normalised as SGB's test transform) with each yaml's settings::

       python tools/compare_sgb_detector.py sgb --sgb-dir SGB_CHECKOUT [--setup-module sgb_env] \\
           --images a.jpg b.jpg --out-dir /tmp/sgb_eq

2. ``ours``: here. Converts the checkpoint with tools/convert_sgb_checkpoint.py, runs this framework's detector on
   the same input tensors with the matching configs (SGB's conventions on) and compares::

       python tools/compare_sgb_detector.py ours --out-dir /tmp/sgb_eq [--ablate] [KEY VALUE ...]

Nothing of SGB is part of this file: step 1 imports SGB from the path it is given.
"""
import argparse
import os
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# setting name -> (SGB's yaml under its configs/, this framework's config); SGB's detector yaml is copied here as is
SETTINGS = {
    "detector": ("e2e_relation_detector_X_101_32_8_FPN_1x.yaml", "e2e_relation_detector_X_101_32_8_FPN_1x.yaml"),
    "sgdet": ("e2e_relation_X_101_32_8_FPN_1x.yaml", "e2e_relation_X_101_32_8_FPN_1x_sgb_detector.yaml"),
}
PIXEL_MEAN = (102.9801, 115.9465, 122.7717)  # SGB's BGR255 mean (INPUT.PIXEL_MEAN)


def sgb_test_size(width: int, height: int, min_size: int = 600, max_size: int = 1000):
    """(w, h) after SGB's test Resize (shorter side min_size, longer side at most max_size)."""
    size = min_size
    short, long = min(width, height), max(width, height)
    if long / short * size > max_size:
        size = int(round(max_size * short / long))
    if width < height:
        return size, int(size * height / width)
    return int(size * width / height), size


def load_image(path: str) -> torch.Tensor:
    """(3, H, W) BGR255 minus SGB's mean, at SGB's test size (bilinear, as its transform)."""
    import numpy as np
    from PIL import Image

    image = Image.open(path).convert("RGB")
    image = image.resize(sgb_test_size(*image.size), Image.BILINEAR)
    tensor = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float()[[2, 1, 0]]
    return tensor - torch.tensor(PIXEL_MEAN)[:, None, None]


def seed_heads(rpn_head, predictor, seed: int):
    """SGB's own initialisation under ``torch.manual_seed(seed)`` on a random trunk (no trained batch norm) gives huge
    RPN outputs (objectness logits and deltas of std ~20: most proposals collapse to zero-size boxes at the border)
    and near-uniform class logits (every score below SCORE_THRESH 0.01). The four output layers are re-drawn from a
    seeded normal (in this order: class scores std 3e-4, box deltas 1e-5, RPN objectness 1e-3, RPN deltas 1e-4)
    so that proposals and detections are ordinary boxes with spread scores."""
    gen = torch.Generator().manual_seed(seed + 1)
    layers = ((predictor.cls_score, 3e-4), (predictor.bbox_pred, 1e-5), (rpn_head.cls_logits, 1e-3),
              (rpn_head.bbox_pred, 1e-4))
    with torch.no_grad():
        for layer, std in layers:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * std)


def run_sgb(args) -> int:
    sys.path.insert(0, args.sgb_dir)
    if args.setup_module:
        __import__(args.setup_module)
    from maskrcnn_benchmark.config import cfg as sgb_defaults
    from maskrcnn_benchmark.modeling.detector import build_detection_model
    from maskrcnn_benchmark.structures.image_list import to_image_list

    models = {}
    for name, (sgb_yaml, _) in SETTINGS.items():
        cfg = sgb_defaults.clone()
        cfg.merge_from_file(os.path.join(args.sgb_dir, "configs", sgb_yaml))
        cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.RELATION_ON", False, "MODEL.ATTRIBUTE_ON", False])
        torch.manual_seed(args.seed)
        models[name] = build_detection_model(cfg).eval()
    first = models["detector"]
    seed_heads(first.rpn.head, first.roi_heads.box.predictor, args.seed)
    for model in models.values():
        model.load_state_dict(first.state_dict())
    os.makedirs(args.out_dir, exist_ok=True)
    torch.save({"model": first.state_dict()}, os.path.join(args.out_dir, "sgb_seeded.pth"))
    results = {"images": [load_image(p) for p in args.images], "settings": list(SETTINGS)}
    with torch.no_grad():
        for index, image in enumerate(results["images"]):
            images = to_image_list([image], 32)
            features = first.backbone(images.tensors)  # the trunk is shared: one pass per image
            for name, model in models.items():
                start = time.time()
                (proposals,), _ = model.rpn(images, features)
                _, (detections,), _ = model.roi_heads(features, [proposals])
                results[(name, index)] = {
                    "proposals": proposals.bbox, "objectness": proposals.get_field("objectness"),
                    "boxes": detections.bbox, "labels": detections.get_field("pred_labels"),
                    "scores": detections.get_field("pred_scores")}
                print(f"SGB {name} image {index} {tuple(image.shape[1:])}: {len(proposals)} proposals, "
                      f"{len(detections)} detections ({time.time() - start:.0f} s)", flush=True)
    torch.save(results, os.path.join(args.out_dir, "sgb_results.pt"))
    return 0


def count_found(ours: torch.Tensor, theirs: torch.Tensor) -> int:
    """How many rows of ``theirs`` occur exactly (all values equal) among the rows of ``ours``."""
    if len(ours) == 0 or len(theirs) == 0:
        return 0
    return int((theirs[:, None, :] == ours[None, :, :]).all(-1).any(1).sum())


# the detection rules that are switched one by one with --ablate (LEGACY_ANCHORS' P6 stride is not separable)
ABLATED_KEYS = ("MODEL.RPN.FPN_POST_NMS_PER_LEVEL_CAP", "MODEL.NMS_PLUS_ONE", "MODEL.CLIP_TO_LAST_PIXEL",
                "MODEL.ROI_HEADS.PROPOSAL_ORDER")


def compare(name: str, index: int, ref, proposals: torch.Tensor, detections, seconds: float) -> bool:
    ours_det = torch.cat([detections.bbox, detections.get_field("pred_labels")[:, None].float(),
                          detections.get_field("pred_scores")[:, None]], 1)
    ref_det = torch.cat([ref["boxes"], ref["labels"][:, None].float(), ref["scores"][:, None]], 1)
    same = torch.equal(proposals, ref["proposals"]) and torch.equal(ours_det, ref_det)
    print(f"  {name} image {index}: proposals {count_found(proposals, ref['proposals'])}/{len(ref['proposals'])} "
          f"of SGB's found (ours {len(proposals)}), detections {count_found(ours_det, ref_det)}/{len(ref_det)} "
          f"(ours {len(ours_det)}); identical tensors in the same order: {same} (RPN + box head {seconds:.1f} s)",
          flush=True)
    return same


def run_ours(args) -> int:
    from sgg.structures import to_image_list
    from tools.convert_sgb_checkpoint import convert

    checkpoint = os.path.join(args.out_dir, "sgb_seeded.pth")
    results_file = os.path.join(args.out_dir, "sgb_results.pt")
    for path in (checkpoint, results_file):
        if not os.path.isfile(path):
            print(f"--out-dir: {path} does not exist; run the sgb step first with the same --out-dir", file=sys.stderr)
            return 2
    results = torch.load(results_file, weights_only=False)
    variants = [("as configured", [])]
    if args.ablate:
        variants += [(f"{key} False", [key, "False"]) for key in ABLATED_KEYS]
        variants.append(("all four False", [v for key in ABLATED_KEYS for v in (key, "False")]))
    features = None
    all_equal = True
    with torch.no_grad():
        for label, opts in variants:
            print(label, flush=True)
            for name, (_, ours_yaml) in SETTINGS.items():
                model = convert(checkpoint, os.path.join(REPO, "configs", ours_yaml), [*args.opts, *opts])[1].eval()
                images = [model.prepare_images(to_image_list([image], 32)) for image in results["images"]]
                if features is None:  # no compared key touches the trunk: one pass per image
                    features = [model.extract_features(batch) for batch in images]
                for index, (batch, feats) in enumerate(zip(images, features)):
                    start = time.time()
                    (proposals,), _ = model.propose(batch, feats)
                    (detections,) = model.detect(batch, feats, [proposals])
                    same = compare(name, index, results[(name, index)], proposals, detections, time.time() - start)
                    all_equal &= same or bool(opts)  # the ablations are expected to differ
                del model
    print("ALL IDENTICAL" if all_equal else "DIFFERENCES FOUND")
    return 0 if all_equal else 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="side", required=True)
    sgb = sub.add_parser("sgb", help="run SGB's detector (in SGB's environment)")
    sgb.add_argument("--sgb-dir", required=True, help="SGB checkout (holds maskrcnn_benchmark/ and configs/)")
    sgb.add_argument("--setup-module", default="", help="module to import first (e.g. a CPU environment shim)")
    sgb.add_argument("--images", nargs="+", required=True)
    sgb.add_argument("--seed", type=int, default=0)
    sgb.add_argument("--out-dir", required=True)
    ours = sub.add_parser("ours", help="convert, run this framework's detector and compare")
    ours.add_argument("--out-dir", required=True, help="the sgb step's --out-dir")
    ours.add_argument("--ablate", action="store_true",
                      help="also run with each of SGB's detection rules off, and with all of them off")
    ours.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                      help="config overrides KEY VALUE for both settings (e.g. one SGB convention off)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_sgb(args) if args.side == "sgb" else run_ours(args)


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
