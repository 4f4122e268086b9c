"""tools/demo.py and sgg.predict on checkpoints trained for a few iterations on a tiny synthetic VG."""
import json
import os
import sys

import cv2
import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_relation_tools import CONFIGS, _opts, _run, data_root, detector_ckpt  # noqa: E402,F401  (fixtures)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import demo  # noqa: E402

from sgg.predict import SceneGraphPredictor  # noqa: E402
from sgg.utils.visualize import picture_size  # noqa: E402


def _train(data_root, detector_ckpt, out, protocol):  # noqa: F811
    _run(["tools/relation_train_net.py", "--config-file", os.path.join(CONFIGS, f"relation_{protocol}.yaml"),
          "--skip-test", *_opts(data_root, out, 1, "MODEL.ROI_RELATION_HEAD.PREDICTOR", "MotifPredictor",
                                "MODEL.PRETRAINED_DETECTOR_CKPT", str(detector_ckpt))])
    return out / "model_final.pth"


@pytest.fixture(scope="module")
def checkpoints(data_root, detector_ckpt, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("demo_models")
    return {p: _train(data_root, detector_ckpt, root / p, p) for p in ("sgdet", "predcls")}


@pytest.fixture(scope="module")
def images(data_root, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("photos")
    source = data_root / "synthetic_vg" / "VG_100K"
    for name in sorted(os.listdir(source))[:2]:
        image = cv2.imread(str(source / name))
        cv2.imwrite(str(folder / (os.path.splitext(name)[0] + ".png")), image)  # another format than the dataset's
    return folder


def test_sgdet_json_schema_and_picture_size(checkpoints, images, tmp_path):
    out = tmp_path / "out"
    assert demo.main(["--checkpoint", str(checkpoints["sgdet"]), "--input", str(images), "--output", str(out),
                      "--top-k", "5"]) == 0
    for name in sorted(os.listdir(images)):
        stem = os.path.splitext(name)[0]
        graph = json.loads((out / f"{stem}.json").read_text())
        assert set(graph) == {"image", "width", "height", "protocol", "objects", "relations"}
        assert graph["protocol"] == "sgdet" and graph["image"].endswith(name)
        height, width = cv2.imread(str(images / name)).shape[:2]
        assert (graph["width"], graph["height"]) == (width, height)
        assert graph["objects"] and len(graph["relations"]) <= 5
        for i, obj in enumerate(graph["objects"]):
            assert set(obj) == {"id", "box", "label", "score"} and obj["id"] == i
            x1, y1, x2, y2 = obj["box"]
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height and 0 <= obj["score"] <= 1
        scores = [r["score"] for r in graph["relations"]]
        assert scores == sorted(scores, reverse=True)
        for r in graph["relations"]:
            assert set(r) == {"subject", "object", "predicate", "predicate_score", "score"}
            assert r["subject"] != r["object"] and 0 <= r["object"] < len(graph["objects"])
            assert r["predicate"] != "__background__"
            subject, obj = graph["objects"][r["subject"]], graph["objects"][r["object"]]
            assert r["score"] == pytest.approx(r["predicate_score"] * subject["score"] * obj["score"], abs=2e-4)
        picture = cv2.imread(str(out / f"{stem}.png"))
        assert (picture.shape[1], picture.shape[0]) == picture_size(width, height)


def test_predcls_takes_the_given_boxes_and_labels(checkpoints, images, tmp_path):
    name = sorted(os.listdir(images))[0]
    given = {name: {"boxes": [[5, 5, 60, 50], [40, 30, 100, 90], [10, 60, 50, 100]],
                    "labels": ["blue circle", "red star", "blue diamond"]}}
    (tmp_path / "boxes.json").write_text(json.dumps(given))
    out = tmp_path / "out"
    assert demo.main(["--checkpoint", str(checkpoints["predcls"]), "--input", str(images / name), "--output",
                      str(out), "--boxes", str(tmp_path / "boxes.json"), "--no-picture"]) == 0
    graph = json.loads((out / (os.path.splitext(name)[0] + ".json")).read_text())
    assert [o["box"] for o in graph["objects"]] == given[name]["boxes"]
    assert [o["label"] for o in graph["objects"]] == given[name]["labels"]
    assert all(o["score"] == 1.0 for o in graph["objects"])
    assert len(graph["relations"]) == 6  # every ordered pair of 3 boxes (top-k 10)
    assert not (out / (os.path.splitext(name)[0] + ".png")).exists()


def test_bad_images_are_reported_and_the_rest_is_done(checkpoints, images, tmp_path, caplog):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not an image")
    first = sorted(os.listdir(images))[0]
    (folder / first).write_bytes((images / first).read_bytes())
    out = tmp_path / "out"
    assert demo.main(["--checkpoint", str(checkpoints["sgdet"]), "--input", str(folder), "--output", str(out)]) == 1
    assert "broken.jpg could not be read" in caplog.text
    assert (out / (os.path.splitext(first)[0] + ".json")).exists() and not (out / "broken.json").exists()


def test_bad_checkpoints_and_inputs_are_explained(checkpoints, images, tmp_path, caplog):
    out = str(tmp_path / "out")
    assert demo.main(["--checkpoint", str(tmp_path / "none.pth"), "--input", str(images), "--output", out]) == 2
    assert "none.pth does not exist" in caplog.text
    bare = tmp_path / "bare.pth"
    torch.save({"model": torch.load(checkpoints["sgdet"], weights_only=False)["model"]}, bare)
    assert demo.main(["--checkpoint", str(bare), "--input", str(images), "--output", out]) == 2
    assert "has no 'config'" in caplog.text
    assert demo.main(["--checkpoint", str(checkpoints["sgdet"]), "--input", str(tmp_path / "nope"), "--output",
                      out]) == 2
    assert "--input: " in caplog.text and "nope does not exist" in caplog.text
    predictor = SceneGraphPredictor(str(checkpoints["predcls"]))
    image = np.zeros((40, 50, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="predcls model: give the object boxes"):
        predictor(image)
    with pytest.raises(ValueError, match="unknown object label 'unicorn'"):
        predictor(image, boxes=[[1, 1, 20, 20]], labels=["unicorn"])
    with pytest.raises(ValueError, match="needs one label per box: 1 boxes, 0 labels"):
        predictor(image, boxes=[[1, 1, 20, 20]], labels=[])
