"""Checkpointer: file layout, relative last_checkpoint, weights-only loading and its errors."""
import logging
import os

import pytest
import torch
from torch import nn

from engine_toys import ToyDataset, ToyModel, toy_cfg, toy_train_loader
from sgg.engine import Trainer
from sgg.utils.checkpoint import Checkpointer, load_checkpoint_file
from sgg.utils.errors import CheckpointError


def _checkpointer(tmp_path, model=None, **kw):
    model = model or ToyModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return Checkpointer(model, opt, save_dir=str(tmp_path), cfg=toy_cfg(tmp_path), **kw)


def test_save_writes_self_contained_file_and_relative_last_checkpoint(tmp_path):
    ck = _checkpointer(tmp_path, label_names={"classes": ["bg", "cat"]})
    path = ck.save("model_0000004", iteration=4)
    assert path == os.path.join(str(tmp_path), "model_0000004.pth")
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]
    data = load_checkpoint_file(path)
    assert data["iteration"] == 4 and data["label_names"] == {"classes": ["bg", "cat"]}
    assert "SOLVER:" in data["config"] and set(data["model"]) == set(ck.model.state_dict())
    assert "optimizer" in data and len(data["rng_states"]) == 1
    ck.save("model_best", iteration=5, tag_last=False)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"


def test_last_checkpoint_from_another_machine_falls_back_to_output_dir(tmp_path):
    ck = _checkpointer(tmp_path)
    ck.save("model_0000002", iteration=2)
    (tmp_path / "last_checkpoint").write_text("/home/someone/output/model_0000002.pth")
    assert ck.get_checkpoint_file() == os.path.join(str(tmp_path), "model_0000002.pth")
    (tmp_path / "last_checkpoint").write_text("model_0000009.pth")
    with pytest.raises(FileNotFoundError, match="names checkpoint model_0000009.pth"):
        ck.resume()


class Other(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.0), nn.Linear(8, 2))


def test_checkpoint_of_another_architecture_lists_mismatching_keys(tmp_path):
    src = Checkpointer(Other(), save_dir=str(tmp_path / "other"))
    path = src.save("model_final", iteration=1)
    with pytest.raises(CheckpointError) as err:
        _checkpointer(tmp_path).load_weights(path)
    text = str(err.value)
    assert "MODEL.WEIGHT: checkpoint" in text and "another architecture" in text
    assert "backbone.0.weight: checkpoint (8, 3, 3, 3) vs model (4, 3, 3, 3)" in text
    assert "head.1.weight: checkpoint (2, 8) vs model (2, 4)" in text

    unrelated = tmp_path / "unrelated.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, unrelated)
    with pytest.raises(CheckpointError, match="none of its 1 keys is a model key"):
        _checkpointer(tmp_path).load_weights(str(unrelated))


def test_weights_only_load_reports_missing_and_unexpected_keys(tmp_path, caplog):
    source = ToyModel()
    state = {"module." + k: v for k, v in source.state_dict().items() if not k.startswith("head")}
    state["module.extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save({"model": state}, path)  # SGB's layout, DDP "module." prefixes
    target = _checkpointer(tmp_path)
    with caplog.at_level(logging.WARNING):
        report = target.load_weights(str(path))
    assert report == {"missing": ["head.1.bias", "head.1.weight"], "unexpected": ["extra.weight"]}
    assert "2 model keys not in" in caplog.text and "1 keys in" in caplog.text
    assert torch.equal(target.model.backbone[0].weight, source.backbone[0].weight)


def test_missing_weight_file_names_the_key_and_path(tmp_path):
    cfg = toy_cfg(tmp_path, **{"MODEL.WEIGHT": str(tmp_path / "nope.pth")})
    trainer = Trainer(cfg, ToyModel(), build_train_loader=lambda s: toy_train_loader(cfg, ToyDataset(), s))
    with pytest.raises(FileNotFoundError, match=r"MODEL.WEIGHT: checkpoint file .*nope.pth does not exist"):
        trainer.resume_or_load()


def test_never_saves_non_finite_parameters(tmp_path):
    ck = _checkpointer(tmp_path)
    with torch.no_grad():
        ck.model.head[1].weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"not saving checkpoint model_0000003 .*head.1.weight"):
        ck.save("model_0000003", iteration=3)
    assert not os.listdir(tmp_path)


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="MODEL.WEIGHT: cannot read checkpoint file"):
        _checkpointer(tmp_path).load_weights(str(bad))


def test_checkpoint_errors_are_checkpoint_errors_and_keep_their_old_types(tmp_path):
    from sgg.utils.errors import CheckpointError

    with pytest.raises(CheckpointError) as missing:
        load_checkpoint_file(str(tmp_path / "nope.pth"), key="MODEL.WEIGHT")
    assert isinstance(missing.value, FileNotFoundError)
    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint")
    with pytest.raises(CheckpointError) as unreadable:
        load_checkpoint_file(str(garbage), key="MODEL.WEIGHT")
    assert isinstance(unreadable.value, RuntimeError)
    src = Checkpointer(Other(), save_dir=str(tmp_path / "other"))
    with pytest.raises(CheckpointError, match="another architecture"):
        _checkpointer(tmp_path).load_weights(src.save("model_final", iteration=1))
