"""The zero-shot triplets file is read safely (tensors only, as SGB's zeroshot_triplet.pytorch holds)."""
import numpy as np
import pytest
import torch

from sgg.engine.relation_eval import load_zeroshot_triplets
from sgg.utils.errors import DataError


class Triplets(list):
    pass


def test_a_saved_tensor_is_read_as_triplets(tmp_path):
    path = tmp_path / "zeroshot_triplet.pytorch"
    torch.save(torch.tensor([[1, 2, 3], [4, 5, 6]]), path)
    assert load_zeroshot_triplets(str(path)).tolist() == [[1, 2, 3], [4, 5, 6]]


def test_a_pickled_object_is_refused_with_the_file_name(tmp_path):
    path = tmp_path / "zeroshot_triplet.pytorch"
    torch.save(Triplets([[1, 2, 3]]), path)  # unpickling it would run this module's code: refused
    with pytest.raises(DataError, match="zeroshot_triplet.pytorch cannot be read as an \\(M, 3\\) tensor"):
        load_zeroshot_triplets(str(path))


def test_a_wrong_shape_is_refused(tmp_path):
    path = tmp_path / "zeroshot_triplet.pytorch"
    torch.save(torch.from_numpy(np.zeros((4, 2), dtype=np.int64)), path)
    with pytest.raises(ValueError, match="must have shape \\(M, 3\\)"):
        load_zeroshot_triplets(str(path))
