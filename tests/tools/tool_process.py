"""Running a tool as a user does, for the end-to-end tool tests."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
