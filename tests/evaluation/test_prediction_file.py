"""Compact prediction files: re-evaluating a file gives exactly the in-memory metrics."""
import os

import numpy as np
import pytest

from sgg.evaluation import (PredictionFileWriter, SceneGraphEvaluator, evaluate_prediction_file,
                            read_prediction_file)
from sgg.utils.errors import EvaluationError

C = 11
KS = (3, 10, 25)


def round_trip(tmp_path, images, mode, **kwargs):
    names = ["__background__"] + [f"p{i}" for i in range(1, C)]
    ev = SceneGraphEvaluator(mode=mode, num_predicates=C, ks=KS, predicate_names=names, **kwargs)
    path = str(tmp_path / f"{mode}.sggpred")
    meta = {"mode": mode, "num_predicates": C, "ks": list(KS), "predicate_names": names, "dataset": "unit",
            "relation_nms": kwargs.get("relation_nms", False)}
    with PredictionFileWriter(path, meta) as writer:
        for i, (gt, pred) in enumerate(images):
            ev.update(gt, pred, image_id=f"img{i}")
            writer.add(f"img{i}", pred, groundtruth=gt)
    lookup = {f"img{i}": gt for i, (gt, _) in enumerate(images)}
    again = evaluate_prediction_file(path, lookup.__getitem__, **kwargs)
    return ev.compute(), again.compute(), path


@pytest.mark.parametrize("mode", ["predcls", "sgcls", "sgdet", "phrdet"])
def test_file_reproduces_in_memory_metrics(tmp_path, make_image, rng, mode):
    images = [make_image(rng, num_pred=12, num_predicates=C) for _ in range(15)]
    if mode in ("predcls", "sgcls"):
        images = [make_image(rng, num_gt=8, num_pred=8, num_predicates=C) for _ in range(15)]
        for gt, pred in images:
            pred["boxes"] = gt["boxes"].copy()
    direct, from_file, path = round_trip(tmp_path, images, mode, zeroshot_triplets=np.array([[1, 2, 3]]))
    np.testing.assert_equal(from_file, direct)
    assert direct["R@25"] > 0
    reader = read_prediction_file(path)
    assert reader.meta["dataset"] == "unit" and reader.meta["top_k"] == 25
    records = list(reader)
    assert [r.image_id for r in records] == [f"img{i}" for i in range(15)]
    for record, (_, pred) in zip(records, images):
        kept = len(record.prediction["rel_pair_idxs"])
        assert kept < len(pred["rel_pair_idxs"])  # only what a metric at K=25 can use
        assert record.prediction["rel_scores"].shape == (kept, C)
        assert record.ranked.graph.shape == (25, 3) and record.ranked.no_graph.shape == (25, 3)
        if mode != "predcls":
            np.testing.assert_array_equal(record.prediction["boxes"], pred["boxes"].astype(np.float32))


def test_exact_ranking_survives_fp16_ties(tmp_path):
    # 0.50002 and 0.50001 are both 0.5 in fp16; in fp32 the correct pair (listed second) is ahead
    gt = {"boxes": np.array([[0, 0, 9, 9], [20, 20, 29, 29]]), "labels": np.array([1, 2]),
          "relations": np.array([[0, 1, 1]])}
    pred = {"boxes": gt["boxes"], "labels": gt["labels"], "scores": np.ones(2),
            "rel_pair_idxs": np.array([[1, 0], [0, 1]]),
            "rel_scores": np.array([[0, 0.50001, 0], [0, 0.50002, 0]], dtype=np.float32)}
    assert np.float16(0.50001) == np.float16(0.50002)
    ev = SceneGraphEvaluator(mode="sgdet", num_predicates=3, ks=(1,))
    ev.update(gt, pred, image_id=0)
    path = str(tmp_path / "ties.sggpred")
    with PredictionFileWriter(path, {"mode": "sgdet", "num_predicates": 3, "ks": [1]}) as writer:
        writer.add(0, pred)
    again = evaluate_prediction_file(path, lambda i: gt, ks=(1,))
    assert ev.compute()["R@1"] == 1.0 and again.compute()["R@1"] == 1.0


def test_file_with_relation_nms(tmp_path, make_image, rng):
    images = [make_image(rng, num_pred=8, num_predicates=C) for _ in range(8)]
    direct, from_file, _ = round_trip(tmp_path, images, "sgdet", relation_nms=True)
    np.testing.assert_equal(from_file, direct)


def test_settings_that_need_another_ranking_are_refused(tmp_path, make_image, rng):
    images = [make_image(rng, num_predicates=C) for _ in range(2)]
    _, _, path = round_trip(tmp_path, images, "sgdet")
    lookup = {f"img{i}": gt for i, (gt, _) in enumerate(images)}.__getitem__
    with pytest.raises(ValueError, match="mode"):
        evaluate_prediction_file(path, lookup, mode="sgcls")
    with pytest.raises(ValueError, match="ks"):
        evaluate_prediction_file(path, lookup, ks=(50,))
    with pytest.raises(ValueError, match="relation_nms"):
        evaluate_prediction_file(path, lookup, relation_nms=True)
    # a smaller K and another IoU threshold only need what is stored
    assert evaluate_prediction_file(path, lookup, ks=(5,), iou_threshold=0.3).compute()["num_images"] == 2


def test_truncated_or_foreign_files_are_reported(tmp_path, make_image, rng):
    gt, pred = make_image(rng, num_predicates=C)
    path = str(tmp_path / "p.sggpred")
    with PredictionFileWriter(path, {"mode": "sgdet", "num_predicates": C}) as writer:
        writer.add(0, pred)
    data = open(path, "rb").read()
    cut = str(tmp_path / "cut.sggpred")
    with open(cut, "wb") as f:
        f.write(data[:-40])
    with pytest.raises(ValueError, match="truncated"):
        list(read_prediction_file(cut))
    other = str(tmp_path / "other.bin")
    with open(other, "wb") as f:
        f.write(b"PK\x03\x04 not ours")
    with pytest.raises(ValueError, match="not a scene graph prediction file"):
        read_prediction_file(other)


def test_writer_streams_and_checks_its_input(tmp_path, make_image, rng):
    path = str(tmp_path / "s.sggpred")
    with pytest.raises(ValueError, match="meta needs 'num_predicates'"):
        PredictionFileWriter(path, {"mode": "sgdet"})
    writer = PredictionFileWriter(path, {"mode": "sgcls", "num_predicates": C})
    gt, pred = make_image(rng, num_predicates=C)
    with pytest.raises(ValueError, match="image 3: groundtruth: missing"):
        writer.add(3, pred)
    sizes = []
    for i in range(3):
        writer.add(i, pred, groundtruth=gt)
        writer._file.flush()
        sizes.append(os.path.getsize(path))
    writer.close()
    assert sizes[0] < sizes[1] < sizes[2]  # written image by image, not held until close
    assert len(list(read_prediction_file(path))) == 3


FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def fixture_path(name):
    path = os.path.join(FIXTURES, name)
    assert os.path.isfile(path), f"missing test fixture {path}"
    return path


def test_version_1_files_are_still_read():
    # predictions_v1.sgg was written by the format-1 writer (commit 8aeef7b) from the images stored in
    # predictions_v1_inputs.npz (tests/evaluation/conftest.random_image, seed 25, 9 predicted boxes, 11 predicates)
    path = fixture_path("predictions_v1.sgg")
    stored = np.load(fixture_path("predictions_v1_inputs.npz"))
    gts, preds = {}, {}
    for i in range(4):
        gts[i] = {k: stored[f"{i}_gt_{k}"] for k in ("boxes", "labels", "relations")}
        preds[i] = {k: stored[f"{i}_pred_{k}"] for k in ("boxes", "labels", "scores", "rel_pair_idxs", "rel_scores")}
    direct = SceneGraphEvaluator(mode="sgdet", num_predicates=C, ks=(3, 10, 25))
    for i in range(4):
        direct.update(gts[i], preds[i], image_id=i)
    reader = read_prediction_file(path)
    assert reader.version == 1 and reader.meta["format_version"] == 1
    from_file = evaluate_prediction_file(path, gts.__getitem__).compute()
    np.testing.assert_equal(from_file, direct.compute())
    assert from_file["R@25"] > 0


def _flip(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


def test_every_single_bit_flip_is_detected_with_the_file_name(tmp_path, make_image, rng):
    images = [make_image(rng, num_pred=7, num_predicates=C) for _ in range(4)]
    counts = np.array([0, 90, 70, 50, 40, 30, 20, 10, 5, 3, 1])  # head/body/tail stored in the file too
    path = str(tmp_path / "ok.sgg")
    with PredictionFileWriter(path, {"mode": "sgdet", "num_predicates": C, "ks": [5, 12],
                                     "predicate_counts": counts, "iou_threshold": 0.5}) as writer:
        for i, (gt, pred) in enumerate(images):
            writer.add(i, pred)
    assert read_prediction_file(path).version == 2
    lookup = {i: gt for i, (gt, _) in enumerate(images)}.__getitem__
    expected = evaluate_prediction_file(path, lookup).compute()
    assert expected["R@12"] > 0 and "tail_mR@12" in expected
    data = open(path, "rb").read()
    # every bit of the magic and the metadata block's length and CRC, then 500 bits spread over the whole file
    bits = list(range(16 * 8)) + sorted(np.random.default_rng(0).choice(len(data) * 8, 500, replace=False).tolist())
    bad = str(tmp_path / "flipped.sgg")
    detected = 0
    for bit in bits:
        with open(bad, "wb") as f:
            f.write(_flip(data, bit))
        try:
            results = evaluate_prediction_file(bad, lookup).compute()
        except EvaluationError as err:
            assert bad in str(err), f"bit {bit}: {err}"
            detected += 1
        else:
            np.testing.assert_equal(results, expected, err_msg=f"bit {bit} changed the numbers silently")
    assert detected == len(bits)  # CRC-32 detects every single-bit error, and magic / lengths are checked


def test_damage_in_a_version_1_file_never_escapes_as_a_raw_error(tmp_path):
    # format 1 has no checksums, so a flip may change numbers unseen; but whatever fails must name the file
    data = open(fixture_path("predictions_v1.sgg"), "rb").read()
    stored = np.load(fixture_path("predictions_v1_inputs.npz"))
    gts = {i: {k: stored[f"{i}_gt_{k}"] for k in ("boxes", "labels", "relations")} for i in range(4)}
    bad = str(tmp_path / "flipped_v1.sgg")
    failures = 0
    for bit in np.random.default_rng(1).choice(len(data) * 8, 300, replace=False).tolist():
        with open(bad, "wb") as f:
            f.write(_flip(data, bit))
        try:
            evaluate_prediction_file(bad, gts.__getitem__).compute()
        except EvaluationError as err:
            assert bad in str(err), f"bit {bit}: {err}"
            failures += 1
    assert failures > 30  # headers and lengths are damaged often enough to exercise the error paths
