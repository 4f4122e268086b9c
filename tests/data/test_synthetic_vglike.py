"""The VG-like image profile of the synthetic generator against VG150's statistics (issue 28 item 1), the annotation
statistics it is measured with, its catalog names and configs, and ``tools/dataset_info.py --compare-dict``.

VG150's long tail is read from the real dictionary file in ``../shared/data/vg150`` (beside the clone, in CI too);
its per-image numbers are the sizes of its h5 file (sgg.data.vg_statistics)."""
import importlib.util
import json
import os

import numpy as np
import pytest

from sgg.config import load_config
from sgg.config.paths_catalog import DatasetCatalog
from sgg.data.datasets import VGDataset
from sgg.data.synthetic import IMAGE_PROFILE, PREDICATES, VGLIKE_PROFILE, generate_synthetic_vg, sample_scenes
from sgg.data.vg_format import dataset_paths
from sgg.data.vg_statistics import predicate_tail, scene_statistics, vg150_reference
from sgg.utils.errors import DataError

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
# ../shared beside the clone (CI, /work/main); a worktree under /work/wt/ reads the same /work/shared
VG150_DICTS = [os.path.abspath(os.path.join(REPO, "..", "shared", "data", "vg150", "VG-SGG-dicts-with-attri.json")),
               "/work/shared/data/vg150/VG-SGG-dicts-with-attri.json"]
VG150_DICT = next((path for path in VG150_DICTS if os.path.isfile(path)), VG150_DICTS[0])
DATASET_INFO = os.path.join(REPO, "tools", "dataset_info.py")
MAKE_SYNTHETIC = os.path.abspath(os.path.join(REPO, "tools", "make_synthetic_vg.py"))


def vg150():
    assert os.path.isfile(VG150_DICT), f"VG150's dictionary file is missing: none of {VG150_DICTS} exists"
    return vg150_reference(VG150_DICT)


def statistics_of(ann):
    return scene_statistics(ann.box_counts, ann.rel_counts, ann.relations[:, :2], ann.relations[:, 2], ann.split,
                            len(PREDICATES))


def test_vg150_reference_numbers():
    ref = vg150()
    # 1,145,398 boxes and 622,705 relations in 108,073 images; 89,169 images with relations
    assert ref["boxes_per_image"] == pytest.approx(10.598, abs=1e-3)
    assert ref["relations_per_image"] == pytest.approx(5.762, abs=1e-3)
    assert ref["empty_image_share"] == pytest.approx(0.1749, abs=1e-3)
    # on 712,409 + has 277,936 + in 251,756 of 2,046,006 raw counts; 40 of the 50 predicates under 2 %
    assert ref["top3_share"] == pytest.approx(0.6071, abs=1e-3)
    assert ref["rare_predicate_share"] == pytest.approx(40 / 50)


@pytest.mark.parametrize("seed", [0, 1])
def test_vglike_profile_matches_vg150(seed):
    """Acceptance (issue 28): boxes and relations per image within 10 % of VG150's; top-3 predicate share within 5
    points and the share of predicates under 2 % within 10 points of VG150's; images without relations within 3
    points; at least 100 PredCls candidate pairs per test image."""
    ref = vg150()
    ours = statistics_of(sample_scenes(3000, 1000, seed=seed, profile=VGLIKE_PROFILE).annotations)
    assert abs(ours["boxes_per_image"] / ref["boxes_per_image"] - 1) <= 0.10
    assert abs(ours["relations_per_image"] / ref["relations_per_image"] - 1) <= 0.10
    assert abs(ours["top3_share"] - ref["top3_share"]) <= 0.05
    assert abs(ours["rare_predicate_share"] - ref["rare_predicate_share"]) <= 0.10
    assert abs(ours["empty_image_share"] - ref["empty_image_share"]) <= 0.03
    assert ours["test_candidate_pairs"] >= 100
    assert 0.03 <= ours["duplicate_pair_share"] <= 0.08  # DUPLICATE_RATE 6 % of the pairs get a second predicate


def test_small_profile_is_not_vg_like():
    """The quick-start profile stays small: the acceptance bounds above do separate the two profiles."""
    ref = vg150()
    small = statistics_of(sample_scenes(300, 100, seed=0, profile=IMAGE_PROFILE).annotations)
    assert small["test_candidate_pairs"] < 100 and small["boxes_per_image"] < 0.9 * ref["boxes_per_image"]
    assert small["rare_predicate_share"] < ref["rare_predicate_share"] - 0.10


def test_scene_statistics_by_hand():
    """Three images: 3 boxes / 2 relations (train), 4 boxes / 3 relations with one pair annotated twice (test),
    2 boxes / none (test). Statistics of the wrong split, duplicates counted across images or unordered pairs, or
    the empty test image among the evaluated ones would all change a number."""
    box_counts, rel_counts = np.array([3, 4, 2]), np.array([2, 3, 0])
    # (0, 1) in both images is two pairs; twice in image 1 is one pair with two predicates; (1, 0) is another pair
    pairs = np.array([[0, 1], [2, 0], [0, 1], [0, 1], [1, 0]])
    predicates = np.array([1, 1, 2, 3, 3])
    split = np.array([0, 2, 2])
    stats = scene_statistics(box_counts, rel_counts, pairs, predicates, split, num_predicates=4)
    assert stats["boxes_per_image"] == pytest.approx(3.0) and stats["relations_per_image"] == pytest.approx(5 / 3)
    assert stats["empty_image_share"] == pytest.approx(1 / 3)
    assert stats["duplicate_pair_share"] == pytest.approx(1 / 4)  # 4 distinct (image, sub, obj) pairs
    assert stats["test_candidate_pairs"] == pytest.approx(12.0)  # 4 x 3; the empty test image is not evaluated
    # train split: predicate 1 twice, 2-4 never: top-3 = 100 %, three of four predicates under 2 %
    assert stats["top3_share"] == pytest.approx(1.0) and stats["rare_predicate_share"] == pytest.approx(0.75)


def test_predicate_tail_counts_shares_not_ranks():
    tail = predicate_tail([5, 900, 40, 30, 25])  # shares .005 .9 .04 .03 .025 of 1000
    assert tail["top3_share"] == pytest.approx(0.97) and tail["rare_predicate_share"] == pytest.approx(0.2)


def test_vg150_reference_rejects_bad_files(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(DataError, match="nope.json"):
        vg150_reference(str(missing))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(DataError, match="broken.json: not valid JSON"):
        vg150_reference(str(broken))
    no_counts = tmp_path / "dicts.json"
    no_counts.write_text(json.dumps({"predicate_to_idx": {"on": 1}}))
    with pytest.raises(DataError, match="dicts.json: no 'predicate_count'"):
        vg150_reference(str(no_counts))


@pytest.fixture(scope="module")
def vglike_images(tmp_path_factory):
    """A small drawn VG-like dataset in the catalog's folder under a data root."""
    root = tmp_path_factory.mktemp("vglike_root")
    summary = generate_synthetic_vg(str(root / "synthetic_vglike"), num_train=20, num_test=8, seed=1,
                                    profile="vglike", workers=1)
    return str(root), summary


def test_drawn_vglike_images_have_the_profile_sizes(vglike_images):
    root, summary = vglike_images
    assert summary["profile"] == "vglike" and summary["images_written"] == 28
    paths = dataset_paths(os.path.join(root, "synthetic_vglike"))
    test = VGDataset("test", **paths, filter_empty_rels=False)
    sizes = [test.get_img_info(i) for i in range(len(test))]
    assert all(320 <= min(s["width"], s["height"]) and max(s["width"], s["height"]) <= 448 for s in sizes)
    img, target, _ = test[0]
    assert img.size == (sizes[0]["width"], sizes[0]["height"]) and len(target) >= 2


def test_catalog_names_and_configs_point_at_the_profile(vglike_images):
    root, _ = vglike_images
    files = DatasetCatalog.get("SyntheticVGLike_test", root)
    assert files["roidb_file"] == os.path.join(root, "synthetic_vglike", "VG-SGG-with-attri.h5")
    assert files["collection"] == "SyntheticVGLike" and os.path.isfile(files["roidb_file"])
    for name in ("detector_tiny_fpn", "relation_predcls", "relation_sgcls", "relation_sgdet"):
        cfg = load_config(os.path.join(REPO, "configs", "synthetic_vglike", f"{name}.yaml"))
        assert cfg.DATASETS.TRAIN == ("SyntheticVGLike_train",) and cfg.DATASETS.TEST == ("SyntheticVGLike_test",)
        assert cfg.INPUT.MAX_SIZE_TEST == max(VGLIKE_PROFILE.side_range)  # images are used at their drawn size
        assert cfg.OUTPUT_DIR.startswith("output/synthetic_vglike/")
        # the detector architecture of the small profile, so the relation yamls load its checkpoint
        small = load_config(os.path.join(REPO, "configs", "synthetic", "detector_tiny_fpn.yaml"))
        assert cfg.MODEL.BACKBONE.CONV_BODY == small.MODEL.BACKBONE.CONV_BODY
        assert cfg.MODEL.RPN.ANCHOR_SIZES == small.MODEL.RPN.ANCHOR_SIZES
    sgdet = load_config(os.path.join(REPO, "configs", "synthetic_vglike", "relation_sgdet.yaml"))
    assert not sgdet.MODEL.ROI_RELATION_HEAD.USE_GT_BOX and sgdet.MODEL.ROI_HEADS.DETECTIONS_PER_IMG == 80


def test_dataset_info_prints_the_profile_next_to_vg150(vglike_images, tmp_path, capsys):
    root, _ = vglike_images
    spec = importlib.util.spec_from_file_location("dataset_info", DATASET_INFO)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    config = os.path.join(REPO, "configs", "synthetic_vglike", "relation_predcls.yaml")
    args = ["--config-file", config, "--compare-dict", VG150_DICT, "DATASETS.DATA_DIR", root,
            "DATASETS.VAL_SIZE", "4", "OUTPUT_DIR", str(tmp_path)]
    assert tool.main(args) == 0
    out = capsys.readouterr().out
    rows = {line[:30].strip(): line[30:].split() for line in out.splitlines() if line.startswith("  ")}
    ann = sample_scenes(20, 8, seed=1, profile=VGLIKE_PROFILE).annotations
    assert rows["boxes per image"] == [f"{ann.box_counts.mean():.2f}", "10.60"]
    assert rows["relations per image"] == [f"{ann.rel_counts.mean():.2f}", "5.76"]
    assert rows["top-3 predicate share"][1] == "60.7%" and rows["predicates under 2 %"][1] == "80.0%"
    assert rows["PredCls pairs / test image"][1] == "n/a"
    assert "SyntheticVGLike_train" in out and "predicate_distribution.png" in out
    with pytest.raises(DataError, match="missing.json"):
        tool.main(["--config-file", config, "--compare-dict", str(tmp_path / "missing.json"),
                   "DATASETS.DATA_DIR", root, "OUTPUT_DIR", str(tmp_path)])


def test_cli_profile_vglike_writes_into_the_catalog_folder(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("make_synthetic_vg", MAKE_SYNTHETIC)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.chdir(tmp_path)
    assert tool.main(["--profile", "vglike", "--annotations-only", "--num-images", "50"]) == 0
    assert "(vglike profile): 35 train + 15 test images" in capsys.readouterr().out
    files = DatasetCatalog.get("SyntheticVGLike_train", "datasets")
    assert os.path.isfile(files["roidb_file"]) and os.path.isfile(files["dict_file"])
