"""Nothing lost, nothing silently wrong (issue 25): when a run resumes and when it refuses, extending a finished run,
config.yaml, failed and interrupted checkpoint writes, metrics.json after a resume, Ctrl-C."""
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys

import pytest
import torch

from engine_toys import ToyDataset, ToyModel, toy_cfg, toy_train_loader
from sgg.engine import HookBase, Trainer, TrainingInterrupted
from sgg.engine.resume import MAY_DIFFER_KEYS
from sgg.utils.checkpoint import Checkpointer, load_checkpoint_file
from sgg.utils.errors import CheckpointError, RunError
from sgg.utils.miscellaneous import seed_everything

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(output_dir, hooks=(), resume=True, val_fn=None, **settings):
    """A toy run (seeded) into ``output_dir``; returns the Trainer."""
    cfg = toy_cfg(output_dir, **settings)
    seed_everything(0)
    dataset = ToyDataset(jitter=True)
    trainer = Trainer(cfg, ToyModel(dropout=0.3), extra_hooks=hooks, val_fn=val_fn,
                      build_train_loader=lambda start: toy_train_loader(cfg, dataset, start))
    trainer.resume_or_load(resume)
    trainer.train()
    return trainer


class StopAt(HookBase):
    """A KeyboardInterrupt raised inside iteration ``at + 1`` (after ``at`` iterations and their hooks)."""

    def __init__(self, at):
        self.at = at

    def before_step(self):
        if self.trainer.iter == self.at:
            raise KeyboardInterrupt


def _iterations(output_dir, key="loss"):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [r["iteration"] for r in map(json.loads, f) if key in r]


def _same_parameters(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------------------------ resume or refuse
def test_resume_with_a_run_defining_change_is_refused_listing_every_key(tmp_path):
    with pytest.raises(TrainingInterrupted):
        _run(tmp_path, [StopAt(4)])  # a checkpoint at 4, run unfinished
    before = (tmp_path / "model_0000004.pth").read_bytes()
    config_before = (tmp_path / "config.yaml").read_text()
    changes = {"SOLVER.OPTIMIZER": "AdamW", "SOLVER.BASE_LR": 0.01,  # the torch KeyError 'momentum' case
               "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL": True, "DATASETS.TRAIN": ("other_train",),
               "SEED": 7}  # the seed of the training shuffle
    with pytest.raises(RunError) as err:
        _run(tmp_path, **changes)
    text = str(err.value)
    assert f"{tmp_path} holds a run at iteration 4" in text and "model_0000004.pth" in text
    assert "differs in 5 key(s)" in text and "  SEED: 0 in the run, 7 now" in text
    assert "  SOLVER.OPTIMIZER: 'SGD' in the run, 'AdamW' now" in text
    assert "  SOLVER.BASE_LR: 0.05 in the run, 0.01 now" in text
    assert "  MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL: False in the run, True now" in text
    assert "  DATASETS.TRAIN: [] in the run, ['other_train'] now" in text
    # refused before anything was written: checkpoint, last_checkpoint and config.yaml as they were
    assert (tmp_path / "model_0000004.pth").read_bytes() == before
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"
    assert (tmp_path / "config.yaml").read_text() == config_before


def test_keys_that_may_differ_resume_to_the_uninterrupted_run_and_config_yaml_keeps_the_previous(tmp_path):
    full = _run(tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        _run(tmp_path / "run", [StopAt(5)])
    first_config = (tmp_path / "run" / "config.yaml").read_text()
    allowed = {"SOLVER.LOG_PERIOD": 3, "SOLVER.CHECKPOINT_PERIOD": 3, "TEST.IMS_PER_BATCH": 2,
               "DATALOADER.NUM_WORKERS": 0, "MODEL.WEIGHT": "elsewhere.pth"}
    assert set(allowed) <= MAY_DIFFER_KEYS | {"TEST.IMS_PER_BATCH"}
    resumed = _run(tmp_path / "run", **allowed)
    assert resumed.start_iter == 4 and _same_parameters(full.model, resumed.model)
    assert (tmp_path / "run" / "config_until_0000004.yaml").read_text() == first_config
    assert "LOG_PERIOD: 3" in (tmp_path / "run" / "config.yaml").read_text()


def test_a_finished_run_extends_only_with_the_flag_and_keeps_its_final_model(tmp_path):
    _run(tmp_path / "run")
    final = (tmp_path / "run" / "model_final.pth").read_bytes()
    with pytest.raises(RunError, match=r"SOLVER.MAX_ITER is 12 but the run in .* was set to 8 and is at iteration 8 "
                                       r"\(finished\).*SOLVER.EXTEND_RUN True"):
        _run(tmp_path / "run", **{"SOLVER.MAX_ITER": 12})
    with pytest.raises(RunError, match="SOLVER.MAX_ITER 6 is below the iteration of the run's checkpoint"):
        _run(tmp_path / "run", **{"SOLVER.MAX_ITER": 6, "SOLVER.EXTEND_RUN": True})
    assert (tmp_path / "run" / "model_final.pth").read_bytes() == final
    assert not (tmp_path / "run" / "model_0000008.pth").exists()

    extended = _run(tmp_path / "run", **{"SOLVER.MAX_ITER": 12, "SOLVER.EXTEND_RUN": True})
    assert (tmp_path / "run" / "model_0000008.pth").read_bytes() == final  # kept under its iteration name
    assert load_checkpoint_file(str(tmp_path / "run" / "model_final.pth"))["iteration"] == 12
    assert (tmp_path / "run" / "last_checkpoint").read_text() == "model_final.pth"
    straight = _run(tmp_path / "straight", **{"SOLVER.MAX_ITER": 12})
    assert _same_parameters(straight.model, extended.model)  # the multi-step schedule does not depend on MAX_ITER
    assert _iterations(tmp_path / "run") == list(range(1, 13))
    # the extended run resumes under its new MAX_ITER without the flag
    again = _run(tmp_path / "run", **{"SOLVER.MAX_ITER": 12})
    assert again.start_iter == 12


def test_an_extended_cosine_schedule_follows_the_new_max_iter(tmp_path):
    cosine = {"SOLVER.SCHEDULE.TYPE": "WarmupCosineLR", "SOLVER.WARMUP_ITERS": 0}
    _run(tmp_path, **cosine)
    _run(tmp_path, **cosine, **{"SOLVER.MAX_ITER": 12, "SOLVER.EXTEND_RUN": True})
    with open(tmp_path / "metrics.json") as f:
        lrs = {r["iteration"]: r["lr"] for r in map(json.loads, f) if "lr" in r}
    # iteration 12 runs at it = 11 of a 12-iteration cosine (the 8-iteration one would have stayed at 0)
    assert lrs[12] == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 11 / 12)))
    assert lrs[8] == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 7 / 8)))


def test_a_tool_failing_at_start_up_keeps_the_previous_config_yaml(tmp_path):
    (tmp_path / "config.yaml").write_text("previous: run\n")
    proc = subprocess.run([sys.executable, "tools/detector_pretrain_net.py", "OUTPUT_DIR", str(tmp_path),
                           "MODEL.DEVICE", "cpu", "DATASETS.TRAIN", "('SyntheticVG_nope',)"],
                          cwd=os.path.dirname(os.path.dirname(HERE)), capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert proc.returncode != 0 and "SyntheticVG_nope" in proc.stderr
    assert (tmp_path / "config.yaml").read_text() == "previous: run\n"


def test_config_yaml_is_written_only_once_the_run_starts(tmp_path):
    cfg = toy_cfg(tmp_path)
    trainer = Trainer(cfg, ToyModel(), build_train_loader=lambda s: toy_train_loader(cfg, ToyDataset(size=0), s))
    trainer.resume_or_load()
    with pytest.raises(ValueError, match="training dataset toy is empty"):
        trainer.train()
    assert not (tmp_path / "config.yaml").exists()
    _run(tmp_path)
    assert (tmp_path / "config.yaml").read_text() == toy_cfg(tmp_path).dump()
    assert not [p for p in os.listdir(tmp_path) if p.startswith("config_until")]  # same config: nothing to keep


# ----------------------------------------------------------------------------------------------- checkpoint writes
def test_a_failed_checkpoint_write_names_the_path_and_keeps_the_previous_one(tmp_path, monkeypatch):
    model = ToyModel()
    checkpointer = Checkpointer(model, save_dir=str(tmp_path))
    checkpointer.save("model_0000002", 2)

    def disk_full(obj, path):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError) as err:
        checkpointer.save("model_0000004", 4)
    assert str(err.value).startswith(f"cannot write checkpoint {tmp_path / 'model_0000004.pth'}: OSError: ")
    assert "No space left on device" in str(err.value)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000002.pth"]  # no partial file, no temp
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000002.pth"
    monkeypatch.undo()

    blocked = tmp_path / "a_file"
    blocked.write_text("")
    with pytest.raises(CheckpointError, match=rf"cannot write checkpoint {blocked}/out/model_0000001.pth: cannot "
                                              r"create its folder"):
        Checkpointer(model, save_dir=str(blocked / "out")).save("model_0000001", 1)


def _dead_pid():
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_temporaries_of_a_killed_save_are_removed_at_the_next_start(tmp_path):
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {"orphan": f"model_0000004.pth.tmp.{dead}", "orphan_tag": f"last_checkpoint.tmp.{dead}",
                 "own": f"model_0000002.pth.tmp.{os.getpid()}", "live": f"model_0000006.pth.tmp.{live.pid}",
                 "other": "notes.tmp.txt"}
        for name in names.values():
            (tmp_path / name).write_bytes(b"partial")
        cfg = toy_cfg(tmp_path)
        Trainer(cfg, ToyModel(), build_train_loader=lambda s: None).resume_or_load()
        left = set(os.listdir(tmp_path))
        # a save still running in another process is not touched (.training.lock: this trainer's own)
        assert left == {names["live"], names["other"], ".training.lock"}
    finally:
        live.kill()
        live.wait()


def test_metrics_json_has_each_iteration_once_after_a_resume(tmp_path):
    settings = {"SOLVER.TO_VAL": True, "SOLVER.VAL_PERIOD": 3, "SOLVER.PRE_VAL": True, "SOLVER.BEST_METRIC": "acc",
                "val_fn": lambda model: {"acc": 0.5}}
    with pytest.raises(TrainingInterrupted):
        _run(tmp_path, [StopAt(6)], **settings)  # iterations 1..6 logged, checkpoint at 4
    assert _iterations(tmp_path) == [1, 2, 3, 4, 5, 6] and _iterations(tmp_path, "val/acc") == [0, 3, 6]
    with open(tmp_path / "metrics.json", "a") as f:
        f.write('{"iteration": 7, "lo')  # a line cut short by a kill
    _run(tmp_path, **settings)
    assert _iterations(tmp_path) == list(range(1, 9))
    assert _iterations(tmp_path, "val/acc") == [0, 3, 6, 8]  # pre-validation only in the fresh run
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 9))  # 5 and 6 once, purged
    assert [e.step for e in events.Scalars("val/acc")] == [0, 3, 6, 8]
    # a fresh start (no checkpoint) drops everything an earlier attempt logged
    for name in ("last_checkpoint", "model_0000004.pth", "model_final.pth", "model_best.pth"):
        (tmp_path / name).unlink()
    _run(tmp_path, **{"SOLVER.MAX_ITER": 3})
    assert _iterations(tmp_path) == [1, 2, 3] and _iterations(tmp_path, "val/acc") == []


def test_a_fresh_start_never_overwrites_checkpoints_whose_last_checkpoint_is_gone(tmp_path):
    _run(tmp_path)
    final = (tmp_path / "model_final.pth").read_bytes()
    (tmp_path / "last_checkpoint").unlink()
    with pytest.raises(RunError) as err:
        _run(tmp_path)
    assert str(err.value).startswith(f"{tmp_path} holds checkpoints (model_0000004.pth, model_final.pth) but no "
                                     "last_checkpoint, so this run would start afresh and overwrite them")
    assert (tmp_path / "model_final.pth").read_bytes() == final
    (tmp_path / "last_checkpoint").write_text("model_0000004.pth")  # what the message suggests: resume from one
    assert _run(tmp_path).start_iter == 4


# ---------------------------------------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_saves_the_completed_iteration_and_exits_130_without_traceback(tmp_path):
    sys.path.insert(0, HERE)
    from sigint_toy_train import build

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(HERE)),
                                                       os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, os.path.join(HERE, "sigint_toy_train.py"), str(tmp_path / "run")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=True)
    try:
        assert child.stdout.readline().strip() == "READY"
        os.killpg(child.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the trainer and its loader worker
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert "Traceback" not in err and "FINISHED" not in out and err.count("Ctrl-C: stopping after") == 1
    done = int(re.search(r"Interrupted after iteration (\d+) of 12: saved; run the same command to resume from",
                         err).group(1))
    assert 4 <= done < 12  # iteration 4 (whose batch was being built) or, on a slow machine, a later one
    assert (tmp_path / "run" / "last_checkpoint").read_text() == f"model_{done:07d}.pth"
    assert load_checkpoint_file(str(tmp_path / "run" / f"model_{done:07d}.pth"))["iteration"] == done
    # the saved state is the uninterrupted run's: resuming it ends with the same parameters. Bit-exact needs the
    # child's one thread here too (a 2-thread convolution sums in another order)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = build(tmp_path / "run")
        assert resumed.resume_or_load() == done
        resumed.train()
        straight = build(tmp_path / "straight")
        straight.resume_or_load()
        straight.train()
    finally:
        torch.set_num_threads(threads)
    assert _same_parameters(straight.model, resumed.model)


def test_an_interrupt_inside_an_iteration_says_that_it_saved_nothing_and_where_the_next_run_starts(tmp_path, caplog):
    # SIGINT between iterations saves (test above); a KeyboardInterrupt inside one cannot, and must say so
    with caplog.at_level(logging.ERROR, logger="sgg.engine.trainer"):
        with pytest.raises(TrainingInterrupted) as stop:
            _run(tmp_path / "early", [StopAt(2)])  # before the first checkpoint (CHECKPOINT_PERIOD 4)
        assert stop.value.code == 130
        assert ("Interrupted during iteration 3: no checkpoint saved for it; there is no checkpoint yet: the next "
                "run starts afresh") in caplog.text
        assert not (tmp_path / "early" / "last_checkpoint").exists()
        caplog.clear()
        with pytest.raises(TrainingInterrupted):
            _run(tmp_path / "later", [StopAt(6)])
        checkpoint = tmp_path / "later" / "model_0000004.pth"
        assert (f"Interrupted during iteration 7: no checkpoint saved for it; the next run resumes from "
                f"{checkpoint}") in caplog.text
    assert (tmp_path / "later" / "last_checkpoint").read_text() == "model_0000004.pth"
    assert not (tmp_path / "later" / "model_0000006.pth").exists()


# ------------------------------------------------------------------------------- one training process per folder
_HOLD_LOCK = """
import fcntl, os, sys, time
f = open(os.path.join(sys.argv[1], ".training.lock"), "a+")
fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
f.truncate(0)
f.write("pid %d on a test\\n" % os.getpid())
f.flush()
print("LOCKED", flush=True)
time.sleep(120)
"""


def test_a_folder_another_process_is_training_into_is_refused_and_free_once_that_process_dies(tmp_path):
    with pytest.raises(TrainingInterrupted):
        _run(tmp_path, [StopAt(5)])  # a checkpoint at 4
    checkpoint = (tmp_path / "model_0000004.pth").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        with pytest.raises(RunError) as err:
            _run(tmp_path)
        assert str(err.value).startswith(f"{tmp_path} is in use: another process is training into it "
                                         f"(pid {holder.pid} on a test; it holds {tmp_path / '.training.lock'})")
        # refused before anything was read or written
        assert (tmp_path / "model_0000004.pth").read_bytes() == checkpoint
        assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"
    finally:
        holder.kill()  # a killed holder leaves the file but not the lock
        holder.wait()
    assert _run(tmp_path).start_iter == 4
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"


def test_the_lock_is_held_from_resume_or_load_to_the_end_of_train_and_released_on_a_refusal(tmp_path):
    cfg = toy_cfg(tmp_path)
    dataset = ToyDataset()
    loader = lambda start: toy_train_loader(cfg, dataset, start)  # noqa: E731
    first = Trainer(cfg, ToyModel(), build_train_loader=loader)
    first.resume_or_load()
    second = Trainer(cfg, ToyModel(), build_train_loader=loader)
    with pytest.raises(RunError, match="is in use: another process is training into it"):
        second.resume_or_load()
    first.train()  # finished: the folder is free although `first` is still alive
    again = Trainer(cfg, ToyModel(), build_train_loader=loader)
    assert again.resume_or_load() == 8  # the finished run
    again.train()
    with pytest.raises(RunError, match="SOLVER.MAX_ITER is 12"):  # refused: released with the error
        _run(tmp_path, **{"SOLVER.MAX_ITER": 12})
    assert _run(tmp_path).start_iter == 8


# --------------------------------------------------------------------------- training time summed over attempts
def test_a_resumed_run_reports_the_training_time_of_all_its_attempts(tmp_path, caplog):
    with pytest.raises(TrainingInterrupted):
        _run(tmp_path, [StopAt(6)])  # iterations 1-6 ran, the checkpoint keeps 1-4
    state = load_checkpoint_file(str(tmp_path / "model_0000004.pth"))["trainer_state"]
    assert 0 < state["train_seconds"] < 60
    # as if the first attempt had taken 30 hours to reach its checkpoint (past a day: no "1 day, ..." in the log)
    path = tmp_path / "model_0000004.pth"
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["trainer_state"]["train_seconds"] = 30 * 3600.0
    torch.save(checkpoint, path)
    with caplog.at_level(logging.INFO, logger="sgg.engine.hooks"):
        _run(tmp_path)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Total training time"))
    total, per_iteration, this_attempt = re.fullmatch(
        r"Total training time: (30:00:\d\d) \(([0-9.]+) s / it\) over iterations 1-8, of which this attempt "
        r"trained 5-8 in (0:00:\d\d)", line).groups()
    assert 30 * 3600 / 8 <= float(per_iteration) < (30 * 3600 + 60) / 8  # the whole run's iterations
    final = load_checkpoint_file(str(tmp_path / "model_final.pth"))["trainer_state"]["train_seconds"]
    assert 30 * 3600 < final < 30 * 3600 + 60
    from sgg.benchmarking.runner import parse_times

    (tmp_path / "log.txt").write_text(line + "\n")
    assert parse_times(str(tmp_path))["train_seconds"] >= 30 * 3600  # what the benchmark tables read


def test_a_fresh_run_reports_its_own_time_and_a_resume_without_a_recorded_time_says_so(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="sgg.engine.hooks"):
        with pytest.raises(TrainingInterrupted):
            _run(tmp_path, [StopAt(5)])
        assert not [r for r in caplog.records if r.getMessage().startswith("Total training time")]  # interrupted
        path = tmp_path / "model_0000004.pth"
        checkpoint = torch.load(path, weights_only=False)
        del checkpoint["trainer_state"]["train_seconds"]  # a checkpoint of an earlier version
        torch.save(checkpoint, path)
        _run(tmp_path)
        _run(tmp_path / "fresh")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Total training time")]
    assert re.fullmatch(r"Total training time: 0:00:\d\d \([0-9.]+ s / it\) for iterations 5-8 only: the "
                        r"checkpoint this attempt resumed from records no training time", lines[0])
    assert re.fullmatch(r"Total training time: 0:00:\d\d \([0-9.]+ s / it\)", lines[1])
