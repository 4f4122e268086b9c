"""sgg.utils.cli.run_tool, the main guard of every tool: user errors are one line with exit code 2, --debug or
SGG_DEBUG=1 shows the traceback, bugs keep theirs, Ctrl-C exits 130 without one."""
import glob
import os
import subprocess
import sys

import pytest

from sgg.config.sgg_config import ConfigError
from sgg.utils.cli import error_message, run_tool
from sgg.utils.errors import CheckpointError, DataError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _exit_code(main, argv, monkeypatch, debug_env=""):
    monkeypatch.setenv("SGG_DEBUG", debug_env)
    monkeypatch.setattr(sys, "argv", ["tool.py", *argv])
    with pytest.raises(SystemExit) as stop:
        run_tool(main)
    return stop.value.code


def test_user_errors_are_one_line_and_exit_2(monkeypatch, capsys):
    seen = []

    def main(argv):
        seen.append(argv)
        raise DataError("images.h5: 'boxes' has 3 rows, expected 4")

    assert _exit_code(main, ["--config-file", "a.yaml", "--debug-not", "X"], monkeypatch) == 2
    assert seen == [["--config-file", "a.yaml", "--debug-not", "X"]]  # only the exact --debug is taken out
    err = capsys.readouterr().err
    assert err == "error: images.h5: 'boxes' has 3 rows, expected 4\n"

    def missing(argv):
        open(os.path.join("no", "such", "file.yaml"))

    assert _exit_code(missing, [], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "file.yaml" in err and "Traceback" not in err and err.count("\n") == 1

    def bad_key(argv):  # ConfigError is also a KeyError, whose str() would add quotes
        raise ConfigError("command line: unknown config key SOLVER.NOPE")

    assert _exit_code(bad_key, [], monkeypatch) == 2
    assert capsys.readouterr().err == "error: command line: unknown config key SOLVER.NOPE\n"


def test_return_code_of_main_is_the_exit_code(monkeypatch):
    assert _exit_code(lambda argv: 1, [], monkeypatch) == 1
    assert _exit_code(lambda argv: 0, [], monkeypatch) == 0


@pytest.mark.parametrize("argv,env", [(["--debug"], ""), (["A", "--debug", "B"], ""), ([], "1")])
def test_debug_flag_or_env_lets_the_error_through(monkeypatch, argv, env):
    seen = []

    def main(args):
        seen.append((list(args), list(sys.argv[1:])))
        raise CheckpointError("model.pth is a detector checkpoint")

    with pytest.raises(CheckpointError, match="detector checkpoint"):
        _exit_code(main, argv, monkeypatch, debug_env=env)
    kept = [a for a in argv if a != "--debug"]
    assert seen == [(kept, kept)]  # neither the argv given to main nor sys.argv carries --debug


def test_bugs_keep_their_traceback(monkeypatch):
    def main(argv):
        raise IndexError("list index out of range")

    with pytest.raises(IndexError):
        _exit_code(main, [], monkeypatch)

    def plain_value_error(argv):  # not one of the framework's errors: a bug until converted
        raise ValueError("something inside")

    with pytest.raises(ValueError, match="something inside"):
        _exit_code(plain_value_error, [], monkeypatch)


def test_ctrl_c_exits_130_without_traceback(monkeypatch, capsys):
    def main(argv):
        raise KeyboardInterrupt

    assert _exit_code(main, [], monkeypatch) == 130
    assert capsys.readouterr().err == "interrupted\n"
    with pytest.raises(KeyboardInterrupt):
        _exit_code(main, ["--debug"], monkeypatch)


def test_an_error_from_a_loader_worker_keeps_only_its_message():
    from torch._utils import ExceptionWrapper

    try:
        raise DataError("image 12.jpg (item 3) could not be decoded")
    except DataError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(DataError) as raised:  # what the main process receives
        wrapped.reraise()
    assert "Original Traceback" in str(raised.value)
    assert error_message(raised.value) == "image 12.jpg (item 3) could not be decoded"
    assert error_message(DataError("plain")) == "plain"


def test_every_tool_uses_the_guard():
    for path in sorted(glob.glob(os.path.join(REPO, "tools", "*.py"))):
        with open(path) as f:
            text = f.read()
        guard = text[text.index('if __name__ == "__main__":'):]
        assert "run_tool(main)" in guard, path


def _tool(args):
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "SGG_DEBUG": ""}
    environ["PYTHONPATH"] = REPO + os.pathsep + environ.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, *args], cwd=REPO, env=environ, capture_output=True, text=True, timeout=120)


def test_tools_print_one_line_and_exit_2(tmp_path):
    config = os.path.join("configs", "synthetic", "relation_predcls.yaml")
    proc = _tool(["tools/dataset_info.py", "--config-file", config, "SOLVER.NOPE", "3", "OUTPUT_DIR", str(tmp_path)])
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("error: command line: unknown config key SOLVER.NOPE")

    missing = str(tmp_path / "nothere.yaml")
    proc = _tool(["tools/relation_train_net.py", "--config-file", missing])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: config file {missing} does not exist"

    proc = _tool(["tools/relation_train_net.py", "--debug", "--config-file", missing])
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "FileNotFoundError" in proc.stderr


def test_user_facing_errors_of_the_framework_are_sgg_errors(tmp_path):
    """A few converted raise sites, one per kind: the class the guard prints, the old ValueError contract kept."""
    import torch

    from sgg.config import get_cfg
    from sgg.data.vg_format import read_vg_h5
    from sgg.solver.build import make_optimizer
    from sgg.utils.errors import SggError
    from sgg.utils.sgb_checkpoint import sgb_state_dict

    garbage = tmp_path / "roidb.h5"
    garbage.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match=f"{garbage}: not a readable HDF5 file"):
        read_vg_h5(str(garbage))
    with pytest.raises(CheckpointError, match="not an SGB checkpoint"):
        sgb_state_dict({"model": {"conv.weight": "not a tensor"}})
    cfg = get_cfg()
    cfg.SOLVER.OPTIMIZER = "Adamax"
    with pytest.raises(ConfigError, match="unknown SOLVER.OPTIMIZER 'Adamax'"):
        make_optimizer(cfg, torch.nn.Linear(2, 2))
    for kind in (DataError, CheckpointError, ConfigError):
        assert issubclass(kind, SggError) and issubclass(kind, ValueError)
