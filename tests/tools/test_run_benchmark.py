"""tools/run_benchmark.py: the experiment list, the tables on hand-made results, and a two-experiment run."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sgg.benchmarking.changes import changes_table, parent_changes
from sgg.benchmarking.runner import (detector_ap50, detector_fingerprint, experiment_parents, export_records,
                                     load_benchmark_spec, machine_description, markdown_tables, parse_times, run_dir,
                                     run_one, summarise, table_detector_ap50, train_command, write_detector_record)
from sgg.utils.errors import RunError
from sgg.data.synthetic import generate_synthetic_vg
from tool_process import vglike_data

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _write(tmp_path, text, name="list.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_spec_defaults_and_per_experiment_overrides(tmp_path):
    spec = load_benchmark_spec(_write(tmp_path, """
detector: {weights: det/model_final.pth}
base_config: configs/synthetic/relation_base.yaml
protocols: [predcls, sgcls]
seeds: [0, 1]
opts: [SOLVER.MAX_ITER, 10]
experiments:
  - name: FREQ
    opts: [MODEL.ROI_RELATION_HEAD.PREDICTOR, FrequencyPredictor]
  - name: Motif+X
    protocols: [sgdet]
    seeds: [3]
    command: "bash run.sh {protocol} {detector} {output_dir} {seed}"
  - name: Transformer
    seeds: {sgcls: [2, 5]}
"""))
    freq, motif, transformer = spec.experiments
    assert (freq.protocols, freq.seeds_for("predcls"), freq.seeds_for("sgcls"), freq.config) == (
        ["predcls", "sgcls"], [0, 1], [0, 1], "configs/synthetic/relation_base.yaml")
    # a mapping overrides the protocols it names; the others keep the list's seeds
    assert (transformer.seeds_for("predcls"), transformer.seeds_for("sgcls")) == ([0, 1], [2, 5])
    assert freq.opts == ["SOLVER.MAX_ITER", "10", "MODEL.ROI_RELATION_HEAD.PREDICTOR", "FrequencyPredictor"]
    assert (motif.protocols, motif.seeds_for("sgdet")) == (["sgdet"], [3])
    command = train_command(freq, "sgcls", 1, "det.pth", "out/FREQ", ["A", "b"], python="py")
    assert command[:4] == ["py", os.path.join("tools", "relation_train_net.py"), "--config-file",
                           "configs/synthetic/relation_base.yaml"]
    joined = " ".join(command)
    assert "USE_GT_BOX True MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL False" in joined
    assert "SEED 1 OUTPUT_DIR out/FREQ" in joined and joined.endswith("FrequencyPredictor A b")
    assert train_command(motif, "sgdet", 3, "d.pth", "o", [])[:6] == ["bash", "run.sh", "sgdet", "d.pth", "o", "3"]


@pytest.mark.parametrize("text,message", [
    ("experiments: []", "non-empty list"),
    ("experiments:\n  - {name: A, config: c.yaml}\n  - {name: A, config: c.yaml}", "used twice"),
    ("experiments:\n  - {name: A, config: c.yaml, opts: [KEY]}", "KEY VALUE pairs"),
    ("experiments:\n  - {name: A, config: c.yaml, protocols: [predet]}", "protocols must be"),
    ("experiments:\n  - {name: A, confg: c.yaml}", "unknown keys ['confg']"),
    ("experiments:\n  - {name: A}", "give a 'config'"),
    ("experiments:\n  - {name: 'a b', config: c.yaml}", "becomes a folder"),
    ("experiments:\n  - {name: A, config: c.yaml, seeds: {sgdett: [0]}}", "unknown protocols ['sgdett']"),
    ("experiments:\n  - {name: A, config: c.yaml, seeds: {sgdet: []}}", "seeds[sgdet] must be a non-empty list"),
    ("seeds: [0, x]\nexperiments:\n  - {name: A, config: c.yaml}", "seeds must be a non-empty list of integers"),
    ("experiments:\n  - {name: A, config: c.yaml, parent: B}", "parent 'B' must name another experiment"),
    ("experiments:\n  - {name: A, config: c.yaml, parent: A}", "parent 'A' must name another experiment"),
    ("detectors: {}\nexperiments:\n  - {name: A, config: c.yaml}", "unknown top-level keys ['detectors']"),
    ("detector: {weight: d.pth}\nexperiments:\n  - {name: A, config: c.yaml}", "keys among config, weights, threads"),
    ("detector: {weights: d.pth, threads: 0}\nexperiments:\n  - {name: A, config: c.yaml}",
     "detector.threads must be a positive integer"),
    ("detector: {weights: d.pth, threads: two}\nexperiments:\n  - {name: A, config: c.yaml}",
     "detector.threads must be a positive integer"),
])
def test_bad_experiment_lists_name_the_file_and_entry(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as error:
        load_benchmark_spec(path)
    assert message in str(error.value) and path in str(error.value)


def test_missing_experiment_list_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.yaml"):
        load_benchmark_spec(str(tmp_path / "nothere.yaml"))


def _fake_run(root, name, protocol, seed, r50, mr50, train="0:01:40", infer="0.0250", **model_info):
    folder = run_dir(str(root), name, protocol, seed)
    os.makedirs(os.path.join(folder, "inference", "SyntheticVG_test"))
    with open(os.path.join(folder, "inference", "SyntheticVG_test", "results.json"), "w") as f:
        json.dump({"R@50": r50, "mR@50": mr50, "F@50": 2 * r50 * mr50 / (r50 + mr50), "head_mR@50": 0.5,
                   "body_mR@50": 0.25, "tail_mR@50": 0.0,
                   "per_predicate": {"names": ["on", "has"], "R@50": [r50, mr50]}}, f)
    with open(os.path.join(folder, "log.txt"), "w") as f:
        f.write(f"x INFO: Total training time: {train} (0.1 s / it)\n"
                f"x INFO: Total inference pure compute time: {infer} s / img per device\n")
    with open(os.path.join(folder, "model_info.json"), "w") as f:
        json.dump({"encoder": "R-101-FPN Faster R-CNN", "decoder": "MotifPredictor", "total_parameters": 1000,
                   "trainable_parameters": 400, "backbone_parameters": 300, "ims_per_batch": 8, "device": "cpu",
                   **model_info}, f)


def test_tables_average_seeds_with_their_spread(tmp_path):
    spec = load_benchmark_spec(_write(tmp_path, """
ks: [50]
seeds: [0, 1]
protocols: [predcls]
experiments:
  - {name: A, config: c.yaml}
  - {name: B, config: c.yaml, seeds: [0]}
"""))
    _fake_run(tmp_path, "A", "predcls", 0, 0.40, 0.10)
    _fake_run(tmp_path, "A", "predcls", 1, 0.50, 0.20, train="0:02:00", infer="0.0350")
    _fake_run(tmp_path, "B", "predcls", 0, 0.30, 0.30, train="30:00:01")  # a run resumed over several days
    rows = summarise(spec, str(tmp_path), detector_ap50=0.8)
    a, b = rows
    # mean of 0.40 and 0.50 is 0.45; sample std sqrt(((-0.05)^2 + 0.05^2) / 1) = 0.0707
    assert a["metrics"]["R@50"] == pytest.approx(0.45) and a["spread"]["R@50"] == pytest.approx(0.0707107, 1e-5)
    assert a["metrics"]["mR@50"] == pytest.approx(0.15)
    assert a["model"]["train_seconds"] == pytest.approx(110.0)  # (100 s + 120 s) / 2
    assert a["model"]["inference_s_per_image"] == pytest.approx(0.03)
    table = markdown_tables(rows, [50])
    assert "| A | predcls | 2 | 45.0±7.1 | 15.0±7.1 |" in table
    assert "| B | predcls | 1 | 30.0 | 30.0 | 30.0 | 50.0 / 25.0 / 0.0 |" in table
    assert ("| A | predcls | R-101-FPN Faster R-CNN | MotifPredictor | 300 | 1,000 | 400 | 0.800 | 8 | cpu | 00:01:50 | "
            "0.0300 |") in table
    assert "| cpu | 30:00:01 | 0.0250 |" in table  # not wrapped at 24 hours (06:00:01)


def test_changes_against_the_parent_pair_each_seed_with_the_parents_same_seed(tmp_path):
    """A+X - A per seed, then mean and sample spread; B (``parent: A``, seed 1 only) is paired with A's seed 1, not
    seed 0; rows without a parent, or whose parent has no finished run, get no entry."""
    spec = load_benchmark_spec(_write(tmp_path, """
ks: [50]
seeds: [0, 1]
protocols: [predcls]
experiments:
  - {name: A, config: c.yaml}
  - {name: A+X, config: c.yaml}
  - {name: B, config: c.yaml, parent: A, seeds: [1]}
  - {name: D, config: c.yaml}
  - {name: D+Y, config: c.yaml, seeds: [0]}
  - {name: E, config: c.yaml}
  - {name: E+Z, config: c.yaml}
  - {name: F, config: c.yaml}
  - {name: F+W, config: c.yaml, seeds: [0, 2]}
"""))
    for name, seed, r50, mr50 in [("A", 0, 0.40, 0.10), ("A", 1, 0.50, 0.20), ("A+X", 0, 0.35, 0.18),
                                  ("A+X", 1, 0.52, 0.24), ("B", 1, 0.45, 0.30), ("D+Y", 0, 0.3, 0.3),
                                  ("E+Z", 0, 0.3, 0.3), ("D", 1, 0.2, 0.1), ("F", 0, 0.3, 0.3), ("F", 2, 0.3, 0.3),
                                  ("F+W", 0, 0.2, 0.2), ("F+W", 2, 0.2, 0.2)]:
        _fake_run(tmp_path, name, "predcls", seed, r50, mr50)
    # D+Y: its seed 0 has no parent run (D has seed 1); E: none; F's seed 2 is on disk but not in F's list
    ax, b, fw = parent_changes(spec, str(tmp_path))
    assert (fw["seeds"], fw["change"]["R@50"]) == ([0], pytest.approx(-0.1))
    # A+X: R@50 changes -5.0 (seed 0) and +2.0 (seed 1): mean -1.5, spread sqrt(3.5^2 + 3.5^2) = 4.95;
    # mR@50 +8.0 and +4.0: mean +6.0, spread 2.83
    assert (ax["name"], ax["parent"], ax["seeds"]) == ("A+X", "A", [0, 1])
    assert ax["change"]["R@50"] == pytest.approx(-0.015) and ax["spread"]["R@50"] == pytest.approx(0.0494975, 1e-5)
    assert ax["change"]["mR@50"] == pytest.approx(0.06) and ax["spread"]["mR@50"] == pytest.approx(0.0282843, 1e-5)
    assert ax["per_seed"][0]["R@50"] == pytest.approx(-0.05) and ax["per_seed"][1]["mR@50"] == pytest.approx(0.04)
    assert (b["seeds"], b["change"]["R@50"], b["change"]["mR@50"]) == ([1], pytest.approx(-0.05), pytest.approx(0.1))
    table = changes_table([ax, b, fw], [50])
    assert "| A+X | A | predcls | 2 | -1.5±4.9 | +6.0±2.8 | +0.0 / +0.0 / +0.0 | s0 -5.0 / +8.0; s1 +2.0 / +4.0 |" \
        in table
    assert "| B | A | predcls | 1 | -5.0 | +10.0 | +0.0 / +0.0 / +0.0 | s1 -5.0 / +10.0 |" in table
    assert changes_table([], [50]) == ""
    # the tool writes them beside the tables: the last table of benchmark.md and benchmark_changes.json
    proc = subprocess.run([sys.executable, "tools/run_benchmark.py", "--experiments", str(tmp_path / "list.yaml"),
                           "--output-root", str(tmp_path), "--collect-only"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert table in (tmp_path / "benchmark.md").read_text()
    written = json.loads((tmp_path / "benchmark_changes.json").read_text())
    assert [(c["name"], c["seeds"]) for c in written] == [("A+X", [0, 1]), ("B", [1]), ("F+W", [0])]


def test_per_protocol_seeds_choose_the_runs_and_the_rows(tmp_path):
    """``seeds: {sgdet: [0]}``: two seeds in PredCls, one in SGDet, in the job list and in the table."""
    path = _write(tmp_path, """
ks: [50]
detector: {config: configs/synthetic/detector_tiny_fpn.yaml, weights: det/model_final.pth}
seeds: {predcls: [0, 1], sgdet: [0]}
protocols: [predcls, sgdet]
experiments:
  - {name: A, config: c.yaml}
""")
    spec = load_benchmark_spec(path)
    proc = subprocess.run([sys.executable, "tools/run_benchmark.py", "--experiments", path, "--output-root",
                           str(tmp_path / "runs"), "--dry-run"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    planned = sorted(line.split("INFO: ")[1].split(":")[0] for line in proc.stderr.splitlines()
                     if "INFO: A " in line)
    assert planned == ["A predcls seed 0", "A predcls seed 1", "A sgdet seed 0"]
    proc = subprocess.run([sys.executable, "tools/run_benchmark.py", "--experiments", path, "--output-root",
                           str(tmp_path / "runs"), "--dry-run", "--seeds", "1"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert [line.split("INFO: ")[1].split(":")[0] for line in proc.stderr.splitlines() if "INFO: A " in line] == [
        "A predcls seed 1"]  # --seeds picks among each protocol's own seeds
    for protocol, seed in [("predcls", 0), ("predcls", 1), ("sgdet", 0), ("sgdet", 1)]:
        _fake_run(tmp_path, "A", protocol, seed, 0.40 + 0.1 * seed, 0.10)
    predcls, sgdet = summarise(spec, str(tmp_path))
    assert (predcls["seeds"], predcls["metrics"]["R@50"]) == (2, pytest.approx(0.45))
    assert (sgdet["seeds"], sgdet["metrics"]["R@50"]) == (1, pytest.approx(0.40))  # seed 1 is not in the list


def _fake_sgdet_run(root, name, metrics, cap):
    """An SGDet seed-0 run with these results and a model that ranks ``cap`` triplets per image (None: no cap)."""
    folder = run_dir(str(root), name, "sgdet", 0)
    os.makedirs(os.path.join(folder, "inference", "T"))
    with open(os.path.join(folder, "inference", "T", "results.json"), "w") as f:
        json.dump(metrics, f)
    with open(os.path.join(folder, "model_info.json"), "w") as f:
        json.dump({"max_triplets_per_image": cap}, f)


def test_cells_beyond_a_models_triplet_cap_are_marked(tmp_path):
    """IterativeSG ranks one triplet per query: with 30 queries its @50 and @100 cells (and the head / body / tail
    mR@100) carry the mark and the table explains it; its ngR@K and the other row do not."""
    spec = load_benchmark_spec(_write(tmp_path, "ks: [20, 50, 100]\nprotocols: [sgdet]\nexperiments:\n"
                                                "  - {name: ISG, config: c.yaml}\n  - {name: Motif, config: c.yaml}\n"
                                                "  - {name: ISG50, config: c.yaml}\n"))
    for name, cap in (("ISG", 30), ("Motif", None), ("ISG50", 50)):
        metrics = {f"{p}@{k}": 0.25 for p in ("R", "mR", "F", "ngR", "ngmR") for k in (20, 50, 100)}
        metrics.update({f"{g}_mR@100": 0.5 for g in ("head", "body", "tail")})
        _fake_sgdet_run(tmp_path, name, metrics, cap)
    table = markdown_tables(summarise(spec, str(tmp_path)), [20, 50, 100])
    assert ("| ISG | sgdet | 1 | 25.0 / 25.0† / 25.0† | 25.0 / 25.0† / 25.0† | 25.0 / 25.0† / 25.0† | "
            "50.0 / 50.0 / 50.0† | 25.0 / 25.0 / 25.0 | 25.0 / 25.0 / 25.0 |") in table
    assert "| Motif | sgdet | 1 | 25.0 / 25.0 / 25.0 | 25.0 / 25.0 / 25.0 |" in table
    assert "| ISG50 | sgdet | 1 | 25.0 / 25.0 / 25.0† |" in table  # K equal to the cap ranks all it can
    assert "† K above the most triplets the model ranks per image (30, 50;" in table


def test_changes_beyond_a_triplet_cap_are_marked(tmp_path):
    """IterativeSG-no-weights against IterativeSG (30 queries): the change at K = 50 and 100 is a change at 30."""
    spec = load_benchmark_spec(_write(tmp_path, "ks: [20, 50, 100]\nprotocols: [sgdet]\nexperiments:\n"
                                                "  - {name: ISG, config: c.yaml}\n  - {name: ISG+W, config: c.yaml}\n"))
    for name, value in (("ISG", 0.25), ("ISG+W", 0.20)):
        _fake_sgdet_run(tmp_path, name, {f"{p}@{k}": value for p in ("R", "mR") for k in (20, 50, 100)}, cap=30)
    (entry,) = parent_changes(spec, str(tmp_path))
    assert entry["capped_ks"] == [50, 100]
    assert "| ISG+W | ISG | sgdet | 1 | -5.0 / -5.0† / -5.0† | -5.0 / -5.0† / -5.0† | - / - / -† | s0 -5.0† / -5.0† |" \
        in changes_table([entry], [20, 50, 100])


def test_a_run_started_from_its_own_detector_reports_that_detectors_ap(tmp_path):
    """IterativeSG starts from its DETR, not the list's Faster R-CNN: its row shows the DETR's AP@0.5."""
    spec = load_benchmark_spec(_write(tmp_path, "ks: [50]\nprotocols: [sgdet]\nexperiments:\n  - {name: A, config: c.yaml}\n"
                                                "  - {name: B, config: c.yaml}\n"))
    _fake_run(tmp_path, "A", "sgdet", 0, 0.40, 0.10)
    _fake_run(tmp_path, "B", "sgdet", 0, 0.30, 0.10)
    detr = tmp_path / "DETR"
    (detr / "inference" / "SyntheticVG_test").mkdir(parents=True)
    (detr / "inference" / "SyntheticVG_test" / "detection_metrics.json").write_text('{"AP50": 0.53, "mAP": 0.1}')
    config = f"MODEL:\n  PRETRAINED_DETECTOR_CKPT: {detr / 'model_final.pth'}\n"
    (tmp_path / "A" / "sgdet" / "seed0" / "config.yaml").write_text(config)
    # the list's detector, retrained since B ran (0.9 now at the path B's config names, 0.8 when B started)
    listed = tmp_path / "detector"
    (listed / "inference" / "SyntheticVG_test").mkdir(parents=True)
    (listed / "inference" / "SyntheticVG_test" / "detection_metrics.json").write_text('{"AP50": 0.9, "mAP": 0.1}')
    (tmp_path / "B" / "sgdet" / "seed0" / "config.yaml").write_text(
        f"MODEL:\n  PRETRAINED_DETECTOR_CKPT: {listed / 'model_final.pth'}\n")
    for name in "AB":  # the runner records the list's detector in every run folder, IterativeSG's too
        (tmp_path / name / "sgdet" / "seed0" / "detector.json").write_text(
            json.dumps({"weights": str(listed / "model_final.pth"), "ap50": 0.8}))
    a, b = summarise(spec, str(tmp_path), detector_ap50=0.7)  # 0.7: the table's fall-back, which no row needs
    assert a["model"]["detector_ap50"] == pytest.approx(0.53) and b["model"]["detector_ap50"] == pytest.approx(0.8)
    records = tmp_path / "records"  # kept in the exported records, which have neither the config nor the DETR
    export_records(spec, str(tmp_path), str(records))
    a, b = summarise(spec, str(records), detector_ap50=0.7)
    assert a["model"]["detector_ap50"] == pytest.approx(0.53) and b["model"]["detector_ap50"] == pytest.approx(0.8)


def test_exported_records_rebuild_the_same_tables(tmp_path):
    spec = load_benchmark_spec(_write(tmp_path, """
ks: [50]
seeds: [0, 1]
protocols: [predcls]
experiments:
  - {name: A, config: c.yaml}
  - {name: B, config: c.yaml}
"""))
    root, dest = tmp_path / "runs", tmp_path / "records"
    _fake_run(root, "A", "predcls", 0, 0.40, 0.10, train="1:02:03")
    _fake_run(root, "A", "predcls", 1, 0.50, 0.20, infer="0.0351")
    with open(os.path.join(run_dir(str(root), "A", "predcls", 0), "wall_time.json"), "w") as f:
        json.dump({"seconds": 3800.5, "attempts": 2, "machine": "AMD EPYC 7B13 (CPU family 25)", "threads": "1"},
                  f)
    os.makedirs(run_dir(str(root), "B", "predcls", 0))  # started, never finished: not exported
    (tmp_path / "runs" / "A" / "predcls" / "seed0" / "model_final.pth").write_bytes(b"weights")
    for seed in (0, 1):
        folder = run_dir(str(root), "A", "predcls", seed)
        write_detector_record(folder, "det/model_final.pth", "9a129038d9a0" + "0" * 52)
        with open(os.path.join(folder, "config.yaml"), "w") as f:
            f.write(f"SEED: {seed}\n")
    assert export_records(spec, str(root), str(dest)) == 2
    assert summarise(spec, str(dest), 0.8) == summarise(spec, str(root), 0.8)
    assert summarise(spec, str(dest))[0]["model"]["train_seconds"] == pytest.approx((3723 + 100) / 2)
    assert not list(dest.rglob("*.pth")) and not (dest / "B").exists()
    record = dest / "A" / "predcls" / "seed0"
    assert json.loads((record / "wall_time.json").read_text()) == {  # which CPU drew the seed travels too
        "seconds": 3800.5, "attempts": 2, "machine": "AMD EPYC 7B13 (CPU family 25)", "threads": "1"}
    assert (record / "inference" / "SyntheticVG_test" / "results.json").is_file()
    assert (record / "config.yaml").read_text() == "SEED: 0\n"  # what was trained travels with the numbers
    assert json.loads((record / "detector.json").read_text())["sha256"].startswith("9a129038d9a0")
    assert "`9a129038d9a0` for every row" in markdown_tables(summarise(spec, str(dest)), [50])


def test_detector_fingerprint_is_the_checkpoints_sha256(tmp_path):
    path = tmp_path / "model_final.pth"
    path.write_bytes(b"weights")  # sha256sum of the 7 bytes 'weights'
    assert detector_fingerprint(str(path)) == "9a129038d9a00aed0cf6a7ea059ca50a813449061ab87848cf1a13eafdf33b2c"


def test_rows_given_different_detector_weights_are_flagged(tmp_path):
    """A benchmark resumed on a new machine whose retrained detector differs: the table says its rows do not share
    a detector and which rows had which weights; a run recorded before fingerprints existed is named as such."""
    spec = load_benchmark_spec(_write(tmp_path, "ks: [50]\nseeds: [0, 1]\nprotocols: [predcls]\nexperiments:\n"
                                                "  - {name: A, config: c.yaml}\n  - {name: B, config: c.yaml}\n"
                                                "  - {name: C, config: c.yaml, seeds: [0]}\n"))
    for name, seed, sha in (("A", 0, "a" * 64), ("A", 1, "a" * 64), ("B", 0, "a" * 64), ("B", 1, "b" * 64),
                            ("C", 0, None)):
        _fake_run(tmp_path, name, "predcls", seed, 0.4, 0.1)
        if sha:
            write_detector_record(run_dir(str(tmp_path), name, "predcls", seed), "det.pth", sha)
    rows = summarise(spec, str(tmp_path))
    assert [r["model"]["detector_sha256"] for r in rows] == [["a" * 64], ["a" * 64, "b" * 64], ["unrecorded"]]
    table = markdown_tables(rows, [50])
    assert ("**Warning: the rows were given different detector weights** (SHA-256), so they are not one comparison: "
            "`aaaaaaaaaaaa` (A predcls, B predcls); `bbbbbbbbbbbb` (B predcls); unrecorded (C predcls).") in table
    assert "for every row" not in markdown_tables(rows[:2], [50])
    assert "`aaaaaaaaaaaa` for every row" in markdown_tables(rows[:1], [50])
    # one set of weights beside runs from before detector.json: not "different weights", but not one either
    one_and_unrecorded = markdown_tables([rows[0], rows[2]], [50])
    assert ("**Warning: not every row recorded its detector weights** (SHA-256), so those rows cannot be shown to "
            "share the others' detector: `aaaaaaaaaaaa` (A predcls); unrecorded (C predcls).") in one_and_unrecorded
    assert "different detector weights" not in one_and_unrecorded


def test_each_row_prints_the_ap50_of_the_detector_it_was_given(tmp_path):
    """Rows given different detectors (a retrained one is another detector on another CPU type): the model table
    prints each row's detector AP@0.5 from its detector.json, not the list's current detector's for all; a run whose
    detector.json predates the AP field falls back to the table's value."""
    spec = load_benchmark_spec(_write(tmp_path, "ks: [50]\nseeds: [0]\nprotocols: [predcls]\nexperiments:\n"
                                                "  - {name: A, config: c.yaml}\n  - {name: B, config: c.yaml}\n"
                                                "  - {name: C, config: c.yaml}\n"))
    for name in "ABC":
        _fake_run(tmp_path, name, "predcls", 0, 0.4, 0.1)
    write_detector_record(run_dir(str(tmp_path), "A", "predcls", 0), "det.pth", "a" * 64, 0.7616)
    write_detector_record(run_dir(str(tmp_path), "B", "predcls", 0), "det.pth", "b" * 64, 0.7585)
    write_detector_record(run_dir(str(tmp_path), "C", "predcls", 0), "det.pth", "c" * 64)
    record = json.loads((tmp_path / "B" / "predcls" / "seed0" / "detector.json").read_text())
    assert record == {"weights": "det.pth", "sha256": "b" * 64, "ap50": 0.7585}
    rows = summarise(spec, str(tmp_path), 0.5)
    assert [r["model"]["detector_ap50"] for r in rows] == [0.7616, 0.7585, 0.5]
    model_lines = [[line for line in markdown_tables(rows, [50]).splitlines() if line.startswith(f"| {name} |")][-1]
                   for name in "ABC"]  # each row's last line is its model-table line
    assert [line.split("|")[8].strip() for line in model_lines] == ["0.762", "0.758", "0.500"]


def test_the_vglike_lists_detector_is_the_committed_one():
    """configs/benchmark_vglike.yaml names committed weights (a retrained detector differs across CPU types), their
    test AP@0.5 (the profile's 0.5 target) is in the committed record beside them, and the SHA-256 in the list's
    comment is theirs."""
    vglike = load_benchmark_spec(os.path.join(REPO, "configs", "benchmark_vglike.yaml"))
    weights = os.path.join(REPO, vglike.detector_weights)
    assert vglike.detector_weights == "benchmarks/results/synthetic_vglike/detector/model_final.pth"
    assert detector_fingerprint(weights).startswith("f95546f77d9e")
    assert detector_ap50(weights) == pytest.approx(0.5140, abs=5e-5)
    with open(os.path.join(REPO, "configs", "benchmark_vglike.yaml")) as f:
        assert "SHA-256 f95546f77d9e" in f.read()


def test_a_run_started_again_keeps_the_failed_attempts_log(tmp_path):
    folder = str(tmp_path / "A" / "predcls" / "seed0")
    with pytest.raises(RunError, match="exit 3") as error:
        run_one([sys.executable, "-c", "print('first attempt'); raise SystemExit(3)"], folder)
    assert "first attempt" in str(error.value) and not os.path.exists(os.path.join(folder, "wall_time.json"))
    run_one([sys.executable, "-c", "print('second attempt'); print('== DETR pre-training -> x')"], folder)
    log = open(os.path.join(folder, "run.log")).read()
    assert log.index("first attempt") < log.index("second attempt") and log.count("\n$ ") == 2
    with open(os.path.join(folder, "wall_time.json")) as f:
        record = json.load(f)
    assert record["seconds"] > 0 and record["machine"] == machine_description()
    assert record["attempts"] == 2  # the command's own "== ..." lines are not attempts


def test_machine_description_names_the_first_cpu_and_its_family(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n"
                       "model name\t: AMD EPYC 7B13 64-Core Processor\n\nprocessor\t: 1\ncpu family\t: 6\n"
                       "model name\t: Intel(R) Xeon(R) Processor\n")
    assert machine_description(str(cpuinfo)) == "AMD EPYC 7B13 64-Core Processor (CPU family 25)"
    assert machine_description(str(tmp_path / "absent"))  # no /proc: platform's name, never empty


def test_rebuilt_records_print_their_own_detectors_ap_not_the_lists(tmp_path):
    """Records of an old benchmark (their detector: AP@0.5 0.812) rebuilt on a machine where the list's detector
    weights are a newer detector (0.822): --collect-only prints 0.812; a fresh run prints the list's detector."""
    def detector(folder, ap50):
        metrics = folder / "inference" / "SyntheticVG_test"
        metrics.mkdir(parents=True)
        (metrics / "detection_metrics.json").write_text(json.dumps({"AP50": ap50}))
        return str(folder / "model_final.pth")

    listed = detector(tmp_path / "new_detector", 0.822)
    records = tmp_path / "records"
    detector(records / "detector", 0.812)
    spec = load_benchmark_spec(_write(tmp_path, f"detector: {{weights: {listed}}}\n"
                                                "experiments:\n  - {name: A, config: c.yaml}\n"))
    assert table_detector_ap50(spec, str(records), collect_only=True) == pytest.approx(0.812)
    assert table_detector_ap50(spec, str(records), collect_only=False) == pytest.approx(0.822)
    assert table_detector_ap50(spec, str(tmp_path / "empty"), collect_only=True) == pytest.approx(0.822)


def test_log_times_take_the_last_occurrence(tmp_path):
    (tmp_path / "log.txt").write_text("Total training time: 0:00:10 (1 s / it)\n"
                                      "Total inference pure compute time: 0.5 s / img\n"
                                      "Total inference pure compute time: 0.25 s / img\n")
    assert parse_times(str(tmp_path)) == {"train_seconds": 10.0, "inference_s_per_image": 0.25}


def _run_tool(spec, root, *args, env, timeout=900):
    """tools/run_benchmark.py on ``spec`` with ``root`` as the output root; asserts success, returns its output."""
    command = [sys.executable, "tools/run_benchmark.py", "--experiments", spec, "--output-root", str(root), *args]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def test_two_experiments_end_to_end_and_rerun_skips(tmp_path):
    env, opts = _tiny_env_and_opts(tmp_path)  # OMP_NUM_THREADS=1 for the runs; the detector's own count: 2
    root = tmp_path / "bench"
    spec = _write(tmp_path, _detector_yaml(root) + f"""  threads: 2
base_config: configs/synthetic/relation_base.yaml
protocols: [predcls]
experiments:
  - name: FREQ
    opts: [MODEL.ROI_RELATION_HEAD.PREDICTOR, FrequencyPredictor]
  - name: Motif
    opts: [MODEL.ROI_RELATION_HEAD.PREDICTOR, MotifPredictor]
""")
    assert "training the detector (OMP_NUM_THREADS=2): " in _run_tool(spec, root, *opts, env=env)
    assert "CPU threads: 2" in (root / "detector" / "log.txt").read_text()
    assert "CPU threads: 1" in (root / "Motif" / "predcls" / "seed0" / "log.txt").read_text()
    rows = json.loads((root / "benchmark.json").read_text())
    assert [(r["name"], r["protocol"]) for r in rows] == [("FREQ", "predcls"), ("Motif", "predcls")]
    for row in rows:
        results = json.loads((root / row["name"] / "predcls" / "seed0" / "inference" / "SyntheticVG_test" /
                              "results.json").read_text())
        assert row["metrics"]["R@50"] == pytest.approx(results["R@50"])
        assert row["model"]["detector_ap50"] is not None
        assert row["model"]["trainable_parameters"] > 0 and row["model"]["ims_per_batch"] == 2
        assert (root / "per_predicate" / f"{row['name']}_predcls_R@100.png").is_file()
    table = (root / "benchmark.md").read_text()
    assert "| FREQ | predcls | 1 |" in table and "| Motif | predcls | 1 |" in table
    assert "| Motif | predcls | tiny-FPN Faster R-CNN | MotifPredictor | " in table
    # the records without checkpoints rebuild the same tables (detector AP included) in another folder
    records = tmp_path / "records"
    _run_tool(spec, root, "--collect-only", "--export-records", str(records), env=env)
    other_list = _write(tmp_path, (tmp_path / "list.yaml").read_text().replace(str(root), str(tmp_path / "gone")),
                        "other.yaml")
    _run_tool(other_list, records, "--collect-only", env=env)
    assert json.loads((records / "benchmark.json").read_text()) == rows
    assert not list(records.rglob("*.pth"))
    # every run records the detector weights it was given; the records keep that and the resolved config
    sha = detector_fingerprint(str(root / "detector" / "model_final.pth"))
    for name in ("FREQ", "Motif"):
        assert json.loads((root / name / "predcls" / "seed0" / "detector.json").read_text())["sha256"] == sha
        assert "PREDICTOR: " in (records / name / "predcls" / "seed0" / "config.yaml").read_text()
    assert f"`{sha[:12]}` for every row" in table
    log = root / "Motif" / "predcls" / "seed0" / "run.log"
    before = log.stat().st_mtime
    assert "results exist, skipped" in _run_tool(spec, root, *opts, env=env)
    assert log.stat().st_mtime == before
    # the list's detector retrained to other weights: skipped runs say they were trained on the old ones
    with open(root / "detector" / "model_final.pth", "ab") as f:
        f.write(b"retrained")
    assert "Motif predcls seed 0 was trained on other detector weights" in _run_tool(spec, root, *opts, env=env)


def _detector_yaml(root):
    """The experiment list's detector entry: trained by the tool into ``root``/detector."""
    return f"detector:\n  config: configs/synthetic/detector_tiny_fpn.yaml\n  weights: {root}/detector/model_final.pth\n"


def _tiny_env_and_opts(tmp_path):
    data = tmp_path / "data"
    generate_synthetic_vg(str(data / "synthetic_vg"), num_train=30, num_test=10, seed=3, workers=1)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SGG_DATA_DIR"):
        env.pop(key, None)
    opts = ["DATASETS.DATA_DIR", str(data), "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2",
            "TEST.IMS_PER_BATCH", "4", "SOLVER.VAL_PERIOD", "100", "SOLVER.CHECKPOINT_PERIOD", "100",
            "DATASETS.VAL_SIZE", "4", "GLOVE_DIR", str(tmp_path / "no_glove")]
    return env, opts


def test_multi_stage_recipe_shares_its_prerequisites(tmp_path):
    # Transformer + cdl needs the CE PredCls model and its confusion matrix: trained once under _stages/seed0, the
    # final stage's results in the benchmark's run folder
    env, opts = _tiny_env_and_opts(tmp_path)
    root = tmp_path / "bench"
    spec = _write(tmp_path, _detector_yaml(root) + f"""
protocols: [predcls]
experiments:
  - name: Transformer+cdl
    command: bash scripts/benchmark/recipe.sh cdl TransformerPredictor {{protocol}} {{detector}} {{output_dir}} {{seed}}
""")
    # A tiny training split lacks predicates, so its confusion matrix would be refused: an existing matrix is
    # reused by the recipe (as an existing CE model would be), which this run checks too.
    stage = root / "_stages" / "seed0" / "TransformerPredictor" / "predcls"
    stage.mkdir(parents=True)
    num_predicates = 1 + len(json.loads((tmp_path / "data" / "synthetic_vg" / "VG-SGG-dicts-with-attri.json")
                                        .read_text())["idx_to_predicate"])
    matrix = np.eye(num_predicates) * 10 + 1
    np.save(stage / "conf_mat_freq_train.npy", matrix)
    _run_tool(spec, root, *opts, env=env)
    assert (stage / "model_final.pth").is_file()  # the CE stage was trained once, in its shared folder
    assert np.array_equal(np.load(stage / "conf_mat_freq_train.npy"), matrix)
    run = root / "Transformer+cdl" / "predcls" / "seed0"
    config = (run / "config.yaml").read_text()
    assert str(stage / "conf_mat_freq_train.npy") in config and "cdl" in config
    rows = json.loads((root / "benchmark.json").read_text())
    assert [(r["name"], r["protocol"]) for r in rows] == [("Transformer+cdl", "predcls")]


def test_recipe_reuses_the_benchmarks_own_ce_run(tmp_path):
    # CE_ROOT points a recipe at the list's CE row: its finished run is linked as the CE stage, not trained again
    env, opts = _tiny_env_and_opts(tmp_path)
    root = tmp_path / "bench"
    spec = _write(tmp_path, _detector_yaml(root) + f"""
base_config: configs/synthetic/relation_base.yaml
protocols: [predcls]
experiments:
  - name: Transformer
    opts: [MODEL.ROI_RELATION_HEAD.PREDICTOR, TransformerPredictor]
  - name: Transformer+CCE+Ranker
    command: env CE_ROOT={{output_dir}}/../../../Transformer bash scripts/benchmark/recipe.sh cce_ranker TransformerPredictor {{protocol}} {{detector}} {{output_dir}} {{seed}}
""")
    _run_tool(spec, root, *opts, env=env)
    stage = root / "_stages" / "seed0" / "TransformerPredictor" / "predcls"
    ce_run = root / "Transformer" / "predcls" / "seed0"
    assert stage.is_symlink() and stage.resolve() == ce_run.resolve()
    final_config = (root / "Transformer+CCE+Ranker" / "predcls" / "seed0" / "config.yaml").read_text()
    assert str(stage / "model_final.pth") in final_config
    rows = json.loads((root / "benchmark.json").read_text())
    assert [r["name"] for r in rows] == ["Transformer", "Transformer+CCE+Ranker"]


def test_hca_two_stage_recipe_reuses_the_lists_hca_cdl_row(tmp_path):
    # CDL_ROOT: HCA+cdl+BA-SGG's stage 1 (HCA + cdl in the protocol) is the list's HCA+cdl run, linked, not retrained
    env, opts = _tiny_env_and_opts(tmp_path)
    root = tmp_path / "bench"
    recipe = "bash scripts/benchmark/recipe.sh {0} HybridCoAttentionPredictor {{protocol}} {{detector}} {{output_dir}} {{seed}}"
    spec = _write(tmp_path, _detector_yaml(root) + f"""
protocols: [predcls]
experiments:
  - name: HCA
    config: configs/synthetic/hca_ce.yaml
  - name: HCA+cdl
    command: env CE_ROOT={{output_dir}}/../../../HCA {recipe.format("cdl")}
  - name: HCA+cdl+BA-SGG
    command: env CE_ROOT={{output_dir}}/../../../HCA CDL_ROOT={{output_dir}}/../../../HCA+cdl {recipe.format("cdl_ba_sgg")}
""")
    _run_tool(spec, root, *opts, env=env)
    stage1 = root / "_stages" / "seed0" / "HCA_CDL" / "predcls"
    assert stage1.is_symlink() and stage1.resolve() == (root / "HCA+cdl" / "predcls" / "seed0").resolve()
    final_config = (root / "HCA+cdl+BA-SGG" / "predcls" / "seed0" / "config.yaml").read_text()
    assert str(stage1 / "model_final.pth") in final_config
    assert [r["name"] for r in json.loads((root / "benchmark.json").read_text())] == [
        "HCA", "HCA+cdl", "HCA+cdl+BA-SGG"]


@pytest.mark.parametrize("args,message", [
    (["nope", "TransformerPredictor", "predcls"], "unknown recipe 'nope'"),
    (["cdl_ba_sgg", "MotifPredictor", "predcls"], "PREDICTOR must be HybridCoAttentionPredictor"),
    (["cdl", "TransformerPredictor", "predet"], "unknown protocol 'predet'"),
    (["causal_tde", "TransformerPredictor", "predcls"], "PREDICTOR names the causal context"),
])
def test_recipe_script_rejects_bad_arguments(tmp_path, args, message):
    proc = subprocess.run(["bash", "scripts/benchmark/recipe.sh", *args, "det.pth", str(tmp_path / "r" / "p" / "s0"),
                           "0"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr


RECIPES = ("cce_ranker", "ba_sgg", "cdl", "cdl_ba_sgg", "spl", "spl_ce", "causal_tde")


@pytest.mark.parametrize("name", ["benchmark_synthetic.yaml", "benchmark_vglike.yaml", "benchmark_vg150.yaml"])
def test_committed_experiment_lists_name_existing_configs_and_recipes(name):
    spec = load_benchmark_spec(os.path.join(REPO, "configs", name))
    predictors = {e.name for e in spec.experiments}
    assert {"FREQ", "Motif", "Transformer", "VCTree", "IMP", "LinkNet", "PE-Net", "SPL", "HCA",
            "IterativeSG"} <= predictors
    assert {"Causal-Motifs", "Motifs-TDE"} <= predictors
    assert {"Transformer+CCE+Ranker", "Transformer+BA-SGG", "Transformer+Reweight", "Transformer+cdl"} <= predictors
    for exp in spec.experiments:
        if exp.command and exp.name.startswith("IterativeSG"):  # DETR, then IterativeSG, in the run folder
            words = exp.command.split()
            assert "scripts/iterative_sg/train.sh" in words and "RUN_DIR={output_dir}" in words, exp.name
        elif exp.command:
            words = exp.command.split()
            assert "scripts/benchmark/recipe.sh" in words, exp.name
            assert words[words.index("scripts/benchmark/recipe.sh") + 1] in RECIPES, exp.name
        else:
            assert os.path.isfile(os.path.join(REPO, exp.config)), (exp.name, exp.config)
    assert [e.protocols for e in spec.experiments if e.name.startswith("IterativeSG")] == [["sgdet"], ["sgdet"]]


# The VG-like rows whose two seeds were more than 5 points of R@50 apart, and the protocols that got a third seed.
THIRD_SEED = {"Motif": {"sgcls"}, "Transformer": {"predcls", "sgcls"}, "Transformer+BA-SGG": {"predcls"},
              "Transformer+CCE+Ranker": {"predcls"}, "Motifs-TDE": {"predcls"}, "PE-Net+Reweight": {"predcls"},
              "VCTree-TDE": {"predcls"}, "PE-Net": {"predcls"}, "Causal-Motifs": {"predcls"},
              "Causal-VCTree": {"predcls"}, "VCTree": {"sgcls"}}


# IterativeSG on the VG-like profile: 32 queries (100 fell back by the rule of docs/iterative_sg.md), a checkpoint
# every 250 x 2.0 iterations
VGLIKE_ITERATIVE_SG = ["MODEL.DETR.NUM_OBJECT_QUERIES", "32", "MODEL.DETR.NUM_RELATION_QUERIES", "32",
                       "SOLVER.CHECKPOINT_PERIOD", "250"]


def test_vglike_list_is_the_synthetic_list_moved_onto_the_vglike_profile():
    """Same rows, configs and recipes as benchmark_synthetic.yaml; every run gets scripts/lib.sh's VGLIKE_DATA and
    every recipe DATASET=vglike; two seeds in PredCls and SGCls, one in SGDet (issue 28), and a third for THIRD_SEED
    (rows whose seeds disagreed, and their parents)."""
    small = load_benchmark_spec(os.path.join(REPO, "configs", "benchmark_synthetic.yaml"))
    vglike = load_benchmark_spec(os.path.join(REPO, "configs", "benchmark_vglike.yaml"))
    assert [e.name for e in vglike.experiments] == [e.name for e in small.experiments]
    assert vglike.detector_config == "configs/synthetic_vglike/detector_tiny_fpn.yaml"
    data = vglike_data()
    for mine, theirs in zip(vglike.experiments, small.experiments):
        # IterativeSG's two rows share one DETR, so they must have its query count (and save often: they resume)
        own = VGLIKE_ITERATIVE_SG if mine.name.startswith("IterativeSG") else []
        assert mine.opts == data + own + theirs.opts, mine.name
        assert (mine.protocols, mine.parent) == (theirs.protocols, theirs.parent), mine.name
        if theirs.command:
            assert mine.command == theirs.command.replace("env ", "env DATASET=vglike ", 1), mine.name
        else:
            expected = ("configs/synthetic_vglike/relation_base.yaml"
                        if theirs.config == "configs/synthetic/relation_base.yaml" else theirs.config)
            assert mine.config == expected, mine.name
        third_seed = THIRD_SEED.get(mine.name, set())
        assert {p: mine.seeds_for(p) for p in mine.protocols} == {
            p: [0] if p == "sgdet" else [0, 1, 2] if p in third_seed else [0, 1] for p in mine.protocols}, mine.name
    # the change table pairs a row's seed with its parent's same seed: every parent lists its children's seeds
    by_name = {e.name: e for e in vglike.experiments}
    for child, parent in experiment_parents(vglike).items():
        for protocol in set(by_name[child].protocols) & set(by_name[parent].protocols):
            missing = set(by_name[child].seeds_for(protocol)) - set(by_name[parent].seeds_for(protocol))
            assert not missing, (child, parent, protocol, missing)


def test_parents_follow_the_parent_key_then_the_longest_plus_prefix():
    parents = experiment_parents(load_benchmark_spec(os.path.join(REPO, "configs", "benchmark_synthetic.yaml")))
    assert parents["Motif+BA-SGG"] == "Motif" and parents["PE-Net+Reweight"] == "PE-Net"
    assert parents["SPL+Reweight"] == "SPL" and parents["LinkNet+CCE-bg+Ranker"] == "LinkNet"
    assert parents["HCA+cdl+BA-SGG"] == "HCA+cdl"  # the longest prefix that is a row, not HCA
    assert parents["Motifs-TDE"] == "Causal-Motifs" and parents["VCTree-TDE"] == "Causal-VCTree"  # parent key
    for name in ("synthetic", "vglike", "vg150"):  # parent key: its predicate reweighting against none, in every list
        spec = load_benchmark_spec(os.path.join(REPO, "configs", f"benchmark_{name}.yaml"))
        assert experiment_parents(spec)["IterativeSG"] == "IterativeSG-no-weights", name
    for baseline in ("Motif", "SPL", "PE-Net", "IterativeSG-no-weights", "Causal-Motifs"):
        assert baseline not in parents


def test_vg150_cost_estimate_covers_every_experiment_of_the_vg150_list():
    import importlib.util

    spec_file = os.path.join(REPO, "benchmarks", "bench_vg150_cost.py")
    module_spec = importlib.util.spec_from_file_location("bench_vg150_cost", spec_file)
    bench = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(bench)
    spec = load_benchmark_spec(os.path.join(REPO, "configs", "benchmark_vg150.yaml"))
    missing = [e.name for e in spec.experiments if e.name not in bench.COST_MODEL]
    assert not missing, f"bench_vg150_cost.COST_MODEL has no model for {missing}"
    assert set(bench.COST_MODEL.values()) <= set(bench.MODELS)
    for config, _, _ in bench.MODELS.values():
        assert os.path.isfile(os.path.join(REPO, config))
