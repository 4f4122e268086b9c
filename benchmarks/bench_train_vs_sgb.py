#!/usr/bin/env python
"""PredCls training step, this framework against Scene-Graph-Benchmark.pytorch (SGB), alternating in one process:

    OMP_NUM_THREADS=1 python benchmarks/bench_train_vs_sgb.py [--predictors MotifPredictor TransformerPredictor]
        [--steps 8] [--warmup 2] [--batch 2] [--height 320 --width 480] [--boxes 12 --relations 6]
        [--opts KEY VALUE ...] [--sgb-dir DIR]

Both sides build the X-101-32x8d-FPN relation model of configs/e2e_relation_X_101_32_8_FPN_1x.yaml (SGB's own copy of
that yaml on its side) with the same overrides (``--opts`` adds more, on both sides): PredCls, the predictor named,
random weights, the detector frozen as each framework freezes it for relation training (ours: detector in eval mode
under no_grad; SGB: its tools/relation_train_net.py sets requires_grad False on backbone, RPN and box head and leaves
them in train mode, so its RPN still runs its training path).
Both get the same batch: ``--batch`` random images of ``--height`` x ``--width`` (already normalised, padded to a
multiple of 32) with ``--boxes`` GT boxes and ``--relations`` GT relations each (a chain s -> s+1), labels of VG150
(150 object classes, 50 predicates). One step is the same loop on both sides: forward with the losses, sum,
backward, gradient clipping at SOLVER.GRAD_NORM_CLIP, SGD with momentum. The two frameworks' trainers (logging,
meters, checkpoints) are not part of it.

Steps alternate ours / SGB's (the order flips every pair) after ``--warmup`` pairs; the ratio SGB / ours is taken
pair by pair, so a load change on a shared machine hits both sides of a pair alike. Printed: a markdown table with
the median seconds per step of each side and the median pair ratio with its range, for wall time and for this
process's CPU time (with one thread, CPU time is the work done; on a loaded machine wall time also counts the waits),
then the CPU time split into phases: the backbone's forward (hooks around it), the rest of the forward with the
losses, the backward, gradient clipping with the SGD step.

SGB is never part of this repository: without ``--sgb-dir`` only our side runs. ``--sgb-dir`` names a folder that
holds SGB's Python code made importable on the CPU: ``sgb_env.py`` (imported first: puts SGB's ``maskrcnn_benchmark``
on sys.path and shims what torch 2.x removed) and ``sgb/configs/e2e_relation_X_101_32_8_FPN_1x.yaml``; SGB's compiled
``maskrcnn_benchmark._C`` must be replaced by torchvision's compiled ops there (roi_align(aligned=False), and nms:
SGB's RPN runs NMS every training step, so an NMS written as a Python loop would misstate SGB's speed). SGB's relation
heads read GloVe vectors and dataset statistics from files: a one-word GloVe file and random statistics of VG150's
shape are written to a temporary folder for it (speed does not depend on their values; our side gets the same random
statistics and, finding no GloVe file, its own seeded random word vectors).
"""
import argparse
import contextlib
import os
import statistics as stats
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from sgg.config import load_config
from sgg.modeling.detector.scene_graph_rcnn import SceneGraphRCNN
from sgg.structures import BoxList, to_image_list

CONFIG = os.path.join(ROOT, "configs", "e2e_relation_X_101_32_8_FPN_1x.yaml")
NUM_OBJ, NUM_REL = 151, 51  # VG150 with background
PREDCLS = ["MODEL.ROI_RELATION_HEAD.USE_GT_BOX", "True", "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", "True"]


def fake_statistics():
    """Random frequency statistics of VG150's shape (numpy, as ours takes them; SGB's cache gets tensors)."""
    rng = np.random.default_rng(0)
    fg_matrix = rng.integers(0, 20, size=(NUM_OBJ, NUM_OBJ, NUM_REL)).astype(np.int64)
    fg_matrix[:, :, 0] += 1
    pred_dist = np.log(fg_matrix / fg_matrix.sum(2)[:, :, None] + 1e-3).astype(np.float32)
    return {"fg_matrix": fg_matrix, "pred_dist": pred_dist,
            "obj_classes": ["__background__"] + [f"object{i}" for i in range(1, NUM_OBJ)],
            "rel_classes": ["__background__"] + [f"predicate{i}" for i in range(1, NUM_REL)],
            "att_classes": ["__background__"] + [f"attribute{i}" for i in range(1, 201)]}  # SGB checks 201


def fake_batch(args):
    """Images, and per image (boxes xyxy, labels, relation triplets), from one seeded generator."""
    generator = torch.Generator().manual_seed(0)
    images, annotations = [], []
    for _ in range(args.batch):
        images.append(torch.randn(3, args.height, args.width, generator=generator))
        xy = torch.rand(args.boxes, 2, generator=generator) * torch.tensor([args.width * 0.7, args.height * 0.7])
        wh = 16 + torch.rand(args.boxes, 2, generator=generator) * torch.tensor([args.width * 0.3, args.height * 0.3])
        boxes = torch.cat([xy, (xy + wh).clamp(max=torch.tensor([args.width - 1.0, args.height - 1.0]))], 1)
        labels = torch.randint(1, NUM_OBJ, (args.boxes,), generator=generator)
        triplets = torch.tensor([[i, i + 1, 1 + i % (NUM_REL - 1)] for i in range(args.relations)])
        annotations.append((boxes, labels, triplets))
    return images, annotations


def relation_matrix(triplets, num_boxes):
    matrix = torch.zeros(num_boxes, num_boxes, dtype=torch.long)
    matrix[triplets[:, 0], triplets[:, 1]] = triplets[:, 2]
    return matrix


class OurSide:
    name = "ours"

    def __init__(self, args, predictor):
        self.cfg = load_config(CONFIG, ["MODEL.ROI_RELATION_HEAD.PREDICTOR", predictor, *PREDCLS,
                                        "MODEL.RANDOM_INIT_BACKBONE", "True", "GLOVE_DIR", "/nonexistent",
                                        "SOLVER.IMS_PER_BATCH", str(args.batch), *args.opts])
        self.model = SceneGraphRCNN.from_config(self.cfg, fake_statistics())
        self.model.train()
        images, annotations = fake_batch(args)
        targets = []
        for boxes, labels, triplets in annotations:
            target = BoxList(boxes, (args.width, args.height))
            target.add_field("labels", labels)
            target.add_field("relation", relation_matrix(triplets, len(boxes)))
            target.add_field("relation_tuple", triplets)
            targets.append(target)
        self.inputs = (to_image_list(images, self.cfg.DATALOADER.SIZE_DIVISIBILITY), targets)
        self.optimizer = make_sgd(self.model, self.cfg.SOLVER)
        self.backbone_clock = BackboneClock(self.model.detector.backbone)

    def losses(self):
        return self.model(*self.inputs)


class SgbSide:
    name = "SGB"

    def __init__(self, args, predictor, sgb_dir, work_dir):
        os.environ.setdefault("SGB_CPU_DIR", sgb_dir)
        sys.path.insert(0, sgb_dir)
        import sgb_env  # noqa: F401  (puts SGB's maskrcnn_benchmark on sys.path)
        from maskrcnn_benchmark.config import cfg as sgb_cfg
        from maskrcnn_benchmark.modeling.detector import build_detection_model
        from maskrcnn_benchmark.structures.bounding_box import BoxList as SgbBoxList
        from maskrcnn_benchmark.structures.image_list import to_image_list as sgb_to_image_list

        write_sgb_side_files(work_dir)
        cfg = sgb_cfg.clone()
        cfg.merge_from_file(os.path.join(sgb_dir, "sgb", "configs", "e2e_relation_X_101_32_8_FPN_1x.yaml"))
        cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.ROI_RELATION_HEAD.PREDICTOR", predictor, *PREDCLS,
                             "GLOVE_DIR", work_dir, "OUTPUT_DIR", work_dir, "SOLVER.IMS_PER_BATCH", args.batch,
                             *args.opts])
        cfg.freeze()
        self.cfg = cfg
        with cuda_calls_stay_on_cpu():
            self.model = build_detection_model(cfg)
        self.model.train()
        # as SGB's tools/relation_train_net.py (fix_eval_modules): frozen, but left in train mode
        for module in (self.model.rpn, self.model.backbone, self.model.roi_heads.box):
            for param in module.parameters():
                param.requires_grad = False
        images, annotations = fake_batch(args)
        targets = []
        for boxes, labels, triplets in annotations:
            target = SgbBoxList(boxes, (args.width, args.height), mode="xyxy")
            target.add_field("labels", labels)
            target.add_field("attributes", torch.zeros(len(boxes), 10, dtype=torch.long))
            target.add_field("relation", relation_matrix(triplets, len(boxes)), is_triplet=True)
            targets.append(target)
        self.inputs = (sgb_to_image_list(images, cfg.DATALOADER.SIZE_DIVISIBILITY), targets)
        self.optimizer = make_sgd(self.model, cfg.SOLVER)
        self.backbone_clock = BackboneClock(self.model.backbone)

    def losses(self):
        return self.model(*self.inputs)


@contextlib.contextmanager
def cuda_calls_stay_on_cpu():
    """SGB's relation loss builds a constant with a hard-coded ``.cuda()`` (relation_head/loss.py, a predicate weight
    the step never reads); on a machine without CUDA it stays where it is for the model build."""
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


def write_sgb_side_files(work_dir):
    """The statistics cache and the GloVe file SGB's relation head loads (names as SGB builds them)."""
    statistics = fake_statistics()
    cache = dict(statistics, fg_matrix=torch.from_numpy(statistics["fg_matrix"]),
                 pred_dist=torch.from_numpy(statistics["pred_dist"]))
    torch.save(cache, os.path.join(work_dir, "VG_stanford_filtered_with_attribute_train_statistics.cache"))
    torch.save(({"object": 0}, torch.randn(1, 200), 200), os.path.join(work_dir, "glove.6B.200d.pt"))


def make_sgd(model, solver):
    # a hundredth of BASE_LR keeps random weights finite over the steps; the speed does not depend on it
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=solver.BASE_LR * 0.01, momentum=solver.MOMENTUM, weight_decay=solver.WEIGHT_DECAY)


PHASES = ("backbone", "rest of forward", "backward", "clip + SGD")


class BackboneClock:
    """CPU seconds spent inside a module's forward (hooks around it), reset by the caller every step."""

    def __init__(self, module):
        self.seconds, self._start = 0.0, None
        module.register_forward_pre_hook(self._enter)
        module.register_forward_hook(self._leave)

    def _enter(self, module, inputs):
        self._start = time.process_time()

    def _leave(self, module, inputs, output):
        self.seconds += time.process_time() - self._start


def timed_step(side):
    """{"wall", "CPU", and CPU seconds per phase} of one training step (CPU: this process, one thread)."""
    side.backbone_clock.seconds = 0.0
    start_wall, start = time.perf_counter(), time.process_time()
    loss = sum(side.losses().values())
    forward = time.process_time()
    side.optimizer.zero_grad()
    loss.backward()
    backward = time.process_time()
    torch.nn.utils.clip_grad_norm_([p for group in side.optimizer.param_groups for p in group["params"]],
                                   side.cfg.SOLVER.GRAD_NORM_CLIP)
    side.optimizer.step()
    end = time.process_time()
    if not torch.isfinite(loss):
        raise RuntimeError(f"{side.name}: non-finite loss {float(loss)}")
    return {"wall": time.perf_counter() - start_wall, "CPU": end - start,
            "backbone": side.backbone_clock.seconds, "rest of forward": forward - start - side.backbone_clock.seconds,
            "backward": backward - forward, "clip + SGD": end - backward}


def run_pairs(sides, steps, warmup):
    """{side name: [timed_step(...) per timed step]}; the order within a pair flips every step."""
    times = {side.name: [] for side in sides}
    for step in range(warmup + steps):
        order = sides if step % 2 == 0 else sides[::-1]
        for side in order:
            seconds = timed_step(side)
            if step >= warmup:
                times[side.name].append(seconds)
    return times


def summary(times, measure):
    """Median of ours, and with SGB: SGB's median, the median pair ratio SGB / ours and its range."""
    ours = [t[measure] for t in times["ours"]]
    cells = [f"{stats.median(ours):.2f}"]
    if "SGB" in times:
        sgb = [t[measure] for t in times["SGB"]]
        ratios = [s / o for s, o in zip(sgb, ours)]
        cells += [f"{stats.median(sgb):.2f}", f"{stats.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"]
    return cells


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictors", nargs="+", default=["MotifPredictor", "TransformerPredictor"])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per side first")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--boxes", type=int, default=12, help="GT boxes per image")
    parser.add_argument("--relations", type=int, default=6, help="GT relations per image (< boxes)")
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY VALUE",
                        help="config overrides given to both sides (keys both frameworks know)")
    parser.add_argument("--sgb-dir", help="folder with SGB's code made importable on the CPU (see the docstring)")
    args = parser.parse_args(argv)
    if not 0 < args.relations < args.boxes:
        parser.error(f"--relations must be between 1 and --boxes - 1 = {args.boxes - 1}, got {args.relations}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; e2e_relation_X_101_32_8_FPN_1x.yaml PredCls, "
          f"batch {args.batch} of "
          f"{args.height}x{args.width}, {args.boxes} boxes / {args.relations} relations per image"
          + (f"; overrides {' '.join(args.opts)}" if args.opts else ""))
    columns = ["ours s/step"] + (["SGB s/step", "SGB/ours (range)"] if args.sgb_dir else [])
    print("| predictor | measure | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    notes = []
    with tempfile.TemporaryDirectory() as work_dir:
        for predictor in args.predictors:
            torch.manual_seed(0)
            sides = [OurSide(args, predictor)]
            if args.sgb_dir:
                torch.manual_seed(0)
                sides.append(SgbSide(args, predictor, os.path.abspath(args.sgb_dir), work_dir))
            counts = [sum(p.numel() for p in side.model.parameters() if p.requires_grad) for side in sides]
            notes.append(f"{predictor}: trainable parameters "
                         + ", ".join(f"{side.name} {count:,}" for side, count in zip(sides, counts)))
            times = run_pairs(sides, args.steps, args.warmup)
            for measure in ("wall", "CPU", *(f"CPU: {phase}" for phase in PHASES)):
                print(f"| {predictor} | {measure} | " + " | ".join(summary(times, measure.replace("CPU: ", "")))
                      + " |", flush=True)
    print("\n".join(notes))
    print("load average at the end: " + " ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
