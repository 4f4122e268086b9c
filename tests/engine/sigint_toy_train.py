"""Trains the toy model and waits after iteration 3 for a SIGINT from the test (test_run_safety.py).

Usage: sigint_toy_train.py OUTPUT_DIR. Prints READY after iteration 3; the trainer then saves and exits with 130.
"""
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engine_toys import ToyDataset, ToyModel, toy_cfg, toy_train_loader  # noqa: E402
from sgg.engine import HookBase, Trainer  # noqa: E402
from sgg.utils.miscellaneous import seed_everything  # noqa: E402

SETTINGS = {"SOLVER.MAX_ITER": 8, "SOLVER.CHECKPOINT_PERIOD": 100}  # no periodic checkpoint before the end


class WaitForSignal(HookBase):
    def after_step(self):
        if self.trainer.completed_iter == 3:
            print("READY", flush=True)
            deadline = time.time() + 60
            while not self.trainer.interrupt_requested and time.time() < deadline:
                time.sleep(0.01)


def build(output_dir, hooks=()):
    cfg = toy_cfg(output_dir, **SETTINGS)
    seed_everything(0)
    dataset = ToyDataset(jitter=True)
    return Trainer(cfg, ToyModel(dropout=0.3), extra_hooks=hooks,
                   build_train_loader=lambda start: toy_train_loader(cfg, dataset, start))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    trainer = build(sys.argv[1], [WaitForSignal()])
    trainer.resume_or_load()
    trainer.train()
    print("FINISHED", flush=True)
