"""Fixtures of the data tests: hand-built VG-format datasets and small synthetic ones (built once per session)."""
import pytest
from vg_cases import FILTER_CASE, write_case

from sgg.data.synthetic import generate_synthetic_vg


@pytest.fixture
def filter_case(tmp_path):
    return write_case(tmp_path / "filters", FILTER_CASE)


@pytest.fixture(scope="session")
def synthetic_images(tmp_path_factory):
    """A small drawn synthetic dataset (48 train + 16 test images)."""
    root = tmp_path_factory.mktemp("synthetic_images")
    summary = generate_synthetic_vg(str(root), num_train=48, num_test=16, seed=3, workers=1)
    return str(root), summary


@pytest.fixture(scope="session")
def synthetic_annotations(tmp_path_factory):
    """A VG-profile annotation-only synthetic dataset of 300 images."""
    root = tmp_path_factory.mktemp("synthetic_annotations")
    summary = generate_synthetic_vg(str(root), num_train=210, num_test=90, seed=0, annotations_only=True)
    return str(root), summary
