"""Trains the toy model through the real tool setup; run as one process or under torchrun (used by test_ddp.py).

Usage: [torchrun --nproc_per_node N] ddp_toy_train.py OUTPUT_DIR
Writes OUTPUT_DIR/result.json (rank 0): the final parameters and a sharded evaluation over 10 images.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engine_toys import ToyDataset, ToyModel, score_evaluator, toy_test_loader, toy_train_loader  # noqa: E402
from sgg.engine import Trainer, default_setup, inference_on_dataset  # noqa: E402
from sgg.utils import comm  # noqa: E402

GLOBAL_BATCH = 4


def main(output_dir: str) -> None:
    opts = ["OUTPUT_DIR", output_dir, "MODEL.DEVICE", "cpu", "SOLVER.MAX_ITER", 6, "SOLVER.IMS_PER_BATCH",
            GLOBAL_BATCH, "SOLVER.BASE_LR", 0.05, "SOLVER.SCALE_LR_BY_BATCH", False, "SOLVER.WARMUP_ITERS", 2,
            "SOLVER.STEPS", "(4,)", "SOLVER.CHECKPOINT_PERIOD", 3, "SOLVER.LOG_PERIOD", 1, "SOLVER.PRE_VAL", False,
            "SOLVER.TO_VAL", True, "SOLVER.VAL_PERIOD", 3, "SOLVER.BEST_METRIC", "mean_score",
            "TEST.IMS_PER_BATCH", 4, "DATALOADER.NUM_WORKERS", 0, "SEED", 3]
    cfg = default_setup(None, [str(o) for o in opts])
    distributed = comm.get_world_size() > 1
    train_data, val_data = ToyDataset(size=16), ToyDataset(size=10, seed=7)  # 10 images: uneven shards

    def val_fn(model):
        return inference_on_dataset(model, toy_test_loader(cfg, val_data, distributed), score_evaluator)

    model = ToyModel()
    trainer = Trainer(cfg, model, val_fn=val_fn,
                      build_train_loader=lambda start: toy_train_loader(cfg, train_data, start, distributed))
    trainer.resume_or_load()
    trainer.train()
    final = val_fn(model)
    if comm.is_main_process():
        params = {k: v.flatten().tolist() for k, v in model.state_dict().items()}
        with open(os.path.join(output_dir, "result.json"), "w") as f:
            json.dump({"world_size": comm.get_world_size(), "final": final, "params": params}, f)


if __name__ == "__main__":
    main(sys.argv[1])
