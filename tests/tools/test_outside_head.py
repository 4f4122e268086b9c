"""A relation head written outside sgg/ (the recipe of docs/relation_head.md, taken from the page itself) trains and
tests from the command line with ``--import``; the import helpers and the config-extension hook on their own."""
import os
import re
import subprocess
import sys

import pytest
import torch

from sgg.config import ConfigError, SGGConfig, get_cfg, load_config, register_config_defaults
from sgg.config import defaults as config_defaults
from sgg.data.synthetic import generate_synthetic_vg
from sgg.utils.cli import run_tool
from sgg.utils.module_loading import import_package_modules, import_user_module

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECALL_LINE = re.compile(r"SGG eval:\s+R @ 20: (\d\.\d{4});\s+R @ 50: (\d\.\d{4});\s+R @ 100: (\d\.\d{4});")


def recipe_file(folder):
    """The ``my_head.py`` block of docs/relation_head.md, written to ``folder``."""
    with open(os.path.join(REPO, "docs", "relation_head.md")) as f:
        page = f.read()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", page, re.S) if b.startswith("# my_head.py")]
    assert len(blocks) == 1, "docs/relation_head.md: expected one ```python block starting with '# my_head.py'"
    path = folder / "my_head.py"
    path.write_text(blocks[0])
    return path


def _run(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SGG_DATA_DIR"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=400)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def test_a_head_from_outside_sgg_trains_and_tests_from_the_command_line(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    generate_synthetic_vg(str(data / "synthetic_vg"), num_train=16, num_test=6, seed=5, workers=1)
    work = tmp_path / "project"  # the user's own folder: the tools run from there, with a relative --import
    work.mkdir()
    recipe_file(work)
    out = tmp_path / "pair_mlp"
    train = os.path.join(REPO, "tools", "relation_train_net.py")
    test = os.path.join(REPO, "tools", "relation_test_net.py")
    config = os.path.join(REPO, "configs", "synthetic", "relation_predcls.yaml")
    _run([train, "--import", "my_head.py", "--config-file", config,
          "MODEL.ROI_RELATION_HEAD.PREDICTOR", "PairMLPPredictor", "MODEL.ROI_RELATION_HEAD.PAIR_MLP.HIDDEN_DIM", "12",
          "DATASETS.DATA_DIR", str(data), "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2",
          "SOLVER.CHECKPOINT_PERIOD", "1", "SOLVER.TO_VAL", "False", "TEST.IMS_PER_BATCH", "3",
          "DATALOADER.NUM_WORKERS", "0", "DATASETS.VAL_SIZE", "4", "GLOVE_DIR", str(data / "no_glove"),
          "--skip-test"], work)
    assert "PAIR_MLP:\n      HIDDEN_DIM: 12" in (out / "config.yaml").read_text()  # the head's own key, saved
    first = torch.load(out / "model_0000001.pth", map_location="cpu")["model"]
    final = torch.load(out / "model_final.pth", map_location="cpu")["model"]
    weight = "relation_head.predictor.mlp.0.weight"
    assert final[weight].shape == (12, 2 * 256)  # HIDDEN_DIM x (subject, object) MLP_HEAD_DIM features
    assert not torch.equal(first[weight], final[weight])  # the optimiser trains the outside head

    output = _run([test, "--import", "my_head.py", "--config-file", str(out / "config.yaml")], work)
    lines = RECALL_LINE.findall(output)
    assert lines and all(0.0 <= float(r) <= 1.0 for r in lines[-1])
    assert (out / "inference" / "SyntheticVG_test" / "results.json").exists()

    # the run's config names the head's keys: without --import they are unknown, and a bad --import is one line
    with pytest.raises(ConfigError, match="unknown config key MODEL.ROI_RELATION_HEAD.PAIR_MLP.HIDDEN_DIM"):
        load_config(str(out / "config.yaml"))
    tool = import_user_module(test)
    monkeypatch.chdir(work)
    with pytest.raises(SystemExit) as exit_info:
        run_tool(tool.main, ["--import", "no_such_head.py", "--config-file", str(out / "config.yaml")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --import no_such_head.py: no such file"


def test_import_user_module_by_file_and_by_name(tmp_path, monkeypatch):
    (tmp_path / "outside_toy_mod.py").write_text("VALUE = 7\n")
    module = import_user_module(str(tmp_path / "outside_toy_mod.py"))
    assert module.VALUE == 7 and sys.modules["outside_toy_mod"] is module
    assert import_user_module(str(tmp_path / "outside_toy_mod.py")) is module  # a second import is the same module
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "outside_toy_mod.py").write_text("VALUE = 8\n")
    with pytest.raises(ConfigError, match=r"--import .*elsewhere/outside_toy_mod.py: a module named "
                                          r"'outside_toy_mod' is already imported .* rename the file"):
        import_user_module(str(other / "outside_toy_mod.py"))
    monkeypatch.syspath_prepend(str(other))
    (other / "outside_pkg_toy").mkdir()
    (other / "outside_pkg_toy" / "__init__.py").write_text("")
    (other / "outside_pkg_toy" / "head.py").write_text("import sgg\nNAME = 'head'\n")
    assert import_user_module("outside_pkg_toy.head").NAME == "head"
    with pytest.raises(ConfigError, match=r"--import outside_pkg_toy.nohead: no module named "
                                          r"'outside_pkg_toy.nohead' on the Python path"):
        import_user_module("outside_pkg_toy.nohead")
    # a missing dependency inside the user's module is the user's bug: its own error, not the --import message
    (other / "outside_pkg_toy" / "broken.py").write_text("import surely_not_installed_xyz\n")
    with pytest.raises(ModuleNotFoundError, match="surely_not_installed_xyz"):
        import_user_module("outside_pkg_toy.broken")


def test_every_module_of_a_package_is_imported_in_sorted_order(tmp_path, monkeypatch):
    package = tmp_path / "toy_registry_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("ORDER = []\n")
    for name in ("zeta", "alpha", "_private"):
        (package / f"{name}.py").write_text(f"from toy_registry_pkg import ORDER\nORDER.append({name!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import toy_registry_pkg

    assert import_package_modules("toy_registry_pkg", toy_registry_pkg.__path__) == ["alpha", "zeta"]
    assert toy_registry_pkg.ORDER == ["alpha", "zeta"]


def test_config_extensions_add_keys_and_may_not_change_the_framework_s(monkeypatch):
    monkeypatch.setattr(config_defaults, "_CONFIG_EXTENSIONS", [])
    plain = get_cfg()

    @register_config_defaults
    def add_toy(cfg):
        cfg.MODEL.ROI_RELATION_HEAD.TOY = SGGConfig()
        cfg.MODEL.ROI_RELATION_HEAD.TOY.WIDTH = 3

    register_config_defaults(add_toy)  # a second registration is ignored
    cfg = get_cfg()
    assert cfg.MODEL.ROI_RELATION_HEAD.TOY.WIDTH == 3
    assert sorted(set(cfg.all_keys()) - set(plain.all_keys())) == ["MODEL.ROI_RELATION_HEAD.TOY.WIDTH"]
    cfg.merge_from_list(["MODEL.ROI_RELATION_HEAD.TOY.WIDTH", "5"])
    assert cfg.MODEL.ROI_RELATION_HEAD.TOY.WIDTH == 5

    @register_config_defaults
    def change_solver(cfg):
        cfg.SOLVER.MAX_ITER = 1

    with pytest.raises(ConfigError, match=r"change_solver \(register_config_defaults\) changes the existing config "
                                          r"key SOLVER.MAX_ITER; it may only add new keys"):
        get_cfg()
