"""The training scripts' argument checks (scripts/lib.sh and each script's own cases)."""
import glob
import os
import re
import subprocess
import sys

import pytest

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


def test_unknown_dataset_is_refused(tmp_path):
    env = dict(os.environ, OUTPUT_ROOT=str(tmp_path), DATASET="coco")
    proc = subprocess.run(["bash", "scripts/train_relation.sh", "MotifPredictor", "predcls", "detector.pth"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown DATASET 'coco'" in proc.stderr


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
