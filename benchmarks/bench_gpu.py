#!/usr/bin/env python
"""Every relation head in every protocol on a GPU: seconds per training iteration with mixed precision, inference
images per second and peak memory, then the same training under torchrun when the machine has 2+ GPUs.

    python benchmarks/bench_gpu.py --output output/bench_gpu                  # VG150 configs (X-101-FPN), cuda
    python benchmarks/bench_gpu.py --device cpu --tiny --output /tmp/bg       # synthetic configs, CPU (the tests)

Rows are the method configs under configs/ (VG150) or configs/synthetic/ (``--tiny``) with seeded random weights,
fake dataset statistics of the config's class counts, and fake VG-like batches at the config's test image size
(about 11 GT boxes and 6 relations per image; SGDet keeps up to DETECTIONS_PER_IMG detections per image, score
threshold 0, the worst case). Nothing is downloaded or read from a dataset: the files some heads need (SPL's
prototypes, cdl's and BA-SGG's confusion matrices) are written with random values into a scratch folder. Speed does
not depend on what the weights learnt.

Writes ``bench_gpu.json`` and ``bench_gpu.md`` (one row per head x protocol: s/iteration, training images/s,
inference images/s, peak memory) into ``--output``. On CUDA the default DTYPE is float16 with the GradScaler; on the
CPU bfloat16. With ``--device cuda`` on a machine without CUDA it stops with a message and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np
import torch

from sgg.config import load_config
from sgg.engine import autocast_context
from sgg.modeling.detector.detectors import meta_architecture_name
from sgg.modeling.registry import META_ARCHITECTURES
from sgg.structures import BoxList, to_image_list
from sgg.utils import comm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTOCOLS = {"predcls": (True, True), "sgcls": (True, False), "sgdet": (False, False)}
ALL = tuple(PROTOCOLS)
HEAD = "MODEL.ROI_RELATION_HEAD."

# name: (VG150 config, synthetic config, options, protocols)
ROWS = {
    "FREQ": ("e2e_relation_X_101_32_8_FPN_1x.yaml", "synthetic/relation_base.yaml",
             [HEAD + "PREDICTOR", "FrequencyPredictor"], ALL),
    "Motif": ("e2e_relation_X_101_32_8_FPN_1x.yaml", "synthetic/relation_base.yaml",
              [HEAD + "PREDICTOR", "MotifPredictor"], ALL),
    "Transformer": ("e2e_relation_X_101_32_8_FPN_1x.yaml", "synthetic/relation_base.yaml",
                    [HEAD + "PREDICTOR", "TransformerPredictor"], ALL),
    "LinkNet+CCE+Ranker": ("linknet/linknet_cce_ranker.yaml", "synthetic/linknet_cce_ranker.yaml", [], ALL),
    "PE-Net+Reweight": ("penet/penet_reweight.yaml", "synthetic/penet_reweight.yaml", [], ALL),
    "SPL": ("penet/spl.yaml", "synthetic/spl_reweight.yaml", ["@spl"], ALL),
    "HCA+cdl": ("hca/hca_cdl.yaml", "synthetic/hca_cdl.yaml", ["@cdl"], ALL),
    "Transformer+BA-SGG stage 2": ("ba_sgg/stage2.yaml", "synthetic/ba_sgg_stage2.yaml", ["@ba_sgg"], ALL),
    "IterativeSG": ("iterative_sg/vg150_R101.yaml", "synthetic/iterative_sg.yaml", [], ("sgdet",)),
}
TINY = ["TEST.IMS_PER_BATCH", 2, "INPUT.MIN_SIZE_TEST", 96, "INPUT.MAX_SIZE_TEST", 128,
        "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", 8]


def scratch_files(cfg, scratch: str, kind: str) -> List:
    """Options pointing the heads that read files at random ones of the right shape."""
    num_predicates = cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES
    rng = np.random.default_rng(0)
    if kind == "@spl":
        head = cfg.MODEL.ROI_RELATION_HEAD
        vis, con = os.path.join(scratch, "vis_protos.pt"), os.path.join(scratch, "con_protos.pt")
        torch.save(torch.randn(num_predicates, head.VIS_PRO_DIM), vis)
        torch.save({"prototypes": torch.randn(num_predicates, head.CON_PRO_DIM)}, con)
        return [HEAD + "VIS_PRO_PATH", vis, HEAD + "CON_PRO_TYPE", "FILE", HEAD + "CON_PRO_PATH", con]
    path = os.path.join(scratch, "conf_mat_freq_train.npy")
    np.save(path, rng.integers(1, 50, size=(num_predicates, num_predicates)).astype(np.float64))
    key = "CDL.CONFUSION_MATRIX_PATH" if kind == "@cdl" else "BA_SGG.CONFUSION_MATRIX_PATH"
    return [HEAD + key, path]


def build_config(row: str, mode: str, tiny: bool, device: str, dtype: str, scratch: str):
    vg150, synthetic, options, _ = ROWS[row]
    path = os.path.join(REPO, "configs", synthetic if tiny else vg150)
    gt_box, gt_label = PROTOCOLS[mode]
    files = [o for o in options if str(o).startswith("@")]
    opts = [o for o in options if not str(o).startswith("@")]
    opts += ["MODEL.DEVICE", device, "DTYPE", dtype, "MODEL.RANDOM_INIT_BACKBONE", True, "GLOVE_DIR",
             os.path.join(scratch, "no_glove"), HEAD + "USE_GT_BOX", gt_box, HEAD + "USE_GT_OBJECT_LABEL", gt_label,
             "MODEL.ROI_HEADS.SCORE_THRESH", 0.0, "MODEL.PRETRAINED_DETECTOR_CKPT", "",
             "MODEL.PRETRAINED_MODEL_CKPT", "", "MODEL.WEIGHT", ""]
    if tiny:
        opts += TINY
    cfg = load_config(path, [str(o) for o in opts])
    if files:
        cfg = load_config(path, [str(o) for o in opts + scratch_files(cfg, scratch, files[0])])
    return cfg


def fake_statistics(cfg) -> Dict:
    num_classes, num_predicates = cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES
    rng = np.random.default_rng(0)
    dist = rng.dirichlet(np.ones(num_predicates), size=(num_classes, num_classes)).astype(np.float32)
    counts = np.concatenate([[0], np.sort(rng.integers(10, 100000, num_predicates - 1))[::-1]])
    rel_classes = ["__background__"] + [f"p{i}" for i in range(1, num_predicates)]
    weight_file = cfg.MODEL.ROI_RELATION_HEAD.REWEIGHT.WEIGHT_FILE
    if weight_file and os.path.isfile(os.path.join(REPO, weight_file)):
        with open(os.path.join(REPO, weight_file)) as f:  # a weight file names the dataset's predicates (VG150's)
            names = list(json.load(f))
        if len(names) == num_predicates:
            rel_classes = names
    return {"pred_dist": np.log(dist + 1e-3), "fg_matrix": np.ones((num_classes, num_classes, num_predicates)),
            "predicate_counts": counts, "rel_classes": rel_classes,
            "obj_classes": ["__background__"] + [f"c{i}" for i in range(1, num_classes)]}


def fake_batch(cfg, batch_size: int, generator: torch.Generator, device: torch.device):
    """``batch_size`` images at the config's test size with ~11 GT boxes and ~6 relations each (VG150's means)."""
    height = cfg.INPUT.MIN_SIZE_TEST
    width = min(int(round(height * 4 / 3)), cfg.INPUT.MAX_SIZE_TEST)
    num_classes, num_predicates = cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES
    images, targets = [], []
    for _ in range(batch_size):
        images.append(torch.randn(3, height, width, generator=generator))
        n = int(torch.randint(8, 15, (1,), generator=generator))
        xy = torch.rand(n, 2, generator=generator) * torch.tensor([width * 0.7, height * 0.7])
        wh = (0.1 + torch.rand(n, 2, generator=generator) * 0.2) * torch.tensor([width, height])
        target = BoxList(torch.cat([xy, torch.minimum(xy + wh, torch.tensor([width - 1.0, height - 1.0]))], 1),
                         (width, height))
        target.add_field("labels", torch.randint(1, num_classes, (n,), generator=generator))
        relation = torch.zeros(n, n, dtype=torch.long)
        rels = [[i, (i + 1) % n, 1 + int(torch.randint(0, num_predicates - 1, (1,), generator=generator))]
                for i in range(min(6, n))]
        for s, o, p in rels:
            relation[s, o] = p
        target.add_field("relation", relation)
        target.add_field("relation_tuple", torch.tensor(rels))
        targets.append(target.to(device))
    return to_image_list(images, cfg.DATALOADER.SIZE_DIVISIBILITY).to(device), targets


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's peak RSS (kB on Linux)


def measure(row: str, mode: str, args, scratch: str) -> Dict:
    device = torch.device(args.device if args.device == "cpu" else f"cuda:{comm.get_local_rank()}")
    cfg = build_config(row, mode, args.tiny, args.device, args.dtype, scratch)
    torch.manual_seed(0)
    model = META_ARCHITECTURES.get(meta_architecture_name(cfg)).from_config(cfg, fake_statistics(cfg)).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and args.dtype == "float16" else None
    train_model = model
    if comm.get_world_size() > 1:
        ids = [device.index] if device.type == "cuda" else None
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
    generator = torch.Generator().manual_seed(comm.get_rank())
    batch_size = args.batch or cfg.SOLVER.IMS_PER_BATCH
    images, targets = fake_batch(cfg, batch_size, generator, device)
    train_model.train()
    for step in range(args.warmup + args.iters):
        if step == args.warmup:
            _sync(device)
            start = time.perf_counter()
        with autocast_context(device, args.dtype):
            loss = sum(train_model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
    _sync(device)
    seconds = (time.perf_counter() - start) / args.iters
    result = {"row": row, "protocol": mode, "device": str(device), "dtype": args.dtype, "processes":
              comm.get_world_size(), "batch_per_process": batch_size, "s_per_iter": seconds,
              "train_images_per_s": batch_size * comm.get_world_size() / seconds, "loss": float(loss)}
    if comm.get_world_size() == 1:
        model.eval()
        test_batch = args.test_batch or cfg.TEST.IMS_PER_BATCH
        batches = [fake_batch(cfg, test_batch, generator, device) for _ in range(max(args.images // test_batch, 1))]
        with torch.no_grad(), autocast_context(device, args.dtype):
            model(*batches[0])  # warm-up
            _sync(device)
            start = time.perf_counter()
            for test_images, test_targets in batches:
                model(test_images, test_targets)
            _sync(device)
        result["test_images_per_s"] = len(batches) * test_batch / (time.perf_counter() - start)
    result["peak_memory_mb"] = _peak_memory_mb(device)
    return result


def markdown(results: List[Dict], title: str) -> str:
    lines = [f"### {title}", "", "| head | protocol | processes | batch/process | s/iter | train img/s | test img/s "
             "| peak memory (MB) |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        test = f"{r['test_images_per_s']:.1f}" if "test_images_per_s" in r else "-"
        lines.append(f"| {r['row']} | {r['protocol']} | {r['processes']} | {r['batch_per_process']} | "
                     f"{r['s_per_iter']:.3f} | {r['train_images_per_s']:.1f} | {test} | {r['peak_memory_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def run_rows(args) -> List[Dict]:
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for row in args.rows:
            for mode in ROWS[row][3]:
                if mode not in args.protocols:
                    continue
                result = measure(row, mode, args, scratch)
                results.append(result)
                if comm.is_main_process():
                    print(f"{row:<28} {mode:<8} {result['s_per_iter']:.3f} s/iter, "
                          f"{result.get('test_images_per_s', 0):.1f} test img/s, "
                          f"{result['peak_memory_mb']:.0f} MB", flush=True)
    return results


def launch_distributed(args, processes: int, output: str) -> List[Dict]:
    """The same rows' training under torchrun with ``processes`` processes (one per GPU); rank 0 writes JSON."""
    worker_json = os.path.join(output, "bench_gpu_ddp.json")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_addr", "127.0.0.1", "--master_port", str(args.master_port), os.path.abspath(__file__),
               "--ddp-worker", worker_json, "--device", args.device, "--dtype", args.dtype, "--iters",
               str(args.iters), "--warmup", str(args.warmup), "--rows", *args.rows, "--protocols", *args.protocols]
    if args.tiny:
        command.append("--tiny")
    if args.batch:
        command += ["--batch", str(args.batch)]
    subprocess.run(command, check=True)
    with open(worker_json) as f:
        return json.load(f)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                        help="default: float16 (GradScaler) on cuda, bfloat16 on the cpu")
    parser.add_argument("--tiny", action="store_true", help="the synthetic (tiny-FPN) configs at toy sizes")
    parser.add_argument("--iters", type=int, default=None, help="timed training iterations (default 5; tiny 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed iterations first (default 2; tiny 1)")
    parser.add_argument("--images", type=int, default=None, help="inference images (default 4; tiny 2)")
    parser.add_argument("--batch", type=int, default=None,
                        help="training images per process (default 4, SGB's 12 over 4 GPUs being 3; tiny 2); 0 = the "
                             "config's SOLVER.IMS_PER_BATCH")
    parser.add_argument("--test-batch", type=int, default=0, help="inference batch (0 = the config's)")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--protocols", nargs="+", default=list(ALL), choices=list(ALL))
    parser.add_argument("--processes", type=int, default=None,
                        help="processes for the torchrun pass (default: the number of GPUs if 2 or more, else none)")
    parser.add_argument("--master-port", type=int, default=29517)
    parser.add_argument("--output", default="output/bench_gpu")
    parser.add_argument("--ddp-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.dtype = args.dtype or ("float16" if args.device == "cuda" else "bfloat16")
    args.iters = args.iters or (1 if args.tiny else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 2)
    args.images = args.images or (2 if args.tiny else 4)
    args.batch = args.batch if args.batch is not None else (2 if args.tiny else 4)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but this machine has no CUDA device (torch.cuda.is_available() is False); "
              "run on a GPU machine, or pass --device cpu --tiny for the CPU check", file=sys.stderr)
        return 2
    if args.ddp_worker:
        comm.init_distributed_from_env(args.device)
        results = run_rows(args)
        if comm.is_main_process():
            with open(args.ddp_worker, "w") as f:
                json.dump(results, f, indent=1)
        return 0
    os.makedirs(args.output, exist_ok=True)
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    processes = args.processes if args.processes is not None else (gpus if gpus >= 2 else 0)
    started = time.perf_counter()
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {name}, DTYPE {args.dtype}, {'synthetic' if args.tiny else 'VG150'} configs")
    single = run_rows(args)
    distributed = launch_distributed(args, processes, args.output) if processes >= 2 else []
    elapsed = time.perf_counter() - started
    report = {"torch": torch.__version__, "device": name, "dtype": args.dtype, "tiny": args.tiny,
              "iters": args.iters, "images": args.images, "wall_seconds": elapsed, "single": single,
              "distributed": distributed}
    with open(os.path.join(args.output, "bench_gpu.json"), "w") as f:
        json.dump(report, f, indent=1)
    text = f"torch {torch.__version__}, {name}, DTYPE {args.dtype}; wall time {elapsed:.0f} s\n\n"
    text += markdown(single, "One process")
    if distributed:
        text += "\n" + markdown(distributed, f"torchrun, {processes} processes (training only)")
    with open(os.path.join(args.output, "bench_gpu.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
