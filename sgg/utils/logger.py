"""Logging setup: the main process logs to the console and ``OUTPUT_DIR/log.txt``; other processes only warn."""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional

_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


def setup_logger(name: str = "sgg", save_dir: Optional[str] = None, distributed_rank: int = 0,
                 filename: str = "log.txt", level: int = logging.INFO) -> logging.Logger:
    """Configure the ``name`` logger once per process (calling again replaces the handlers it added before).

    Rank 0 writes INFO and above to stdout and, when ``save_dir`` is given, appends to ``save_dir/filename``. Other
    ranks print WARNING and above tagged with their rank, so that a failure on any process is still seen.
    """
    logger = logging.getLogger(name)
    for handler in [h for h in logger.handlers if getattr(h, "_sgg_handler", False)]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    console = logging.StreamHandler(stream=sys.stdout)
    if distributed_rank == 0:
        console.setLevel(level)
        console.setFormatter(logging.Formatter(_FORMAT, datefmt="%m/%d %H:%M:%S"))
    else:
        console.setLevel(logging.WARNING)
        console.setFormatter(logging.Formatter(f"[rank {distributed_rank}] " + _FORMAT, datefmt="%m/%d %H:%M:%S"))
    console._sgg_handler = True
    logger.addHandler(console)

    if save_dir and distributed_rank == 0:
        os.makedirs(save_dir, exist_ok=True)
        file_handler = logging.FileHandler(os.path.join(save_dir, filename), mode="a")
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        file_handler._sgg_handler = True
        logger.addHandler(file_handler)
    return logger
