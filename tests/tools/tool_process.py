"""Running a tool as a user does, for the end-to-end tool tests, and the data and log line they share."""
import os
import re
import subprocess
import sys

from sgg.data.synthetic import generate_synthetic_vg

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# SGB's R@K line of a relation test run
RECALL_LINE = re.compile(r"SGG eval:\s+R @ 20: (\d\.\d{4});\s+R @ 50: (\d\.\d{4});\s+R @ 100: (\d\.\d{4});")


def synthetic_data_root(tmp_path_factory):
    """A fresh folder holding a synthetic VG of 40 training and 12 test images (seed 5): DATASETS.DATA_DIR."""
    root = tmp_path_factory.mktemp("data")
    generate_synthetic_vg(str(root / "synthetic_vg"), num_train=40, num_test=12, seed=5, workers=1)
    return root


def run_tool(args, expect_ok=True, timeout=400) -> str:
    """``python ARGS`` from the repository root with one thread and none of torchrun's variables (nor SGG_DATA_DIR)
    inherited; asserts that it succeeds, or with ``expect_ok`` False that it fails. Returns stdout + stderr."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SGG_DATA_DIR"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == expect_ok, output[-4000:]
    return output


def vglike_data():
    """scripts/lib.sh's VGLIKE_DATA (the KEY VALUE pairs that move a configs/synthetic yaml onto the VG-like
    profile), as the scripts pass it."""
    proc = subprocess.run(["bash", "-c", 'source scripts/lib.sh && printf "%s\\0" "${VGLIKE_DATA[@]}"'], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True)
    return proc.stdout.split("\0")[:-1]
