"""benchmarks/bench_gpu.py: the CPU mode on tiny settings (so the GPU script never rots), its torchrun pass with two
CPU processes, the refusal on a machine without CUDA, and that every VG150 row's config builds."""
import importlib.util
import json
import os
import socket
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "benchmarks", "bench_gpu.py")
pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")


def _load():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, SCRIPT, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cpu_tiny_run_measures_every_head_in_every_protocol(tmp_path):
    _run("--device", "cpu", "--tiny", "--output", str(tmp_path))
    with open(tmp_path / "bench_gpu.json") as f:
        report = json.load(f)
    bench = _load()
    expected = [(row, mode) for row, (_, _, _, modes) in bench.ROWS.items() for mode in modes]
    assert [(r["row"], r["protocol"]) for r in report["single"]] == expected
    assert len(expected) == 25 and report["dtype"] == "bfloat16" and report["distributed"] == []
    for r in report["single"]:
        assert r["s_per_iter"] > 0 and r["test_images_per_s"] > 0 and r["peak_memory_mb"] > 0, r
        assert r["loss"] == r["loss"] and abs(r["loss"]) < 1e6, r  # finite
        assert r["train_images_per_s"] == pytest.approx(r["batch_per_process"] / r["s_per_iter"])
    table = (tmp_path / "bench_gpu.md").read_text()
    assert "| IterativeSG | sgdet | 1 | 2 |" in table and table.count("\n| ") == 26  # header + 25 rows


def test_torchrun_pass_with_two_cpu_processes(tmp_path):
    _run("--device", "cpu", "--tiny", "--rows", "Motif", "--protocols", "predcls", "--processes", "2",
         "--master-port", str(_free_port()), "--output", str(tmp_path))
    with open(tmp_path / "bench_gpu.json") as f:
        report = json.load(f)
    assert [(r["row"], r["processes"]) for r in report["distributed"]] == [("Motif", 2)]
    ddp = report["distributed"][0]
    assert ddp["train_images_per_s"] == pytest.approx(2 * ddp["batch_per_process"] / ddp["s_per_iter"])
    assert "torchrun, 2 processes" in (tmp_path / "bench_gpu.md").read_text()


def test_cuda_run_on_a_machine_without_cuda_refuses(monkeypatch, capsys, tmp_path):
    bench = _load()
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: False)
    assert bench.main(["--output", str(tmp_path / "out")]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_every_vg150_row_config_loads(tmp_path):
    """The VG150 configs each row names load with the files the script writes (the models are built on GPU days)."""
    bench = _load()
    for row, (_, _, _, modes) in bench.ROWS.items():
        for mode in modes:
            cfg = bench.build_config(row, mode, False, "cpu", "float16", str(tmp_path))
            assert cfg.MODEL.ROI_RELATION_HEAD.USE_GT_BOX == (mode != "sgdet")
            assert cfg.MODEL.BACKBONE.CONV_BODY.startswith("R-101"), row
            assert len(bench.fake_statistics(cfg)["rel_classes"]) == 51
