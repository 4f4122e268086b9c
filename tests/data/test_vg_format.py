"""The VG150 file format: the real dictionaries, box encoding, and the schema the writer produces."""
import json
import os

import h5py
import numpy as np
import pytest
import torch
from vg_cases import REAL_VG_DIR, image, write_case

from sgg.data.vg_format import (DICT_KEYS, H5_SCHEMA, decode_boxes, encode_boxes, load_vg_dicts,
                                ranges_to_rows)

REAL_DICTS = os.path.join(REAL_VG_DIR, "VG-SGG-dicts-with-attri.json")
REAL_ZEROSHOT = os.path.join(REAL_VG_DIR, "zeroshot_triplet.pytorch")
needs_real = pytest.mark.skipif(not os.path.isfile(REAL_DICTS), reason="real VG150 files not available")


@needs_real
def test_real_vg150_dictionaries_load_through_the_dataset_code():
    dicts = load_vg_dicts(REAL_DICTS)
    classes, predicates, attributes = (dicts["ind_to_classes"], dicts["ind_to_predicates"],
                                       dicts["ind_to_attributes"])
    assert (len(classes), len(predicates), len(attributes)) == (151, 51, 201)
    assert classes[0] == predicates[0] == attributes[0] == "__background__"
    assert classes[1:] == sorted(classes[1:]) and predicates[1:] == sorted(predicates[1:])  # alphabetical ids
    assert (classes[1], classes[150]) == ("airplane", "zebra")
    assert (predicates[1], predicates[20], predicates[31], predicates[50]) == ("above", "has", "on", "with")
    assert attributes[1] == "white"  # attributes are numbered by frequency, not alphabetically


@needs_real
def test_written_dictionaries_have_every_key_of_the_real_file(tmp_path):
    paths = write_case(tmp_path, [image("train", [[0, 0, 5, 5]], [1])])
    with open(REAL_DICTS) as f:
        real = json.load(f)
    with open(paths["dict_file"]) as f:
        ours = json.load(f)
    assert set(ours) == set(real) == set(DICT_KEYS)
    assert ours["idx_to_label"] == {"1": "a", "2": "b", "3": "c"}  # string keys as in the release
    assert ours["object_count"] == {"a": 1, "b": 0, "c": 0}


def test_written_h5_follows_the_real_schema(tmp_path):
    paths = write_case(tmp_path, [image("train", [[0, 0, 50, 50], [10, 10, 20, 30]], [1, 2], [[0, 1, 3]],
                                        attributes=[[2, 1], []]),
                                  image("test", [], []),
                                  image("test", [[1, 1, 9, 9]], [3], size=(20, 10))])
    with h5py.File(paths["roidb_file"], "r") as f:
        assert set(f) == set(H5_SCHEMA)
        for name, (dtype, trailing, _, _) in H5_SCHEMA.items():
            assert f[name].dtype == np.dtype(dtype), name
            assert f[name].shape[1:] == trailing, name
        assert f["split"][:].tolist() == [0, 2, 2]
        assert f["img_to_first_box"][:].tolist() == [0, -1, 2] and f["img_to_last_box"][:].tolist() == [1, -1, 2]
        assert f["img_to_first_rel"][:].tolist() == [0, -1, -1] and f["img_to_last_rel"][:].tolist() == [0, -1, -1]
        assert f["relationships"][:].tolist() == [[0, 1]] and f["predicates"][:].tolist() == [[3]]
        assert f["attributes"][:2, :3].tolist() == [[2, 1, 0], [0, 0, 0]]
        # 100 px -> 1024: x1 = 102.4 -> 102, x2 = 204.8 -> 205, w = 103, cx = 102 + ceil(103 / 2) = 154;
        # y1 -> 102, y2 = 307.2 -> 307, h = 205, cy = 102 + 103
        assert f["boxes_1024"][1].tolist() == [154, 205, 103, 205]
        assert f["boxes_512"][1].tolist() == [77, 103, 51, 103]
        assert f["active_object_mask"][:].all()
    with open(paths["image_file"]) as f:
        entries = json.load(f)
    assert [set(e) for e in entries] == [{"width", "height", "url", "image_id", "coco_id", "flickr_id"}] * 3
    assert [e["image_id"] for e in entries] == [1, 2, 3]


def test_encoding_round_trips_through_the_truncating_decoder():
    rng = np.random.default_rng(0)
    sizes = rng.integers(20, 2000, size=(500, 2))
    x1 = rng.uniform(0, 0.7, size=(500, 2)) * sizes
    x2 = x1 + rng.uniform(0.05, 0.3, size=(500, 2)) * sizes
    boxes = np.concatenate([x1, x2], axis=1)
    encoded = encode_boxes(boxes, sizes[:, 0], sizes[:, 1])
    decoded = decode_boxes(encoded) / 1024 * sizes.max(axis=1, keepdims=True)
    assert np.abs(decoded - boxes).max() <= 0.5 * sizes.max() / 1024 + 1e-9
    assert encoded.dtype == np.int32 and (encoded[:, 2:] > 0).all()


def test_decoder_matches_sgb_truncation():
    assert decode_boxes(np.array([[10, 20, 5, 7], [1, 1, 5, 5]])).tolist() == [[7, 16, 12, 23], [-1, -1, 4, 4]]


def test_ranges_to_rows():
    assert ranges_to_rows(np.array([5, -1, 0]), np.array([3, 0, 2])).tolist() == [5, 6, 7, 0, 1]


@needs_real
def test_real_zeroshot_file_format_matches_ours(synthetic_annotations):
    real = torch.load(REAL_ZEROSHOT)
    ours = torch.load(os.path.join(synthetic_annotations[0], "zeroshot_triplet.pytorch"))
    assert real.dtype == ours.dtype == torch.int64 and real.ndim == ours.ndim == 2 and ours.shape[1] == 3
