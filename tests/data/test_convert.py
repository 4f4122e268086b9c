"""tools/convert_to_vg.py: a simple JSON description of custom data becomes a VG150-format dataset."""
import importlib.util
import json
import os

import numpy as np
import pytest
from PIL import Image

from sgg.data.datasets import VGDataset
from sgg.data.vg_writer import convert_simple_dataset

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "convert_to_vg.py")

DESCRIPTION = {
    "images": [
        {"file_name": "kitchen/a.png", "width": 64, "height": 48, "split": "train",
         "objects": [{"box": [2, 3, 30, 40], "label": "cup", "attributes": ["red"]},
                     {"box": [20, 10, 60, 45], "label": "table"}],
         "relations": [{"subject": 0, "object": 1, "predicate": "on"}]},
        {"file_name": "b.png", "split": "test",  # size read from the image
         "objects": [{"box": [0, 0, 10, 10], "label": "dog", "attributes": ["red", "small"]},
                     {"box": [5, 5, 30, 20], "label": "cup"}],
         "relations": [{"subject": 0, "object": 1, "predicate": "near"},
                       {"subject": 1, "object": 0, "predicate": "on"}]},
    ]
}


def load_tool():
    spec = importlib.util.spec_from_file_location("convert_to_vg", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "src"
    (root / "kitchen").mkdir(parents=True)
    Image.new("RGB", (64, 48)).save(root / "kitchen" / "a.png")
    Image.new("RGB", (40, 30)).save(root / "b.png")
    with open(root / "data.json", "w") as f:
        json.dump(DESCRIPTION, f)
    return root


def test_converter_round_trip(source, tmp_path, capsys):
    out = tmp_path / "out"
    assert load_tool().main([str(source / "data.json"), "--output-dir", str(out)]) == 0
    assert "wrote 2 images (1 train, 1 test)" in capsys.readouterr().out
    paths = {"img_dir": str(out / "VG_100K"), "roidb_file": str(out / "VG-SGG-with-attri.h5"),
             "dict_file": str(out / "VG-SGG-dicts-with-attri.json"), "image_file": str(out / "image_data.json")}
    train = VGDataset("train", **paths, num_val_im=0, filter_non_overlap=False)  # images checked on disk
    test = VGDataset("test", **paths)
    # classes and predicates numbered alphabetically (as VG150), attributes too
    assert train.ind_to_classes == ["__background__", "cup", "dog", "table"]
    assert train.ind_to_predicates == ["__background__", "near", "on"]
    assert train.ind_to_attributes == ["__background__", "red", "small"]
    gt = train.get_groundtruth(0)
    assert np.allclose(gt.bbox.numpy(), [[2, 3, 30, 40], [20, 10, 60, 45]], atol=64 / 2048 + 1e-4)
    assert gt.get_field("labels").tolist() == [1, 3]
    assert gt.get_field("relation_tuple").tolist() == [[0, 1, 2]]
    assert gt.get_field("attributes")[0, :2].tolist() == [1, 0]
    gt = test.get_groundtruth(0, evaluation=True)
    assert test.get_img_info(0)["width"] == 40 and test.get_img_info(0)["file_name"] == "b.png"
    assert gt.get_field("labels").tolist() == [2, 1]
    assert gt.get_field("relation_tuple").tolist() == [[0, 1, 1], [1, 0, 2]]
    assert gt.get_field("attributes")[0, :2].tolist() == [1, 2]
    image, _, _ = train[0]
    assert image.size == (64, 48) and os.path.islink(out / "VG_100K" / "kitchen" / "a.png")


def test_converter_errors_name_the_entry(source, tmp_path):
    broken = json.loads(json.dumps(DESCRIPTION))
    del broken["images"][1]["objects"][0]["label"]
    with pytest.raises(ValueError, match=r"images\[1\].objects\[0\] needs 'box'"):
        convert_simple_dataset(broken, str(tmp_path / "x"), image_root=str(source))
    broken = json.loads(json.dumps(DESCRIPTION))
    broken["predicate_classes"] = ["on"]
    with pytest.raises(ValueError, match=r"\['near'\] are used but not listed in 'predicate_classes'"):
        convert_simple_dataset(broken, str(tmp_path / "x"), image_root=str(source))
    broken = json.loads(json.dumps(DESCRIPTION))
    broken["images"][0]["relations"][0]["object"] = 5
    with pytest.raises(ValueError, match=r"relation 0 \(image 0\) is \[0, 5, 2\]"):
        convert_simple_dataset(broken, str(tmp_path / "x"), image_root=str(source))
    with pytest.raises(FileNotFoundError, match="b.png"):
        convert_simple_dataset(DESCRIPTION, str(tmp_path / "x"), image_root=str(tmp_path / "nowhere"))
