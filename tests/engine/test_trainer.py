"""The training loop on a toy model: learning, logs, exact resume, NaN stop, plateau stop, best checkpoint,
freezing, empty data, and inference."""
import json
import logging
import math
import os

import pytest
import torch

from engine_toys import ToyDataset, ToyModel, score_evaluator, toy_cfg, toy_test_loader, toy_train_loader
from sgg.engine import HookBase, Trainer, TrainingInterrupted, evaluate_detector, inference_on_dataset, run_inference
from sgg.utils.checkpoint import load_checkpoint_file
from sgg.utils.miscellaneous import seed_everything


def _trainer(cfg, model=None, dataset=None, **kw):
    dataset = dataset if dataset is not None else ToyDataset()
    model = model if model is not None else ToyModel()
    return Trainer(cfg, model, build_train_loader=lambda start: toy_train_loader(cfg, dataset, start), **kw)


def _records(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line) for line in f]


def test_training_lowers_the_loss_and_writes_logs_and_checkpoints(tmp_path):
    cfg = toy_cfg(tmp_path, **{"SOLVER.MAX_ITER": 30, "SOLVER.STEPS": (25,), "SOLVER.CHECKPOINT_PERIOD": 10})
    seed_everything(0)
    trainer = _trainer(cfg)
    assert trainer.resume_or_load() == 0
    loop = trainer.train()
    train_records = [r for r in _records(tmp_path) if "loss" in r]
    assert [r["iteration"] for r in train_records] == list(range(1, 31))
    first, last = train_records[0], train_records[-1]
    assert last["loss"] < 0.7 * first["loss"]
    for key in ("loss_a", "loss_b", "lr", "time", "data_time", "grad_norm", "eta_seconds", "max_mem_mb"):
        assert key in last
    assert first["lr"] == pytest.approx(0.05 / 3) and last["lr"] == pytest.approx(0.005)  # warmup, then x0.1 at 25
    assert first["loss"] == pytest.approx(first["loss_a"] + first["loss_b"])
    files = set(os.listdir(tmp_path))
    assert {"model_0000010.pth", "model_0000020.pth", "model_final.pth", "tensorboard"} <= files
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    final = load_checkpoint_file(str(tmp_path / "model_final.pth"))
    assert final["iteration"] == 30 and final["label_names"] == {"ind_to_classes": ["__background__", "thing",
                                                                                      "other"]}
    assert loop.completed_iter == 30 and trainer.train is not None
    # a finished run resumed again has nothing to do
    again = _trainer(cfg)
    assert again.resume_or_load() == 30 and again.train() is None


class Interrupt(HookBase):
    """Kills the run just before iteration ``at + 1`` (after iteration ``at`` was checkpointed)."""

    def __init__(self, at):
        self.at = at

    def before_step(self):
        if self.trainer.iter == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("schedule", ["WarmupMultiStepLR", "WarmupReduceLROnPlateau"])
def test_resume_at_k_gives_the_parameters_of_an_uninterrupted_run(tmp_path, schedule):
    settings = {"SOLVER.MAX_ITER": 8, "SOLVER.CHECKPOINT_PERIOD": 4, "SOLVER.SCHEDULE.TYPE": schedule,
                "SOLVER.SCHEDULE.PATIENCE": 1, "SOLVER.SCHEDULE.COOLDOWN": 0, "SOLVER.TO_VAL": True,
                "SOLVER.VAL_PERIOD": 3, "SOLVER.BEST_METRIC": "mean_score"}
    val_data = ToyDataset(size=6, seed=7)

    def run(output_dir, seed, hooks=()):
        cfg = toy_cfg(output_dir, **settings)
        seed_everything(seed)
        trainer = _trainer(cfg, ToyModel(dropout=0.3), ToyDataset(jitter=True), extra_hooks=hooks,
                           val_fn=lambda m: inference_on_dataset(m, toy_test_loader(cfg, val_data), score_evaluator))
        trainer.resume_or_load()
        trainer.train()
        return trainer

    full = run(tmp_path / "full", seed=0)
    with pytest.raises(TrainingInterrupted) as stop:  # a KeyboardInterrupt during an iteration: nothing saved
        run(tmp_path / "stopped", seed=0, hooks=[Interrupt(4)])
    assert stop.value.code == 130
    assert (tmp_path / "stopped" / "last_checkpoint").read_text() == "model_0000004.pth"
    resumed = run(tmp_path / "stopped", seed=99)  # a different seed: only the checkpoint may matter
    assert resumed.start_iter == 4
    expected, got = full.model.state_dict(), resumed.model.state_dict()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert resumed.optimizer.param_groups[0]["lr"] == full.optimizer.param_groups[0]["lr"]
    losses = {r["iteration"]: r["loss"] for r in _records(tmp_path / "full") if "loss" in r}
    resumed_losses = {r["iteration"]: r["loss"] for r in _records(tmp_path / "stopped") if "loss" in r}
    assert resumed_losses == losses


def test_nan_loss_stops_with_iteration_and_terms_and_saves_nothing_corrupt(tmp_path):
    cfg = toy_cfg(tmp_path, **{"SOLVER.CHECKPOINT_PERIOD": 1})
    model = ToyModel(nan_at=3)
    trainer = _trainer(cfg, model)
    trainer.resume_or_load()
    with pytest.raises(FloatingPointError) as err:
        trainer.train()
    text = str(err.value)
    assert "non-finite loss at iteration 3" in text and "loss_a=" in text and "loss_b=nan" in text
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith(".pth")) == ["model_0000001.pth",
                                                                             "model_0000002.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000002.pth"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    saved = load_checkpoint_file(str(tmp_path / "model_0000002.pth"))["model"]
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())  # no update from iteration 3


def test_plateau_schedule_stops_after_max_decay_step_and_keeps_best(tmp_path):
    cfg = toy_cfg(tmp_path, **{"SOLVER.SCHEDULE.TYPE": "WarmupReduceLROnPlateau", "SOLVER.SCHEDULE.PATIENCE": 1,
                               "SOLVER.SCHEDULE.COOLDOWN": 0, "SOLVER.SCHEDULE.MAX_DECAY_STEP": 2,
                               "SOLVER.SCHEDULE.FACTOR": 0.1, "SOLVER.WARMUP_ITERS": 0, "SOLVER.TO_VAL": True,
                               "SOLVER.VAL_PERIOD": 1, "SOLVER.BEST_METRIC": "acc"})
    trainer = _trainer(cfg, val_fn=lambda m: {"acc": 0.5})
    trainer.resume_or_load()
    loop = trainer.train()
    # 0.5 is the best at 1; no improvement at 2 (decay 1) and 3 (decay 2 = MAX_DECAY_STEP): stop
    assert loop.completed_iter == 3 and loop.stop_reason
    assert load_checkpoint_file(str(tmp_path / "model_final.pth"))["iteration"] == 3
    assert load_checkpoint_file(str(tmp_path / "model_best.pth"))["iteration"] == 1
    lrs = [r["lr"] for r in _records(tmp_path) if "lr" in r]
    assert lrs == pytest.approx([0.05, 0.05, 0.005])


def test_best_checkpoint_follows_the_metric_and_pre_val(tmp_path):
    scores = iter([-1.0, 0.1, 0.3, 0.2])
    calls = []

    def val_fn(model):
        assert not model.training
        calls.append(1)
        return {"nested": {"acc": next(scores)}}

    cfg = toy_cfg(tmp_path, **{"SOLVER.MAX_ITER": 6, "SOLVER.TO_VAL": True, "SOLVER.PRE_VAL": True,
                               "SOLVER.VAL_PERIOD": 2, "SOLVER.BEST_METRIC": "nested/acc"})
    evaluate_model = ToyModel()
    trainer = _trainer(cfg, evaluate_model, val_fn=lambda m: (m.eval(), val_fn(m))[1])
    trainer.resume_or_load()
    trainer.train()
    assert len(calls) == 4 and evaluate_model.training
    best = load_checkpoint_file(str(tmp_path / "model_best.pth"))
    assert best["iteration"] == 4 and best["trainer_state"]["best_metric"] == 0.3
    val = [r for r in _records(tmp_path) if "val/nested/acc" in r]
    assert [(r["iteration"], r["val/nested/acc"]) for r in val] == [(0, -1.0), (2, 0.1), (4, 0.3), (6, 0.2)]


def test_unknown_best_metric_lists_the_available_ones(tmp_path):
    cfg = toy_cfg(tmp_path, **{"SOLVER.TO_VAL": True, "SOLVER.VAL_PERIOD": 2, "SOLVER.BEST_METRIC": "R@100"})
    trainer = _trainer(cfg, val_fn=lambda m: {"mAP": 0.5, "AP": 0.3})
    with pytest.raises(KeyError, match="'R@100'.*AP, mAP"):
        trainer.train()


def test_freeze_patterns_keep_parameters_fixed_and_cpu_amp_is_a_no_op(tmp_path, caplog):
    cfg = toy_cfg(tmp_path, **{"SOLVER.FREEZE_PATTERNS": ("backbone",), "SOLVER.MAX_ITER": 3})
    cfg.DTYPE = "float16"
    model = ToyModel()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.INFO):
        trainer = _trainer(cfg, model)
    assert trainer.scaler is None and "float16 needs CUDA's GradScaler: training in float32" in caplog.text
    trainer.train()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("backbone"))
    assert not torch.equal(before["head.1.weight"], after["head.1.weight"])


def test_empty_dataset_is_a_clear_error(tmp_path):
    cfg = toy_cfg(tmp_path)
    with pytest.raises(ValueError, match="training dataset toy is empty"):
        _trainer(cfg, dataset=ToyDataset(size=0)).train()
    with pytest.raises(ValueError, match="inference: dataset toy has no images"):
        run_inference(ToyModel(), toy_test_loader(cfg, ToyDataset(size=0)))


def test_inference_resizes_to_the_original_image_and_evaluates(tmp_path):
    cfg = toy_cfg(tmp_path)
    model = ToyModel()
    model.train()
    dataset = ToyDataset(size=6)
    predictions = run_inference(model, toy_test_loader(cfg, dataset))
    assert model.training and sorted(predictions) == list(range(6))
    assert predictions[0].size == (16, 16) and predictions[0].bbox.tolist() == [[2.0, 2.0, 12.0, 12.0]]
    results = inference_on_dataset(model, toy_test_loader(cfg, dataset), score_evaluator)
    assert results["num_images"] == 6 and 0 < results["mean_score"] < 1


def test_evaluate_detector_reports_coco_map(tmp_path, caplog):
    cfg = toy_cfg(tmp_path)
    with caplog.at_level(logging.INFO):
        results = evaluate_detector(cfg, ToyModel(), [toy_test_loader(cfg, ToyDataset(size=4))])
    assert results["mAP"] == pytest.approx(1.0) and "AP" in results
    assert "Detection evaluation mAp=1.0000" in caplog.text
    assert math.isfinite(results["AP"])


def test_parameter_summary_counts_frozen_and_backbone_parameters():
    from torch import nn

    from sgg.modeling.model_info import parameter_summary

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Linear(3, 4)  # 12 + 4 = 16 parameters
            self.head = nn.Linear(4, 2)  # 8 + 2 = 10 parameters

    model = Toy()
    model.backbone.weight.requires_grad_(False)
    assert parameter_summary(model) == {"total_parameters": 26, "trainable_parameters": 14,
                                        "backbone_parameters": 16}


@pytest.mark.parametrize("config, opts, expected", [
    ("synthetic/detector_tiny_fpn.yaml", [], ("tiny-FPN Faster R-CNN", "-")),
    ("synthetic/relation_base.yaml", ["MODEL.ROI_RELATION_HEAD.PREDICTOR", "MotifPredictor"],
     ("tiny-FPN Faster R-CNN", "MotifPredictor")),
    ("synthetic/spl_ce.yaml", [], ("tiny-FPN Faster R-CNN", "PrototypeEmbeddingNetwork + SPL")),
    ("synthetic/detr.yaml", [], ("tiny-FPN DETR", "-")),
    ("synthetic/iterative_sg.yaml", [], ("tiny-FPN DETR", "IterativeSG decoders")),
    ("e2e_relation_X_101_32_8_FPN_1x.yaml", [], ("X-101-32x8d-FPN Faster R-CNN", "MotifPredictor")),
    ("iterative_sg/vg150_R101.yaml", [], ("R-101-FPN DETR", "IterativeSG decoders")),
    ("synthetic/relation_base.yaml", ["MODEL.BACKBONE.CONV_BODY", "R-50", "MODEL.RESNETS.NUM_GROUPS", "32",
                                       "MODEL.RESNETS.WIDTH_PER_GROUP", "4"],
     ("X-50-32x4d Faster R-CNN", "TransformerPredictor")),
])
def test_describe_model_names_the_encoder_and_decoder_of_the_model_table(config, opts, expected):
    from sgg.config import get_cfg
    from sgg.modeling.model_info import describe_model

    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(os.path.dirname(__file__), "..", "..", "configs", config))
    cfg.merge_from_list(opts)
    assert tuple(describe_model(cfg).values()) == expected


@pytest.mark.parametrize("config, expected", [
    ("synthetic/iterative_sg.yaml", 16),  # one triplet per relation query
    ("iterative_sg/vg150_R101.yaml", 300),
    ("synthetic/relation_base.yaml", None),  # a two-stage head ranks every candidate pair
])
def test_triplet_cap_is_the_relation_query_count_of_iterative_sg(config, expected):
    from sgg.config import get_cfg
    from sgg.modeling.model_info import triplet_cap

    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(os.path.dirname(__file__), "..", "..", "configs", config))
    assert triplet_cap(cfg) == expected
