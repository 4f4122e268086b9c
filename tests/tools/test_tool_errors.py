"""End to end: a user error of each kind (config, data, checkpoint, evaluation) makes a tool print exactly one line,
``error: <message>``, as its last line on stderr, with exit code 2 and no traceback (issue 25, item 6)."""
import os
import subprocess
import sys

import pytest

from sgg.config import ConfigError, load_config
from sgg.data.synthetic import generate_synthetic_vg
from sgg.utils.checkpoint import load_checkpoint_file
from sgg.utils.errors import CheckpointError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELATION_CONFIG = os.path.join("configs", "synthetic", "relation_predcls.yaml")
SGDET_CONFIG = os.path.join("configs", "synthetic", "relation_sgdet.yaml")
DETECTOR_CONFIG = os.path.join("configs", "synthetic", "detector_tiny_fpn.yaml")


def _tool(args, **env):
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "SGG_DEBUG": "", **env}
    environ.pop("SGG_DATA_DIR", None)
    environ["PYTHONPATH"] = REPO + os.pathsep + environ.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, *args], cwd=REPO, env=environ, capture_output=True, text=True, timeout=180)


def _the_error_line(proc) -> str:
    """The tool's one error line, after checking it is the only one, the last one, with exit code 2."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == [lines[-1]], proc.stderr[-3000:]
    return errors[0]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A few synthetic images' annotations (no pictures: the tools below stop before reading any)."""
    root = tmp_path_factory.mktemp("data")
    generate_synthetic_vg(str(root / "synthetic_vg"), num_train=12, num_test=4, seed=3, annotations_only=True,
                          workers=1)
    return root


def test_config_error(tmp_path):
    # a cross-key rule of load_config (was a plain ValueError with a traceback)
    proc = _tool(["tools/dataset_info.py", "--config-file", RELATION_CONFIG, "SOLVER.STEPS", "(30, 10)",
                  "OUTPUT_DIR", str(tmp_path)])
    assert _the_error_line(proc) == "error: SOLVER.STEPS must be increasing, got (30, 10)"


def test_data_error(tmp_path):
    folder = tmp_path / "synthetic_vg"
    folder.mkdir()
    dicts = folder / "VG-SGG-dicts-with-attri.json"
    dicts.write_text('{"label_to_idx": ')  # cut off while being written
    proc = _tool(["tools/dataset_info.py", "--config-file", RELATION_CONFIG, "DATASETS.DATA_DIR", str(tmp_path),
                  "OUTPUT_DIR", str(tmp_path / "out")])
    assert _the_error_line(proc).startswith(f"error: {dicts}: not valid JSON")


def test_checkpoint_error(data_root, tmp_path):
    # ImageNet weights asked for and absent (BackboneWeightsError, a RuntimeError before it became a CheckpointError)
    proc = _tool(["tools/detector_test_net.py", "--config-file", DETECTOR_CONFIG, "DATASETS.DATA_DIR", str(data_root),
                  "OUTPUT_DIR", str(tmp_path / "out"), "MODEL.BACKBONE.CONV_BODY", "R-50-FPN",
                  "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "64", "MODEL.RANDOM_INIT_BACKBONE", "False"],
                 TORCH_HOME=str(tmp_path / "empty_torch_home"))
    line = _the_error_line(proc)
    assert line.startswith("error: backbone R-50-FPN needs ImageNet weights: MODEL.PRETRAINED_BACKBONE_PATH is empty")
    assert "MODEL.RANDOM_INIT_BACKBONE True" in line


def test_multi_line_library_messages_are_quoted_on_one_line(tmp_path):
    """torch's and YAML's messages span lines; quoted in an SggError they must not break the one-line rule."""
    garbage = tmp_path / "model_final.pth"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_file(str(garbage), key="MODEL.WEIGHT")
    text = str(err.value)
    assert "\n" not in text and "weights_only" not in text  # torch's advice to unpickle anything is dropped
    assert text.startswith(f"MODEL.WEIGHT: cannot read checkpoint file {garbage}: UnpicklingError: Unsupported "
                           "operand 0. It must be a file written by torch.save")

    broken = tmp_path / "broken.yaml"
    broken.write_text("SOLVER:\n  MAX_ITER: 10\n BASE_LR: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(broken))
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{broken}: not valid YAML: ") and "line 3" in text, text


def test_evaluation_error(tmp_path):
    foreign = tmp_path / "predictions.sgg"
    foreign.write_bytes(b"PK\x03\x04 a zip file, not predictions")
    proc = _tool(["tools/evaluate.py", "--predictions", str(foreign), "--dataset", "SyntheticVG_test",
                  "--config-file", SGDET_CONFIG])
    line = _the_error_line(proc)
    assert line.startswith(f"error: {foreign}: not a scene graph prediction file"), line
