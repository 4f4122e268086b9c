#!/usr/bin/env python
"""Our scene graph evaluator against Scene-Graph-Benchmark.pytorch's (SGB) on the same random predictions, per protocol.

    python benchmarks/bench_eval_vs_sgb.py --sgb-dir /tmp/sgb_mine                 # 300 images, 5 repeats
    python benchmarks/bench_eval_vs_sgb.py --sgb-dir /tmp/sgb_mine --modes sgdet --num-images 100 --repeats 3

SGB is read only from ``--sgb-dir``: a folder prepared by ``setup_sgb_cpu.sh`` (it holds ``sgb_env.py``, which makes
SGB's ``maskrcnn_benchmark`` importable on the CPU) or an SGB checkout whose ``maskrcnn_benchmark`` imports as is.
Nothing of SGB is part of this repository.

Per protocol one set of VG-like images is generated (6-18 GT boxes, about 6 GT relations; predcls/sgcls: every
ordered pair of the GT boxes with 51-way softmax scores; sgdet: 80 boxes, all 6,320 ordered pairs). As SGB's
post-processor does, the pairs are sorted by triplet score before either evaluator sees them (SGB's graph-constrained
recall takes them in the given order; ours ranks them itself and keeps that order). Both evaluators then get the
same torch tensors: SGB as BoxLists through ``evaluate_relation_of_one_image`` and its ``calculate_mean_recall``, ours
as mappings through ``update`` and ``compute``. Timed: exactly those calls (generation excluded), SGB then ours,
``--repeats`` times in this one process; the medians of wall-clock and of process CPU time (both evaluators are
single-threaded; CPU time is less disturbed by other jobs on a shared machine) and their ratios are printed. Every
metric SGB computes (R, ng-R, zR, ng-zR, mR, ng-mR at 20/50/100, and A in predcls/sgcls) must agree to 1e-12, or the
script exits with status 1.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from sgg.evaluation import SceneGraphEvaluator
from sgg.utils.errors import RunError
from vg_like_images import NUM_CLASSES, NUM_PREDICATES, detected_boxes, ordered_pairs, random_groundtruth

KS = (20, 50, 100)
MODES = ("predcls", "sgcls", "sgdet")


def load_sgb(sgb_dir):
    """SGB's per-image evaluation function, its metric classes and BoxList, imported from ``sgb_dir`` only."""
    sgb_dir = os.path.abspath(sgb_dir)
    env = os.path.join(sgb_dir, "sgb_env.py")
    package = os.path.join(sgb_dir, "maskrcnn_benchmark")
    if not (os.path.isfile(env) or os.path.isdir(package)):
        raise RunError(f"--sgb-dir {sgb_dir}: expected sgb_env.py (a folder made by setup_sgb_cpu.sh) or a "
                       f"maskrcnn_benchmark/ package (an SGB checkout); found neither")
    sys.path.insert(0, sgb_dir)
    if os.path.isfile(env):
        os.environ.setdefault("SGB_CPU_DIR", sgb_dir)
        import sgb_env  # noqa: F401  (adds SGB and its stubs to sys.path)
    from maskrcnn_benchmark.data.datasets.evaluation.vg import sgg_eval, vg_eval
    from maskrcnn_benchmark.structures.bounding_box import BoxList
    zeroshot_file = os.path.join(os.path.dirname(vg_eval.__file__), "zeroshot_triplet.pytorch")
    return vg_eval.evaluate_relation_of_one_image, sgg_eval, BoxList, zeroshot_file


def softmax_scores(rng, num_pairs, boosted_rows, boosted_predicates):
    logits = rng.standard_normal((num_pairs, NUM_PREDICATES), dtype=np.float32)
    logits[:, 0] += 2.0  # background dominates, as in a trained model
    logits[boosted_rows, boosted_predicates] += 7.0
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def make_image(rng, mode, num_det_boxes=80):
    """One image: GT and a prediction (numpy), VG-like; relations of the GT are often among the top scores."""
    gt, subj, obj, pred = random_groundtruth(rng)
    num_gt = len(gt["boxes"])
    if mode == "sgdet":
        num_boxes = num_det_boxes
        boxes = detected_boxes(rng, gt["boxes"], num_boxes)
    else:  # predcls / sgcls: the GT boxes in GT order
        num_boxes = num_gt
        boxes = gt["boxes"].copy()
    labels = rng.integers(1, NUM_CLASSES, size=num_boxes)
    keep = rng.random(num_gt) < 0.7
    labels[:num_gt][keep] = gt["labels"][keep]
    if mode == "predcls":
        labels[:num_gt] = gt["labels"]
    scores = rng.uniform(0.05, 1.0, size=num_boxes).astype(np.float32)
    pairs = ordered_pairs(num_boxes)
    rows = subj * (num_boxes - 1) + obj - (obj > subj)  # row of pair (subj, obj) in the pair list
    boost = rng.random(len(subj)) < 0.6
    rel_scores = softmax_scores(rng, len(pairs), rows[boost], pred[boost])
    # SGB's post-processor sorts the pairs by triplet score (float32, as here) before its evaluator sees them
    object_scores = np.ones(num_boxes, np.float32) if mode == "predcls" else scores
    triplet = (object_scores[pairs[:, 0]] * object_scores[pairs[:, 1]]) * rel_scores[:, 1:].max(axis=1)
    order = np.argsort(-triplet, kind="stable")
    prediction = {"boxes": boxes, "labels": labels, "scores": scores, "rel_pair_idxs": pairs[order],
                  "rel_scores": rel_scores[order]}
    return gt, prediction


def to_torch(mapping):
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in mapping.items()}


def sgb_inputs(BoxList, gt, prediction, image_size=(800, 600)):
    target = BoxList(gt["boxes"], image_size, "xyxy")
    target.add_field("labels", gt["labels"])
    target.add_field("relation_tuple", gt["relations"])
    pred = BoxList(prediction["boxes"], image_size, "xyxy")
    pred.add_field("pred_labels", prediction["labels"])
    pred.add_field("pred_scores", prediction["scores"])
    pred.add_field("rel_pair_idxs", prediction["rel_pair_idxs"])
    pred.add_field("pred_rel_scores", prediction["rel_scores"])
    return target, pred


def run_sgb(sgb, images, mode, zeroshot, names):
    """SGB's evaluator exactly as ``do_vg_evaluation`` drives it; returns (seconds, metrics)."""
    evaluate_one, sgg_eval, _, _ = sgb
    t0, c0 = time.perf_counter(), time.process_time()
    result_dict = {}
    evaluator = {}
    for key, cls in (("eval_recall", sgg_eval.SGRecall), ("eval_nog_recall", sgg_eval.SGNoGraphConstraintRecall),
                     ("eval_zeroshot_recall", sgg_eval.SGZeroShotRecall),
                     ("eval_ng_zeroshot_recall", sgg_eval.SGNGZeroShotRecall),
                     ("eval_pair_accuracy", sgg_eval.SGPairAccuracy)):
        evaluator[key] = cls(result_dict)
        evaluator[key].register_container(mode)
    for key, cls in (("eval_mean_recall", sgg_eval.SGMeanRecall), ("eval_ng_mean_recall", sgg_eval.SGNGMeanRecall)):
        evaluator[key] = cls(result_dict, NUM_PREDICATES, names, print_detail=True)
        evaluator[key].register_container(mode)
    container = {"zeroshot_triplet": zeroshot, "result_dict": result_dict, "mode": mode, "multiple_preds": False,
                 "num_rel_category": NUM_PREDICATES, "iou_thres": 0.5, "attribute_on": False,
                 "num_attributes": 201}
    for target, pred in images:
        evaluate_one(target, pred, container, evaluator)
    evaluator["eval_mean_recall"].calculate_mean_recall(mode)
    evaluator["eval_ng_mean_recall"].calculate_mean_recall(mode)
    seconds = (time.perf_counter() - t0, time.process_time() - c0)
    metrics = {}
    for k in KS:
        metrics[f"R@{k}"] = float(np.mean(result_dict[f"{mode}_recall"][k]))
        metrics[f"ngR@{k}"] = float(np.mean(result_dict[f"{mode}_recall_nogc"][k]))
        metrics[f"zR@{k}"] = float(np.mean(result_dict[f"{mode}_zeroshot_recall"][k]))
        metrics[f"ngzR@{k}"] = float(np.mean(result_dict[f"{mode}_ng_zeroshot_recall"][k]))
        metrics[f"mR@{k}"] = float(result_dict[f"{mode}_mean_recall"][k])
        metrics[f"ngmR@{k}"] = float(result_dict[f"{mode}_ng_mean_recall"][k])
        if mode != "sgdet":
            metrics[f"A@{k}"] = float(np.mean(result_dict[f"{mode}_accuracy_hit"][k]) /
                                      np.mean(result_dict[f"{mode}_accuracy_count"][k]))
    return seconds, metrics


def run_ours(images, mode, zeroshot, names):
    t0, c0 = time.perf_counter(), time.process_time()
    evaluator = SceneGraphEvaluator(mode=mode, num_predicates=NUM_PREDICATES, predicate_names=names,
                                    zeroshot_triplets=zeroshot, ks=KS)
    for image_id, (gt, prediction) in enumerate(images):
        evaluator.update(gt, prediction, image_id=image_id)
    results = evaluator.compute()
    return (time.perf_counter() - t0, time.process_time() - c0), results


def compare(mode, sgb_metrics, ours):
    """The largest absolute difference over SGB's metrics, and the keys that differ by more than 1e-12."""
    worst, bad = 0.0, []
    for key, value in sgb_metrics.items():
        mine = ours[key]
        both_nan = np.isnan(value) and np.isnan(mine)
        diff = 0.0 if both_nan else abs(value - mine)
        worst = max(worst, diff)
        if not both_nan and not diff <= 1e-12:
            bad.append(f"{mode} {key}: SGB {value!r}, ours {mine!r}")
    return worst, bad


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sgb-dir", required=True, help="folder made by setup_sgb_cpu.sh, or an SGB checkout")
    parser.add_argument("--num-images", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each evaluator per protocol")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        sgb = load_sgb(args.sgb_dir)
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    names = ["__background__"] + [f"predicate_{i}" for i in range(1, NUM_PREDICATES)]
    zeroshot_file = sgb[3]
    if os.path.isfile(zeroshot_file):  # SGB's own VG150 zero-shot triplets (subject, object, predicate)
        zeroshot = torch.load(zeroshot_file, map_location="cpu").long().numpy()
    else:
        zs_rng = np.random.default_rng(args.seed + 1)
        zeroshot = np.column_stack([zs_rng.integers(1, NUM_CLASSES, 6000), zs_rng.integers(1, NUM_CLASSES, 6000),
                                    zs_rng.integers(1, NUM_PREDICATES, 6000)])
    torch.set_num_threads(1)
    print(f"{args.num_images} images per protocol, {args.repeats} interleaved repeats (SGB, then ours), "
          f"{len(zeroshot)} zero-shot triplets; times: update + compute only")
    failures = []
    rows = []
    for mode in args.modes:
        rng = np.random.default_rng(args.seed)
        data = []
        for _ in range(args.num_images):
            gt, prediction = make_image(rng, mode)
            gt, prediction = to_torch(gt), to_torch(prediction)
            data.append((gt, prediction, sgb_inputs(sgb[2], gt, prediction)))
        sgb_images = [d[2] for d in data]
        our_images = [(d[0], d[1]) for d in data]
        sgb_times, our_times = [], []  # (wall, CPU) seconds per repeat
        for _ in range(args.repeats):
            seconds, sgb_metrics = run_sgb(sgb, sgb_images, mode, zeroshot, names)
            sgb_times.append(seconds)
            seconds, ours = run_ours(our_images, mode, zeroshot, names)
            our_times.append(seconds)
        worst, bad = compare(mode, sgb_metrics, ours)
        failures += bad
        sgb_wall, sgb_cpu = (statistics.median(t[i] for t in sgb_times) for i in (0, 1))
        our_wall, our_cpu = (statistics.median(t[i] for t in our_times) for i in (0, 1))
        rows.append((mode, sgb_wall, our_wall, sgb_cpu, our_cpu, worst, len(sgb_metrics)))
        print(f"{mode}: wall SGB {sgb_wall:.3f} s, ours {our_wall:.3f} s, ratio {sgb_wall / our_wall:.1f}x; CPU SGB "
              f"{sgb_cpu:.3f} s, ours {our_cpu:.3f} s, ratio {sgb_cpu / our_cpu:.1f}x "
              f"(R@100 {sgb_metrics['R@100']:.4f}, mR@100 {sgb_metrics['mR@100']:.4f}, "
              f"zR@100 {sgb_metrics['zR@100']:.4f}; {len(sgb_metrics)} metrics, largest difference {worst:.1e})",
              flush=True)
        print("  wall per repeat, SGB: " + " ".join(f"{t[0]:.3f}" for t in sgb_times) + "; ours: " +
              " ".join(f"{t[0]:.3f}" for t in our_times), flush=True)
    print()
    print("| protocol | SGB wall | ours wall | **wall ratio** | SGB CPU | ours CPU | CPU ratio | metrics equal "
          "(largest difference) |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for mode, sgb_wall, our_wall, sgb_cpu, our_cpu, worst, count in rows:
        print(f"| {mode} | {sgb_wall:.2f} s | {our_wall:.3f} s | **{sgb_wall / our_wall:.1f}x** | {sgb_cpu:.2f} s | "
              f"{our_cpu:.3f} s | {sgb_cpu / our_cpu:.1f}x | {count} ({worst:.1e}) |")
    if failures:
        print("METRICS DIFFER:\n" + "\n".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
