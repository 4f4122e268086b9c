"""What every tool does before building a model: arguments, distributed setup, logging, seeds, device."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Iterable, Optional

from sgg.config import load_config
from sgg.modeling.device import resolve_device  # noqa: F401  (re-exported: tools import it from sgg.engine)
from sgg.utils import comm
from sgg.utils.checkpoint import LAST_CHECKPOINT, Checkpointer
from sgg.utils.logger import setup_logger
from sgg.utils.miscellaneous import collect_env_info, mkdir, seed_everything, set_deterministic

logger = logging.getLogger(__name__)


class _ToolArgumentParser(argparse.ArgumentParser):
    """Also accepts the flags after the ``KEY VALUE`` overrides (where argparse's REMAINDER would swallow them)."""

    FLAGS = ("--skip-test",)

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        for flag in self.FLAGS:
            while flag in parsed.opts:
                parsed.opts.remove(flag)
                setattr(parsed, flag.lstrip("-").replace("-", "_"), True)
        return parsed


def default_argument_parser(description: str) -> argparse.ArgumentParser:
    """``--config-file``, ``--skip-test`` and trailing ``KEY VALUE`` overrides, as SGB's tools."""
    parser = _ToolArgumentParser(description=description)
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to the config yaml")
    parser.add_argument("--skip-test", action="store_true", help="do not evaluate on DATASETS.TEST after training")
    # torch.distributed.launch passes --local_rank; torchrun sets LOCAL_RANK instead. Accepted and ignored.
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                        help="config overrides as KEY VALUE pairs, e.g. SOLVER.MAX_ITER 1000")
    return parser


def _device_type(cfg) -> str:
    return "cuda" if str(cfg.MODEL.DEVICE).startswith("cuda") else "cpu"


def default_setup(config_file: Optional[str] = None, opts: Iterable = (), args: Optional[argparse.Namespace] = None,
                  save: bool = True, log_name: str = "log.txt"):
    """Load the config, join the torchrun process group, set up logging (rank 0 writes ``OUTPUT_DIR/<log_name>``),
    seed every RNG and apply the deterministic mode. Returns the frozen config. ``OUTPUT_DIR/config.yaml`` is not
    written here but by ``Trainer.train`` once the run has started (so a run refused or failing at start-up leaves
    the previous one); ``save`` is accepted for the tools that still pass it and changes nothing."""
    if args is not None:
        config_file, opts = args.config_file, args.opts
    cfg = load_config(config_file or None, list(opts))
    comm.init_distributed_from_env(_device_type(cfg))
    rank = comm.get_rank()
    if rank == 0:
        mkdir(cfg.OUTPUT_DIR)
    setup_logger("sgg", cfg.OUTPUT_DIR, rank, filename=log_name)
    logger.info("Command: %s", " ".join(sys.argv))
    logger.info("%d process(es); environment:\n%s", comm.get_world_size(), collect_env_info())
    if config_file:
        logger.info("Config file %s", config_file)
    seed = cfg.SEED
    if seed < 0:  # one drawn seed for every process, so the run can be repeated from the logged value
        seed = comm.broadcast_object(seed_everything(-1))
    seed_everything(seed, rank_offset=rank)
    set_deterministic(cfg.DETERMINISTIC)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return cfg


def load_trained_weights(cfg, model) -> str:
    """The test tools' rule (as SGB's): ``OUTPUT_DIR/last_checkpoint`` when it exists, else ``MODEL.WEIGHT``;
    the weights must fit the model exactly. Returns the file loaded."""
    checkpointer = Checkpointer(model, save_dir=cfg.OUTPUT_DIR, cfg=cfg)
    if checkpointer.has_checkpoint():
        path = checkpointer.get_checkpoint_file()
        checkpointer.load_weights(path, key=os.path.join(cfg.OUTPUT_DIR, LAST_CHECKPOINT), strict=True)
        return path
    if cfg.MODEL.WEIGHT:
        checkpointer.load_weights(cfg.MODEL.WEIGHT, key="MODEL.WEIGHT", strict=True)
        return cfg.MODEL.WEIGHT
    raise FileNotFoundError(f"nothing to test: {os.path.join(cfg.OUTPUT_DIR, LAST_CHECKPOINT)} does not exist and "
                            "MODEL.WEIGHT is empty; point OUTPUT_DIR at a training output or set MODEL.WEIGHT")
