"""benchmarks/bench_eval_vs_sgb.py without SGB: its refusal of a folder that holds no SGB, the VG-like data it feeds
both evaluators, and its metric comparison (the SGB side itself needs SGB, which is never part of the repository)."""
import importlib.util
import math
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "benchmarks", "bench_eval_vs_sgb.py")


def _load():
    """The script as a module, with its folder first on sys.path as ``python benchmarks/...`` has it (the script
    imports its sibling vg_like_images.py)."""
    if os.path.dirname(SCRIPT) not in sys.path:
        sys.path.insert(0, os.path.dirname(SCRIPT))
    spec = importlib.util.spec_from_file_location("bench_eval_vs_sgb", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_folder_without_sgb_is_refused_with_its_path(tmp_path):
    proc = subprocess.run([sys.executable, SCRIPT, "--sgb-dir", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 2
    assert str(tmp_path) in proc.stderr and "sgb_env.py" in proc.stderr and "maskrcnn_benchmark" in proc.stderr


def test_images_are_vg_like_and_pairs_come_sorted_by_triplet_score():
    bench = _load()
    rng = np.random.default_rng(0)
    for mode in ("predcls", "sgcls", "sgdet"):
        gt, pred = bench.make_image(rng, mode)
        num_gt = len(gt["boxes"])
        assert 6 <= num_gt <= 18 and 1 <= len(gt["relations"]) <= 20
        num_boxes = 80 if mode == "sgdet" else num_gt
        pairs = pred["rel_pair_idxs"]
        assert len(pairs) == num_boxes * (num_boxes - 1)
        assert len({tuple(p) for p in pairs.tolist()}) == len(pairs) and (pairs[:, 0] != pairs[:, 1]).all()
        assert pred["rel_scores"].shape == (len(pairs), 51)
        assert np.allclose(pred["rel_scores"].sum(axis=1), 1.0, atol=1e-5)
        if mode != "sgdet":  # SGB's sgcls/predcls take the GT boxes in GT order
            assert np.array_equal(pred["boxes"], gt["boxes"])
        if mode == "predcls":
            assert np.array_equal(pred["labels"], gt["labels"])
        scores = np.ones(num_boxes, np.float32) if mode == "predcls" else pred["scores"]
        triplet = scores[pairs[:, 0]] * scores[pairs[:, 1]] * pred["rel_scores"][:, 1:].max(axis=1)
        assert (np.diff(triplet) <= 0).all()


def test_compare_flags_any_difference_beyond_1e_12_and_accepts_equal_nans():
    bench = _load()
    ours = {"R@20": 0.5, "zR@20": float("nan"), "mR@20": 0.25}
    worst, bad = bench.compare("sgcls", {"R@20": 0.5, "zR@20": float("nan"), "mR@20": 0.25 + 1e-13}, ours)
    assert bad == [] and math.isclose(worst, 1e-13, rel_tol=1e-3)
    worst, bad = bench.compare("sgcls", {"R@20": 0.5, "zR@20": 0.0, "mR@20": 0.2}, ours)
    assert [b.split(":")[0] for b in bad] == ["sgcls zR@20", "sgcls mR@20"]
