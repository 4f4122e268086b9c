"""Golden fixtures (tests/modeling/golden/): numbers computed once by a head's reference implementation on the
weights and inputs stored beside them. Each test's docstring names the repository, commit, function and the weight
mapping. A missing fixture fails the test with its file name; it never skips."""
from pathlib import Path

import numpy as np
import pytest
import torch

GOLDEN_DIR = Path(__file__).parent / "golden"


def load_golden(name: str, directory: Path = GOLDEN_DIR):
    """``name`` in ``directory``: a dict of arrays for ``.npz``, the saved object for ``.pt``."""
    path = Path(directory) / name
    if not path.is_file():
        pytest.fail(f"golden fixture {path} is missing: it holds the reference implementation's numbers and cannot "
                    f"be recomputed here (restore it from git)")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    return torch.load(path, map_location="cpu", weights_only=False)  # our own committed numbers
