"""Trains the toy model (one loader worker, which builds each batch while the trainer waits for it) and says when
the test may send SIGINT, to the whole process group as a terminal's Ctrl-C does (test_run_safety.py).

Usage: sigint_toy_train.py OUTPUT_DIR. Prints READY before iteration 4; after the signal the trainer finishes the
iteration it is in, saves it and exits with 130.
"""
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engine_toys import ToyDataset, ToyModel, toy_cfg, toy_train_loader  # noqa: E402
from sgg.engine import HookBase, Trainer  # noqa: E402
from sgg.utils.miscellaneous import seed_everything  # noqa: E402

SETTINGS = {"SOLVER.MAX_ITER": 12, "SOLVER.CHECKPOINT_PERIOD": 100}  # no periodic checkpoint before the end


class SlowToyDataset(ToyDataset):
    """Items take a while, so that the main process spends its time waiting for the workers' batches: the signal
    then reaches it there, where dead workers would be an error."""

    def __getitem__(self, index):
        time.sleep(0.1)
        return super().__getitem__(index)


class SayReady(HookBase):
    """Before iteration 4, whose batch the worker is still building: the signal reaches the worker in the middle of
    it and the trainer waiting for it."""

    def before_step(self):
        if self.trainer.iter == 3:
            print("READY", flush=True)


def build(output_dir, hooks=(), workers=0, slow=False):
    """No random augmentation (``jitter``), so the data do not depend on the workers' seeds; dropout does draw."""
    cfg = toy_cfg(output_dir, **SETTINGS)
    seed_everything(0)
    dataset = SlowToyDataset() if slow else ToyDataset()
    return Trainer(cfg, ToyModel(dropout=0.3), extra_hooks=hooks,
                   build_train_loader=lambda start: toy_train_loader(cfg, dataset, start, workers=workers))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    trainer = build(sys.argv[1], [SayReady()], workers=1, slow=True)
    trainer.resume_or_load()
    trainer.train()
    print("FINISHED", flush=True)
