"""tools/compare_sgb_detector.py: SGB's test resize, the exact-row matching it reports, and its input errors. The
side-by-side run itself needs SGB and two X-101 passes per image (minutes); its result is recorded in
docs/detector.md and BENCHMARKS.md."""
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import compare_sgb_detector as tool  # noqa: E402


@pytest.mark.parametrize("size, expected", [
    ((720, 477), (905, 600)),    # shorter side to 600: 720 * 600 / 477 = 905.7 -> 905
    ((400, 477), (600, 715)),    # portrait: 477 * 600 / 400 = 715.5 -> 715
    ((2000, 500), (1000, 250)),  # 600 would make the long side 2400 > 1000: shorter side round(1000 / 4) = 250
])
def test_sgb_test_size(size, expected):
    assert tool.sgb_test_size(*size) == expected


def test_load_image_is_bgr255_minus_sgb_mean(tmp_path):
    from PIL import Image

    path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (200, 10, 0)).save(path)
    image = tool.load_image(str(path))
    assert image.shape == (3, 600, 800)
    assert image[:, 0, 0].tolist() == pytest.approx([0 - 102.9801, 10 - 115.9465, 200 - 122.7717], abs=1e-4)


def test_count_found_needs_every_value_equal():
    ours = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    theirs = torch.tensor([[4.0, 5.0, 6.0], [1.0, 2.0, 3.5], [1.0, 2.0, 3.0]])
    assert tool.count_found(ours, theirs) == 2
    assert tool.count_found(ours[:0], theirs) == 0


def test_ours_without_the_sgb_step_names_the_missing_file(tmp_path, capsys):
    assert tool.main(["ours", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "sgb_seeded.pth does not exist" in err and "run the sgb step first" in err
