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

from sgg.predict import SceneGraphPredictor, load_predictor, placeholder_statistics  # noqa: E402
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
def sgcls_checkpoint(checkpoints, tmp_path_factory):
    """An SGCls model: the PredCls run's config with predicted object labels, its weights where they fit, saved with
    the Checkpointer as the trainer does (config text and label names inside)."""
    import yaml

    from sgg.config import get_cfg
    from sgg.engine.relation import build_scene_graph_model
    from sgg.utils.checkpoint import Checkpointer

    saved = torch.load(checkpoints["predcls"], weights_only=False)
    cfg = get_cfg()
    cfg.merge_from_dict(yaml.safe_load(saved["config"]), source="the PredCls checkpoint")
    cfg.merge_from_list(["MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", "False", "MODEL.PRETRAINED_DETECTOR_CKPT", ""])
    names = saved["label_names"]
    model = build_scene_graph_model(cfg, placeholder_statistics(names["ind_to_classes"], names["ind_to_predicates"]))
    model.load_state_dict(saved["model"], strict=False)
    folder = tmp_path_factory.mktemp("sgcls")
    return Checkpointer(model, save_dir=str(folder), save_to_disk=True, cfg=cfg, label_names=names).save("model", 0)


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
    assert demo.main(["--checkpoint", str(checkpoints["sgdet"]), "--input", str(images), "--output", out,
                      "--top-k", "0"]) == 2
    assert "--top-k must be at least 1, got 0" in caplog.text
    predictor = SceneGraphPredictor(str(checkpoints["predcls"]))
    image = np.zeros((40, 50, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="predcls model: give the object boxes"):
        predictor(image)
    with pytest.raises(ValueError, match="unknown object label 'unicorn'"):
        predictor(image, boxes=[[1, 1, 20, 20]], labels=["unicorn"])
    with pytest.raises(ValueError, match="needs one label per box: 1 boxes, 0 labels"):
        predictor(image, boxes=[[1, 1, 20, 20]], labels=[])


def test_sgcls_classifies_the_given_boxes(sgcls_checkpoint, images):
    predictor = load_predictor(sgcls_checkpoint)
    assert predictor.protocol == "sgcls"
    path = str(images / sorted(os.listdir(images))[0])
    boxes = [[5, 5, 60, 50], [40, 30, 100, 90], [10, 60, 50, 100], [0, 0, 30, 30]]
    graph = predictor.predict(path, boxes=boxes, top_k=5)  # no labels: the model predicts them
    assert graph["protocol"] == "sgcls" and graph["image"] == path
    assert [o["box"] for o in graph["objects"]] == boxes
    assert all(o["label"] in predictor.obj_classes[1:] and 0 < o["score"] <= 1 for o in graph["objects"])
    assert len(graph["relations"]) == 5  # 4 x 3 = 12 ordered pairs, the top 5 kept
    assert all(r["subject"] != r["object"] for r in graph["relations"])


def test_label_names_missing_or_not_fitting(checkpoints, images, tmp_path):
    saved = torch.load(checkpoints["sgdet"], weights_only=False)
    # no label names: recovered from the config's dataset dictionary, when that is here
    unnamed = tmp_path / "unnamed.pth"
    torch.save({**saved, "label_names": None}, unnamed)
    recovered = SceneGraphPredictor(str(unnamed))
    assert recovered.obj_classes == list(saved["label_names"]["ind_to_classes"])
    with pytest.raises(ValueError, match=r"unnamed.pth has no 'label_names' .* not under DATASETS.DATA_DIR"):
        SceneGraphPredictor(str(unnamed), opts=["DATASETS.DATA_DIR", str(tmp_path / "elsewhere")])
    short = tmp_path / "short.pth"
    names = saved["label_names"]
    torch.save({**saved, "label_names": {**names, "ind_to_predicates": names["ind_to_predicates"][:-1]}}, short)
    count = len(names["ind_to_predicates"])
    with pytest.raises(ValueError, match=f"MODEL.ROI_RELATION_HEAD.NUM_CLASSES is {count} but its label names list "
                                         f"{count - 1}"):
        SceneGraphPredictor(str(short))
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="damaged.pth could not be read as a torch checkpoint"):
        SceneGraphPredictor(str(damaged))


def test_picture_sizes_by_hand_and_a_deterministic_drawing(tmp_path):
    from sgg.utils.visualize import draw_scene_graph, save_picture

    # H' = min(max(H, 480), 800); the image is scaled to H' high, the graph panel is H' x H'
    assert picture_size(156, 143) == (524 + 480, 480)     # 156 * 480 / 143 = 523.6 -> 524
    assert picture_size(1000, 2000) == (400 + 800, 800)   # 1000 * 800 / 2000 = 400
    assert picture_size(640, 600) == (640 + 600, 600)     # 480 <= 600 <= 800: no scaling
    graph = {"objects": [{"id": 0, "box": [10, 10, 60, 50], "label": "cat", "score": 0.9},
                         {"id": 1, "box": [70, 20, 140, 130], "label": "mat", "score": 0.8},
                         {"id": 2, "box": [0, 0, 5, 5], "label": "dot", "score": 0.1}],
             "relations": [{"subject": 0, "object": 1, "predicate": "on", "predicate_score": 0.5, "score": 0.36}]}
    image = np.full((143, 156, 3), 128, dtype=np.uint8)
    picture = draw_scene_graph(image, graph)
    assert picture.shape == (480, 1004, 3) and np.array_equal(picture, draw_scene_graph(image, graph))
    assert not np.all(picture[:, 524:] == 255)  # the graph panel has nodes and an arrow
    empty = draw_scene_graph(image, {"objects": [], "relations": []})
    assert empty.shape == (480, 1004, 3)
    path = save_picture(str(tmp_path / "g.png"), picture)
    assert cv2.imread(path).shape == (480, 1004, 3)
    with pytest.raises(OSError, match="could not write the picture"):
        save_picture(str(tmp_path / "missing_folder" / "g.png"), picture)
