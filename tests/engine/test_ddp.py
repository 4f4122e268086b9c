"""torchrun with 2 CPU processes (gloo), half the per-process batch each, matches one process."""
import json
import os
import socket
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ddp_toy_train.py")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, output_dir):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, *args, SCRIPT, str(output_dir)], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(output_dir / "result.json") as f:
        result = json.load(f)
    with open(output_dir / "metrics.json") as f:
        records = [json.loads(line) for line in f]
    return result, records


@pytest.mark.skipif(sys.platform == "win32", reason="gloo over torchrun is tested on Linux")
def test_two_processes_match_one_process(tmp_path):
    single, single_records = _run([], tmp_path / "single")
    port = _free_port()
    double, double_records = _run(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                                   "127.0.0.1", "--master_port", str(port)], tmp_path / "double")
    assert (single["world_size"], double["world_size"]) == (1, 2)

    def curve(records):
        return [(r["iteration"], r["loss"], r["loss_a"], r["loss_b"]) for r in records if "loss" in r]

    one, two = curve(single_records), curve(double_records)
    assert [r[0] for r in two] == list(range(1, 7))  # rank 0 alone writes the log: one line per iteration
    for a, b in zip(one, two):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-7)
    assert one[-1][1] < one[0][1]
    # sharded validation, merged over both processes, sees every image once
    assert double["final"]["num_images"] == single["final"]["num_images"] == 10
    assert double["final"]["mean_score"] == pytest.approx(single["final"]["mean_score"], rel=1e-5)
    for key, values in single["params"].items():
        assert double["params"][key] == pytest.approx(values, rel=1e-5, abs=1e-6), key
    for name in ("model_0000003.pth", "model_final.pth", "model_best.pth", "last_checkpoint", "config.yaml",
                 "log.txt"):
        assert (tmp_path / "double" / name).exists(), name


@pytest.mark.skipif(sys.platform == "win32", reason="gloo over torchrun is tested on Linux")
def test_two_nodes_match_one_process(tmp_path):
    """Two torchrun launches as two nodes of one job (static rendezvous on loopback, gloo) equal one process.

    This is the multi-node command of docs/training.md: each node runs `torchrun --nnodes 2 --node_rank R
    --nproc_per_node 1 --rdzv_endpoint HOST:PORT`; here both "nodes" are processes of this machine.
    """
    single, single_records = _run([], tmp_path / "single")
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    output_dir = tmp_path / "nodes"
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank",
                               str(rank), "--nproc_per_node", "1", "--rdzv_endpoint", f"127.0.0.1:{port}", SCRIPT,
                               str(output_dir)], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for rank in (0, 1)]
    try:
        logs = [node.communicate(timeout=180)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    for node, log in zip(nodes, logs):
        assert node.returncode == 0, log[-3000:]
    with open(output_dir / "result.json") as f:
        double = json.load(f)
    assert double["world_size"] == 2
    for key, values in single["params"].items():
        assert double["params"][key] == pytest.approx(values, rel=1e-5, abs=1e-6), key
    assert double["final"]["num_images"] == single["final"]["num_images"] == 10
