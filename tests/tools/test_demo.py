"""tools/demo.py and sgg.predict on checkpoints trained for a few iterations on a tiny synthetic VG."""
import json
import os
import re
import sys

import cv2
import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_relation_tools import CONFIGS, _opts, data_root, detector_ckpt  # noqa: E402,F401  (fixtures)
from tool_process import run_tool  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import demo  # noqa: E402

from sgg.predict import (SceneGraphPredictor, is_detector_checkpoint, load_predictor,  # noqa: E402
                         placeholder_statistics, read_image)
from sgg.utils.errors import CheckpointError, DataError  # noqa: E402
from sgg.utils.visualize import picture_size  # noqa: E402


def _train(data_root, detector_ckpt, out, protocol):  # noqa: F811
    run_tool(["tools/relation_train_net.py", "--config-file", os.path.join(CONFIGS, f"relation_{protocol}.yaml"),
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
        graph = json.loads((out / f"{name}.json").read_text())
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
        picture = cv2.imread(str(out / f"{name}.png"))
        assert (picture.shape[1], picture.shape[0]) == picture_size(width, height)


def test_predcls_takes_the_given_boxes_and_labels(checkpoints, images, tmp_path):
    name = sorted(os.listdir(images))[0]
    given = {name: {"boxes": [[5, 5, 60, 50], [40, 30, 100, 90], [10, 60, 50, 100]],
                    "labels": ["blue circle", "red star", "blue diamond"]}}
    (tmp_path / "boxes.json").write_text(json.dumps(given))
    out = tmp_path / "out"
    assert demo.main(["--checkpoint", str(checkpoints["predcls"]), "--input", str(images / name), "--output",
                      str(out), "--boxes", str(tmp_path / "boxes.json"), "--no-picture"]) == 0
    graph = json.loads((out / f"{name}.json").read_text())
    assert [o["box"] for o in graph["objects"]] == given[name]["boxes"]
    assert [o["label"] for o in graph["objects"]] == given[name]["labels"]
    assert all(o["score"] == 1.0 for o in graph["objects"])
    assert len(graph["relations"]) == 6  # every ordered pair of 3 boxes (top-k 10)
    assert os.listdir(out) == [f"{name}.json"]  # --no-picture


def test_bad_images_are_reported_and_the_rest_is_done(checkpoints, images, tmp_path, caplog):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not an image")
    first = sorted(os.listdir(images))[0]
    (folder / first).write_bytes((images / first).read_bytes())
    ok, jpeg = cv2.imencode(".jpg", cv2.imread(str(images / first)))
    (folder / "truncated.jpg").write_bytes(jpeg.tobytes()[:len(jpeg) // 2])
    out = tmp_path / "out"
    assert demo.main(["--checkpoint", str(checkpoints["sgdet"]), "--input", str(folder), "--output", str(out)]) == 1
    assert "broken.jpg could not be read" in caplog.text
    assert f"image {folder / 'truncated.jpg'} is a damaged or truncated JPEG" in caplog.text
    assert sorted(os.listdir(out)) == [f"{first}.json", f"{first}.png"]  # nothing for broken.jpg


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
    with pytest.raises(ValueError, match="cannot read checkpoint file .*damaged.pth"):
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


def test_inputs_sharing_a_stem_keep_both_results(checkpoints, images, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    first = sorted(os.listdir(images))[0]
    picture = cv2.imread(str(images / first))
    cv2.imwrite(str(folder / "a.png"), picture)
    cv2.imwrite(str(folder / "a.jpg"), picture[:, ::-1])  # another image under the same stem
    out = tmp_path / "out"
    assert demo.main(["--checkpoint", str(checkpoints["sgdet"]), "--input", str(folder), "--output", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["a.jpg.json", "a.jpg.png", "a.png.json", "a.png.png"]
    for name in ("a.jpg", "a.png"):
        assert json.loads((out / f"{name}.json").read_text())["image"] == str(folder / name)
    assert sorted(os.listdir(folder)) == ["a.jpg", "a.png"]  # the inputs are untouched


def test_output_folder_holding_inputs_or_two_inputs_with_one_name_are_refused(checkpoints, images, tmp_path, caplog):
    folder = tmp_path / "photos"
    folder.mkdir()
    first = sorted(os.listdir(images))[0]
    original = (images / first).read_bytes()
    (folder / first).write_bytes(original)
    (folder / "notes.txt").write_text("not an image")
    for output in (str(folder), str(folder) + os.sep + "."):
        caplog.clear()
        assert demo.main(["--checkpoint", str(checkpoints["sgdet"]), "--input", str(folder), "--output",
                          str(output)]) == 2
        assert f"--output {output} holds 1 of the input images ({folder / first}): results would overwrite" \
            in caplog.text
    # a single input file whose folder is the output folder is refused too
    caplog.clear()
    assert demo.main(["--checkpoint", str(checkpoints["sgdet"]), "--input", str(folder / first), "--output",
                      str(folder)]) == 2
    assert "holds 1 of the input images" in caplog.text
    assert sorted(os.listdir(folder)) == [first, "notes.txt"] and (folder / first).read_bytes() == original
    # a subfolder of the input folder is fine: nothing is written beside the inputs
    out = folder / "scene_graphs"
    assert demo.main(["--checkpoint", str(checkpoints["sgdet"]), "--input", str(folder), "--output", str(out),
                      "--no-picture"]) == 0
    assert os.listdir(out) == [f"{first}.json"] and sorted(os.listdir(folder)) == [first, "notes.txt", "scene_graphs"]

    other = tmp_path / "other"
    other.mkdir()
    (other / first).write_bytes(original)
    caplog.clear()
    assert demo.main(["--checkpoint", str(checkpoints["sgdet"]), "--input", str(folder / first), str(other / first),
                      "--output", str(tmp_path / "out2")]) == 2
    assert f"{folder / first} and {other / first} have the same file name {first}" in caplog.text
    assert not (tmp_path / "out2").exists()


def test_a_detector_checkpoint_says_what_to_pass_instead(detector_ckpt, images, tmp_path, caplog):  # noqa: F811
    assert demo.main(["--checkpoint", str(detector_ckpt), "--input", str(images), "--output",
                      str(tmp_path / "out")]) == 2
    assert f"checkpoint {detector_ckpt} is a detector checkpoint" in caplog.text
    assert "tools/relation_train_net.py" in caplog.text
    assert f"MODEL.PRETRAINED_DETECTOR_CKPT {detector_ckpt}" in caplog.text
    assert not (tmp_path / "out").exists()
    # without its config (a bare detector state dict), the missing relation head tells
    bare = tmp_path / "bare_detector.pth"
    torch.save({"model": torch.load(detector_ckpt, weights_only=False)["model"]}, bare)
    with pytest.raises(CheckpointError, match="bare_detector.pth is a detector checkpoint"):
        SceneGraphPredictor(str(bare))


def test_detector_checkpoints_are_told_by_config_or_by_tensors():
    detector_tensors = {"backbone.body.conv1.weight": torch.zeros(1), "roi_heads.box_predictor.cls_score.weight": 0}
    relation_tensors = {**detector_tensors, "relation_head.predictor.rel_compress.weight": torch.zeros(1)}
    assert is_detector_checkpoint({"model": detector_tensors, "config": "MODEL:\n  RELATION_ON: false\n"})
    # the config decides over the tensors when it says
    assert not is_detector_checkpoint({"model": detector_tensors, "config": "MODEL:\n  RELATION_ON: true\n"})
    assert is_detector_checkpoint({"model": relation_tensors, "config": "MODEL:\n  RELATION_ON: false\n"})
    # no config, a config without the key, or a damaged one: the tensors decide
    for config in (None, "", "SOLVER:\n  BASE_LR: 0.1\n", "MODEL: [unclosed"):
        assert is_detector_checkpoint({"model": detector_tensors, "config": config}), config
        assert not is_detector_checkpoint({"model": relation_tensors, "config": config}), config


def test_read_image_names_a_truncated_jpeg_and_reads_whole_ones(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    ok, jpeg = cv2.imencode(".jpg", pixels)
    data = jpeg.tobytes()
    whole = tmp_path / "whole.jpg"
    whole.write_bytes(data + b"trailing bytes after the end-of-image marker")  # as some cameras write
    assert read_image(str(whole)).shape == (48, 64, 3)
    png = tmp_path / "p.png"
    cv2.imwrite(str(png), pixels)
    assert np.array_equal(read_image(str(png)), pixels[:, :, ::-1])  # BGR on disk, RGB out
    for cut in (len(data) - 2, len(data) // 2):  # OpenCV alone decodes both with a libjpeg warning
        part = tmp_path / f"cut{cut}.jpg"
        part.write_bytes(data[:cut])
        assert cv2.imread(str(part)) is not None
        with pytest.raises(DataError, match=f"image {re.escape(str(part))} is a damaged or truncated JPEG"):
            read_image(str(part))
