"""End to end: tools/detector_pretrain_net.py (one process, resume, torchrun x2 on gloo) and
tools/detector_test_net.py on a tiny dataset in the VG150 format, with the tiny-FPN config."""
import json
import os
import re
import socket
import subprocess
import sys

import pytest

from engine_toys import write_mini_vg

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "configs", "synthetic", "detector_tiny_fpn.yaml")
MAP_LINE = re.compile(r"Detection evaluation mAp=(\d\.\d{4})")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini_vg")
    write_mini_vg(root)
    return root


def _opts(data_dir, output_dir, max_iter):
    return ["DATASETS.DATA_DIR", str(data_dir), "OUTPUT_DIR", str(output_dir), "MODEL.ROI_BOX_HEAD.NUM_CLASSES", "4",
            "SOLVER.MAX_ITER", str(max_iter), "SOLVER.IMS_PER_BATCH", "4", "TEST.IMS_PER_BATCH", "4",
            "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.VAL_PERIOD", "2", "DATASETS.VAL_SIZE", "4",
            "INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.MIN_SIZE_TEST", "96",
            "INPUT.MAX_SIZE_TEST", "128"]


def _run(args, expect_ok=True):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SGG_DATA_DIR"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    output = proc.stdout + proc.stderr
    if expect_ok:
        assert proc.returncode == 0, output[-4000:]
    return proc.returncode, output


def test_pretrain_resume_and_test_tools(data_dir, tmp_path):
    out = tmp_path / "detector"
    _, log = _run(["tools/detector_pretrain_net.py", "--config-file", CONFIG, *_opts(data_dir, out, 4)])
    train_maps = MAP_LINE.findall(log)
    assert len(train_maps) == 3  # validation at 2 and 4, then the test split
    for name in ("config.yaml", "log.txt", "metrics.json", "model_0000002.pth", "model_final.pth", "model_best.pth"):
        assert (out / name).exists(), name
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    with open(out / "inference" / "SyntheticVG_test" / "detection_metrics.json") as f:
        assert f"{json.load(f)['mAP']:.4f}" == train_maps[-1]

    _, log = _run(["tools/detector_test_net.py", "--config-file", CONFIG, *_opts(data_dir, out, 4)])
    assert MAP_LINE.findall(log) == [train_maps[-1]]  # the same final model, the same number

    # a longer MAX_ITER does not silently continue the finished run; SOLVER.EXTEND_RUN True does
    final = (out / "model_final.pth").read_bytes()
    code, log = _run(["tools/detector_pretrain_net.py", "--config-file", CONFIG, *_opts(data_dir, out, 6),
                      "--skip-test"], expect_ok=False)
    assert code != 0 and "SOLVER.MAX_ITER is 6 but the run in" in log and "SOLVER.EXTEND_RUN True" in log
    assert (out / "model_final.pth").read_bytes() == final
    _, log = _run(["tools/detector_pretrain_net.py", "--config-file", CONFIG, *_opts(data_dir, out, 6),
                   "SOLVER.EXTEND_RUN", "True", "--skip-test"])
    assert "Resumed from" in log and "at iteration 4" in log and "iter: 6/6" in log
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    assert (out / "model_0000004.pth").read_bytes() == final  # the finished run's final model, kept


def test_pretrain_under_torchrun_with_two_cpu_processes(data_dir, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    _, log = _run(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                   "--master_port", str(port), "tools/detector_pretrain_net.py", "--config-file", CONFIG,
                   *_opts(data_dir, out, 2)])
    assert "2 process(es)" in log and "on 2 process(es)" in log
    assert len(MAP_LINE.findall(log)) == 2  # validation at 2 and the test, printed by rank 0 only
    assert (out / "model_final.pth").exists()


def test_class_count_mismatch_is_a_clear_error(data_dir, tmp_path):
    opts = _opts(data_dir, tmp_path / "bad", 2)
    opts[opts.index("MODEL.ROI_BOX_HEAD.NUM_CLASSES") + 1] = "151"
    code, log = _run(["tools/detector_pretrain_net.py", "--config-file", CONFIG, *opts], expect_ok=False)
    assert code == 2 and "MODEL.ROI_BOX_HEAD.NUM_CLASSES is 151 but SyntheticVG_train has 4 object classes" in log


def test_test_tool_checks_the_class_count_before_building_the_model(data_dir, tmp_path):
    # no weights exist in OUTPUT_DIR or MODEL.WEIGHT: only the class-count check can produce this message
    opts = _opts(data_dir, tmp_path / "bad", 2)
    opts[opts.index("MODEL.ROI_BOX_HEAD.NUM_CLASSES") + 1] = "7"
    code, log = _run(["tools/detector_test_net.py", "--config-file", CONFIG, *opts], expect_ok=False)
    errors = [line for line in log.splitlines() if line.startswith("error: ")]
    assert code == 2 and "Traceback" not in log, log[-3000:]
    assert errors == ["error: MODEL.ROI_BOX_HEAD.NUM_CLASSES is 7 but SyntheticVG_train has 4 object classes (with "
                      "the background): the dataset decides the class counts; set MODEL.ROI_BOX_HEAD.NUM_CLASSES 4"]
