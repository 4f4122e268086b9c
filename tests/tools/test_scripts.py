"""The training scripts' argument checks (scripts/lib.sh and each script's own cases)."""
import glob
import json
import os
import re
import subprocess
import sys

import pytest

from tool_process import vglike_data

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("script", [
    ["scripts/train_relation.sh", "MotifPredictor"],
    ["scripts/ba_sgg/train.sh", "MotifPredictor"],
    ["scripts/hca/train.sh", "ce"],
    ["scripts/linknet/train.sh", "linknet_ce"],
    ["scripts/penet/train.sh", "penet"],
    ["scripts/imp/train.sh"],
    ["scripts/sgb/convert_relation.sh", "MotifPredictor"],
    ["scripts/causal/train.sh"],
])
def test_unknown_protocol_is_refused_before_any_work(script, tmp_path):
    env = dict(os.environ, OUTPUT_ROOT=str(tmp_path))
    proc = subprocess.run(["bash", *script, "predet", "detector.pth"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown protocol 'predet': use predcls, sgcls or sgdet" in proc.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("script", [
    ["scripts/train_relation.sh", "MotifPredictor", "predcls", "detector.pth"],
    ["scripts/pipeline.sh", "MotifPredictor"],
    ["scripts/imp/train.sh", "predcls", "detector.pth"],
    ["scripts/causal/train.sh", "predcls", "detector.pth"],
    ["scripts/ba_sgg/train.sh", "MotifPredictor", "predcls", "detector.pth"],
    ["scripts/hca/train.sh", "ce", "predcls", "detector.pth"],
    ["scripts/linknet/train.sh", "linknet_ce", "predcls", "detector.pth"],
    ["scripts/penet/train.sh", "penet", "predcls", "detector.pth"],
    ["scripts/penet/prototypes.sh"],
    ["scripts/iterative_sg/train.sh", "detector.pth"],
    ["scripts/benchmark/recipe.sh", "cce_ranker", "MotifPredictor", "predcls", "det.pth", "run", "0"],
])
def test_unknown_dataset_is_refused(script, tmp_path):
    env = dict(os.environ, OUTPUT_ROOT=str(tmp_path), DATASET="coco")
    proc = subprocess.run(["bash", *script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown DATASET 'coco': use synthetic, vglike or vg150" in proc.stderr
    assert os.listdir(tmp_path) == []


def _shell_lines(path):
    """The script's lines without comments (a ``#`` at a word start) and without heredoc bodies."""
    lines, heredoc_end = [], None
    with open(path) as f:
        for line in f:
            if heredoc_end is not None:
                heredoc_end = None if line.strip() == heredoc_end else heredoc_end
                continue
            code = re.sub(r"(^|\s)#.*", "", line.rstrip("\n"))
            lines.append(code)
            start = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", code)
            heredoc_end = start.group(1) if start else None
    return lines


# a python interpreter in command position: at the line start or after ; & | ( $( `then` `do` or `env VAR=..`
BARE_PYTHON = re.compile(r"(?:^|[;&|(]|\$\(|\bthen|\bdo|\benv(?:\s+\w+=\S+)*)\s*(?:python3?|torchrun)\b")


def test_bare_python_pattern_finds_the_forms_it_must():
    for line in ["python tools/x.py", "  cd a && python3 -m x", "X=$(python -c 1)", "env A=1 B=2 torchrun x.py",
                 "if true; then python x.py; fi"]:
        assert BARE_PYTHON.search(line), line
    for line in ['"$PYTHON" tools/x.py', "${PYTHON:-python} -m pytest", 'PYTHON=${PYTHON:-python}',
                 '"$PYTHON" -m torch.distributed.run x']:
        assert not BARE_PYTHON.search(line), line


def test_every_script_runs_python_through_the_PYTHON_variable():
    scripts = sorted(glob.glob(os.path.join(REPO, "scripts", "**", "*.sh"), recursive=True))
    assert len(scripts) > 10
    for path in scripts:
        for number, line in enumerate(_shell_lines(path), 1):
            assert not BARE_PYTHON.search(line), f"{path}:{number}: {line.strip()} (use ${{PYTHON:-python}})"


def test_run_benchmark_launches_scripts_with_its_own_interpreter(tmp_path):
    """A ``python`` on PATH that is not the tool's interpreter (a virtual environment used without activation):
    the launched script must still run ``${PYTHON:-python}`` as the tool's own interpreter."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python").write_text("#!/bin/sh\necho \"No module named 'yacs'\" >&2\nexit 1\n")
    (fake_bin / "python").chmod(0o755)
    stage = tmp_path / "stage.sh"
    stage.write_text('#!/usr/bin/env bash\nset -euo pipefail\nOUT=$1\n'
                     '"${PYTHON:-python}" - "$OUT" <<\'PY\'\n'
                     'import json, os, sys\n'
                     'folder = os.path.join(sys.argv[1], "inference", "SyntheticVG_test")\n'
                     'os.makedirs(folder)\n'
                     'json.dump({"R@50": 0.5, "mR@50": 0.25}, open(os.path.join(folder, "results.json"), "w"))\n'
                     'open(os.path.join(sys.argv[1], "interpreter.txt"), "w").write(sys.executable)\n'
                     'PY\n')
    detector = tmp_path / "detector.pth"
    detector.write_bytes(b"")
    spec = tmp_path / "list.yaml"
    spec.write_text(f"detector: {{weights: {detector}}}\nprotocols: [predcls]\nexperiments:\n"
                    f"  - name: Staged\n    command: bash {stage} {{output_dir}}\n")
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHON", None)
    root = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "tools/run_benchmark.py", "--experiments", str(spec), "--output-root",
                           str(root)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert (root / "Staged" / "predcls" / "seed0" / "interpreter.txt").read_text() == sys.executable


def test_run_unless_done_skips_only_a_finished_run(tmp_path):
    """scripts/lib.sh's run_unless_done, which the methods' run_all.sh scripts use to resume: a run folder counts as
    finished only with both model_final.pth and a results.json under inference/."""
    run = tmp_path / "HCA_CE" / "predcls"
    (run / "inference" / "test").mkdir(parents=True)
    call = f'source scripts/lib.sh; run_unless_done "{run}" echo RAN'

    def ran() -> bool:
        proc = subprocess.run(["bash", "-c", call], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return "RAN" in proc.stdout

    assert ran()
    (run / "model_final.pth").write_bytes(b"")
    assert ran()  # no results yet: the test pass did not finish
    (run / "inference" / "test" / "results.json").write_text("{}")
    assert not ran()


def test_run_tool_starts_torchrun_only_for_more_than_one_process(tmp_path):
    """scripts/lib.sh's run_tool, which every training script launches its tools with: NPROC 1 runs the tool with
    PYTHON, NPROC > 1 under torch.distributed.run on PORT; the arguments arrive unchanged (spaces included)."""
    recorder = tmp_path / "python"
    recorder.write_text(RECORDER.format(python=sys.executable))
    recorder.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    for nproc in ("1", "3"):
        env = dict(os.environ, PYTHON=str(recorder), CALLS=str(calls), NPROC=nproc, PORT="29611")
        subprocess.run(["bash", "-c", 'source scripts/lib.sh && run_tool tools/x.py A "b c"'], cwd=REPO, env=env,
                       check=True, timeout=60)
    assert [json.loads(line) for line in calls.read_text().splitlines()] == [
        ["tools/x.py", "A", "b c"],
        ["-m", "torch.distributed.run", "--nproc_per_node", "3", "--master_port", "29611", "tools/x.py", "A", "b c"]]


def _flat(cfg):
    def value(key):
        node = cfg
        for part in key.split("."):
            node = node[part]
        return node
    return {key: value(key) for key in cfg.all_keys()}


def test_vglike_data_pairs_turn_the_small_relation_yaml_into_the_vglike_one():
    """A method yaml of configs/synthetic/ plus VGLIKE_DATA must equal configs/synthetic_vglike/relation_base.yaml
    in every key but the solver's periods and the output folder (the schedule itself is checked): a key added to one
    and not the other fails here."""
    from sgg.config import load_config

    small = os.path.join(REPO, "configs", "synthetic", "relation_base.yaml")
    vglike = _flat(load_config(os.path.join(REPO, "configs", "synthetic_vglike", "relation_base.yaml")))
    moved = _flat(load_config(small, vglike_data()))
    plain = _flat(load_config(small))

    def differing(a, b):
        return sorted(k for k in a if a[k] != b[k] and not k.startswith("SOLVER.") and k != "OUTPUT_DIR")

    assert "DATASETS.TRAIN" in differing(plain, vglike)  # the comparison sees the data keys at all
    assert differing(moved, vglike) == []
    assert moved["DATASETS.TEST"] == ("SyntheticVGLike_test",) and moved["MODEL.ROI_HEADS.DETECTIONS_PER_IMG"] == 80
    # the schedule: both stretched x2 (SOLVER.SCHEDULE_SCALE) from the small profile's 600 / (450, 550)
    for key, expected in (("SOLVER.MAX_ITER", 1200), ("SOLVER.STEPS", (900, 1100)), ("SOLVER.WARMUP_ITERS", 60)):
        assert moved[key] == vglike[key] == expected, key


RECORDER = "#!{python}\nimport json, os, sys\nopen(os.environ['CALLS'], 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"


@pytest.mark.parametrize("script", [
    ["scripts/train_relation.sh", "MotifPredictor", "sgcls", "det.pth"],
    ["scripts/motifs/train_predcls.sh", "det.pth"],
    ["scripts/pipeline.sh", "MotifPredictor"],
    ["scripts/hca/train.sh", "ce", "predcls", "det.pth"],
    ["scripts/penet/train.sh", "penet", "predcls", "det.pth"],
    ["scripts/linknet/train.sh", "linknet_ce", "sgdet", "det.pth"],
    ["scripts/ba_sgg/train.sh", "MotifPredictor", "sgcls", "det.pth"],
    ["scripts/iterative_sg/train.sh", "det.pth"],
    ["scripts/benchmark/recipe.sh", "cce_ranker", "MotifPredictor", "predcls", "det.pth", "{root}/bench/M/predcls/seed0",
     "0"],
    ["scripts/benchmark/recipe.sh", "causal_tde", "MotifPredictor", "sgcls", "det.pth", "{root}/bench/T/sgcls/seed0",
     "0"],
    ["scripts/imp/train.sh", "sgcls", "det.pth"],
    ["scripts/causal/train.sh", "sgcls", "det.pth"],
])
def test_dataset_vglike_trains_every_stage_on_the_vglike_profile(script, tmp_path):
    """DATASET=vglike: every training call the script makes (a recording PYTHON stands in for the interpreter)
    loads a config on the VG-like catalog entries and image sizes, the protocol's switches intact."""
    from sgg.config import load_config

    recorder = tmp_path / "python"
    recorder.write_text(RECORDER.format(python=sys.executable))
    recorder.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    env = dict(os.environ, OUTPUT_ROOT=str(tmp_path / "out"), DATASET="vglike", PYTHON=str(recorder),
               CALLS=str(calls))
    proc = subprocess.run(["bash", *[a.format(root=tmp_path) for a in script]], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = [json.loads(line) for line in calls.read_text().splitlines()]
    trainings = [r for r in runs if r[0] in ("tools/relation_train_net.py", "tools/detector_pretrain_net.py")]
    assert trainings, runs
    switches = set()
    for argv in trainings:
        assert argv[1] == "--config-file"
        cfg = load_config(os.path.join(REPO, argv[2]), argv[3:])
        assert cfg.DATASETS.TRAIN == ("SyntheticVGLike_train",) and cfg.DATASETS.TEST == ("SyntheticVGLike_test",)
        assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (384, 448)
        head = cfg.MODEL.ROI_RELATION_HEAD
        switches.add((head.USE_GT_BOX, head.USE_GT_OBJECT_LABEL))
    if "sgcls" in script:  # the data pairs must not undo the protocol's switches
        assert (True, False) in switches
    for argv in (r for r in runs if r[0] == "tools/relation_test_net.py" and "MODEL.WEIGHT" in r):
        cfg = load_config(os.path.join(REPO, argv[2]), argv[3:])  # a test of a model just trained: the same data
        assert cfg.DATASETS.TEST == ("SyntheticVGLike_test",), argv
