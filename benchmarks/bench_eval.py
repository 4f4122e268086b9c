#!/usr/bin/env python
"""Scene graph evaluator benchmark: a VG-scale SGDet workload, generated in memory one image at a time.

    python benchmarks/bench_eval.py                      # 26,446 images (the VG150 test split), all metrics
    python benchmarks/bench_eval.py --num-images 2000    # quick run

Per image: 80 predicted boxes (some jittered copies of GT boxes), all 6,320 ordered pairs with 51-way softmax
scores, about 6 GT relations on about 12 GT boxes. Reported: evaluator time (``update`` + ``compute`` only, not the
generation of the fake data), images/s, peak RSS of the process, the size and write time of the compact prediction
file, and a check that re-evaluating the file gives the same numbers.
"""
import argparse
import os
import resource
import tempfile
import time

import numpy as np

from sgg.evaluation import (PredictionFileWriter, SceneGraphEvaluator, evaluate_prediction_file,
                            split_head_body_tail)
from vg_like_images import NUM_CLASSES, NUM_PREDICATES, detected_boxes, ordered_pairs, random_groundtruth


def make_image(rng, num_boxes=80):
    """One synthetic image: GT mapping and an SGDet prediction mapping (float32, like a model's output)."""
    gt, subj, obj, pred = random_groundtruth(rng)
    num_gt = len(gt["boxes"])
    # predicted boxes: a jittered copy of every GT box (label right 70% of the time), then random boxes
    boxes = detected_boxes(rng, gt["boxes"], num_boxes)
    labels = rng.integers(1, NUM_CLASSES, size=num_boxes)
    keep = rng.random(num_gt) < 0.7
    labels[:num_gt][keep] = gt["labels"][keep]
    scores = rng.uniform(0.05, 1.0, size=num_boxes).astype(np.float32)
    pairs = ordered_pairs(num_boxes)  # 6,320 ordered pairs
    logits = rng.standard_normal((len(pairs), NUM_PREDICATES), dtype=np.float32)
    logits[:, 0] += 2.0  # background dominates, as in a trained model
    rows = subj * (num_boxes - 1) + obj - (obj > subj)  # row of pair (subj, obj) in the pair list
    boost = rng.random(len(subj)) < 0.6
    logits[rows[boost], pred[boost]] += 7.0
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    prediction = {"boxes": boxes, "labels": labels, "scores": scores, "rel_pair_idxs": pairs, "rel_scores": logits}
    return gt, prediction


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-images", type=int, default=26446)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-file", action="store_true", help="skip writing and re-reading the prediction file")
    parser.add_argument("--file", default="", help="prediction file path (default: a temporary file, removed)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    names = ["__background__"] + [f"predicate_{i}" for i in range(1, NUM_PREDICATES)]
    counts = np.concatenate([[0], (1e5 / np.arange(1, NUM_PREDICATES) ** 1.5).astype(int)])
    zeroshot = np.column_stack([rng.integers(1, NUM_CLASSES, 6000), rng.integers(1, NUM_CLASSES, 6000),
                                rng.integers(1, NUM_PREDICATES, 6000)])
    kwargs = dict(mode="sgdet", num_predicates=NUM_PREDICATES, predicate_names=names, zeroshot_triplets=zeroshot,
                  predicate_counts=counts)
    evaluator = SceneGraphEvaluator(**kwargs)
    path = args.file or os.path.join(tempfile.mkdtemp(prefix="bench_eval_"), "predictions.sggpred")
    writer = None if args.no_file else PredictionFileWriter(path, {"mode": "sgdet", "num_predicates": NUM_PREDICATES,
                                                                   "predicate_names": names})
    groundtruths = {}
    eval_time = write_time = 0.0
    t_start = time.perf_counter()
    for image_id in range(args.num_images):
        gt, prediction = make_image(rng)
        groundtruths[image_id] = gt
        t0 = time.perf_counter()
        evaluator.update(gt, prediction, image_id=image_id)
        t1 = time.perf_counter()
        if writer is not None:
            writer.add(image_id, prediction)
        t2 = time.perf_counter()
        eval_time += t1 - t0
        write_time += t2 - t1
        if (image_id + 1) % 5000 == 0:
            print(f"  {image_id + 1} images, evaluator {eval_time:.1f} s", flush=True)
    t0 = time.perf_counter()
    results = evaluator.compute()
    compute_time = time.perf_counter() - t0
    eval_time += compute_time
    wall = time.perf_counter() - t_start

    print(f"images: {args.num_images}, pairs per image: 6320, GT relations: {results['num_gt_relations']}")
    print(f"evaluator time (update + compute): {eval_time:.1f} s  ({args.num_images / eval_time:.0f} images/s; "
          f"compute() {compute_time:.2f} s)")
    print(f"wall time incl. data generation: {wall:.1f} s")
    print("R@20/50/100: " + " / ".join(f"{results[f'R@{k}']:.4f}" for k in (20, 50, 100)) +
          "   ng-R: " + " / ".join(f"{results[f'ngR@{k}']:.4f}" for k in (20, 50, 100)) +
          "   mR: " + " / ".join(f"{results[f'mR@{k}']:.4f}" for k in (20, 50, 100)))
    if writer is not None:
        writer.close()
        size = os.path.getsize(path)
        print(f"prediction file: {size / 2**20:.1f} MiB ({size / args.num_images / 1024:.1f} KiB/image), "
              f"written in {write_time:.1f} s")
        t0 = time.perf_counter()
        again = evaluate_prediction_file(path, groundtruths.__getitem__, **kwargs).compute()
        reeval = time.perf_counter() - t0
        same = all(again[k] == results[k] or (again[k] != again[k] and results[k] != results[k])
                   for k in results if isinstance(results[k], float))
        print(f"re-evaluation from the file: {reeval:.1f} s, identical metrics: {same}")
        if not args.file:
            os.remove(path)
            os.rmdir(os.path.dirname(path))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB")
    print(f"head/body/tail groups (thirds rule): "
          f"{ {g: len(m) for g, m in split_head_body_tail(counts).items()} }")


if __name__ == "__main__":
    main()
