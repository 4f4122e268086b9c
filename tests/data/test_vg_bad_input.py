"""Every kind of broken VG-format input stops with an error that names the file or field, the index and what was
expected."""
import json
import os
import re
import shutil

import h5py
import numpy as np
import pytest
from vg_cases import image, write_case

from sgg.data.datasets import VGDataset
from sgg.data.vg_format import dataset_paths, load_vg_dicts
from sgg.data.vg_writer import write_vg_dataset
from sgg.utils.errors import DataError

TWO_IMAGES = [image("train", [[0, 0, 50, 50], [25, 25, 75, 75]], [1, 2], [[0, 1, 1]]),
              image("test", [[0, 0, 50, 50], [25, 25, 75, 75]], [2, 3], [[1, 0, 2]])]


@pytest.fixture
def case(tmp_path):
    return write_case(tmp_path / "case", TWO_IMAGES)


def open_test(paths, **options):
    options.setdefault("check_images", False)
    return VGDataset("test", **paths, **options)


def edit_h5(paths, edit):
    with h5py.File(paths["roidb_file"], "r+") as f:
        edit(f)


@pytest.mark.parametrize("key", ["roidb_file", "dict_file", "image_file"])
def test_missing_annotation_file(case, key):
    paths = dict(case, **{key: case[key] + ".missing"})
    with pytest.raises(FileNotFoundError, match=os.path.basename(paths[key])):
        open_test(paths)


def test_missing_image_folder(case):
    with pytest.raises(FileNotFoundError, match="image folder not found.*VG_100K"):
        open_test(case, check_images=True)


def test_h5_without_a_required_dataset(case):
    edit_h5(case, lambda f: f.__delitem__("boxes_1024"))
    with pytest.raises(ValueError, match=r"VG-SGG-with-attri.h5: missing h5 dataset\(s\) boxes_1024"):
        open_test(case)


def test_h5_with_inconsistent_shapes(case):
    def edit(f):
        labels = f["labels"][:]
        del f["labels"]
        f["labels"] = labels[:-1]

    edit_h5(case, edit)
    with pytest.raises(ValueError, match="'boxes_1024' has 4 rows but 'labels' has 3"):
        open_test(case)


def test_h5_per_image_arrays_of_different_lengths(case):
    def edit(f):
        del f["img_to_last_rel"]
        f["img_to_last_rel"] = np.array([0], dtype=np.int32)

    edit_h5(case, edit)
    with pytest.raises(ValueError, match="'img_to_last_rel' has 1 entries but 'split' has 2"):
        open_test(case)


def test_box_range_out_of_bounds(case):
    edit_h5(case, lambda f: f["img_to_last_box"].__setitem__(1, 9))
    with pytest.raises(ValueError, match=r"of image 1 are \(2, 9\): past the last row \(4 boxes"):
        open_test(case)


def test_half_empty_range(case):
    edit_h5(case, lambda f: f["img_to_first_rel"].__setitem__(0, -1))
    with pytest.raises(ValueError, match="'img_to_first_rel'/'img_to_last_rel' of image 0 are \\(-1, 0\\)"):
        open_test(case)


def test_relation_pointing_at_another_images_box(case):
    edit_h5(case, lambda f: f["relationships"].__setitem__(1, [0, 2]))
    with pytest.raises(ValueError, match=r"'relationships' row 1 \(image 1\) is \[0, 2\], expected global box rows "
                                         r"of its own image, 2..3"):
        open_test(case)


def test_box_with_non_positive_size(case):
    edit_h5(case, lambda f: f["boxes_1024"].__setitem__(3, [100, 100, 0, 20]))
    with pytest.raises(ValueError, match=r"'boxes_1024' row 3 \(image 1\).*non-positive width or height"):
        open_test(case)


def test_predicate_outside_the_dictionary(case):
    edit_h5(case, lambda f: f["predicates"].__setitem__(1, [7]))
    with pytest.raises(ValueError, match=r"'predicates' row 1 holds id 7, expected 1..3 \(the 3 predicates of "
                                         r".*VG-SGG-dicts-with-attri.json"):
        open_test(case)


def test_label_outside_the_dictionary(case):
    edit_h5(case, lambda f: f["labels"].__setitem__(2, [0]))
    with pytest.raises(ValueError, match=r"'labels' row 2 holds id 0, expected 1..3"):
        open_test(case)


def test_dictionary_with_gaps(case):
    with open(case["dict_file"]) as f:
        info = json.load(f)
    info["predicate_to_idx"]["p3"] = 5
    with open(case["dict_file"], "w") as f:
        json.dump(info, f)
    with pytest.raises(ValueError, match=r"'predicate_to_idx' ids must be exactly 1..3.*missing \[3\]"):
        load_vg_dicts(case["dict_file"])


def test_image_data_not_aligned_with_the_h5(case):
    with open(case["image_file"]) as f:
        entries = json.load(f)
    with open(case["image_file"], "w") as f:
        json.dump(entries + [{"width": 5, "height": 5, "image_id": 99}], f)
    with pytest.raises(ValueError, match=r"image_data.json does not align with .*VG-SGG-with-attri.h5: 3 usable "
                                         r"image entries for 2 h5 images.*differ from h5 image 2 on"):
        open_test(case)


def test_image_missing_on_disk_when_checked(case):
    os.makedirs(case["img_dir"])
    open(os.path.join(case["img_dir"], "2.jpg"), "wb").close()
    with pytest.raises(ValueError, match=r"1 entr\(y/ies\) skipped because the image is missing from .*VG_100K "
                                         r"\(first: entry 0, 1.jpg\), so h5 image 0 onwards is misaligned"):
        open_test(case, check_images=True)


def test_image_missing_at_load_time_when_not_checked(case):
    ds = open_test(case)
    with pytest.raises(FileNotFoundError, match=r"image file of item 0 \(image_id 2\) not found: .*2.jpg"):
        ds[0]


def test_val_split_larger_than_train(case):
    with pytest.raises(ValueError, match=r"num_val_im \(DATASETS.VAL_SIZE\) = 5000 but only 1 train-split images"):
        VGDataset("val", **case, check_images=False)


def test_writer_rejects_bad_annotations(tmp_path):
    names = (["a", "b"], ["on"])
    with pytest.raises(ValueError, match=r"box 1 of the dataset \(image 0\) is \[5.0, 5.0, 5.0, 9.0\]: non-positive"):
        write_vg_dataset(str(tmp_path), [image("train", [[0, 0, 4, 4], [5, 5, 5, 9]], [1, 2])], *names)
    with pytest.raises(ValueError, match=r"'labels' row 1 holds id 3, expected 1..2"):
        write_vg_dataset(str(tmp_path), [image("train", [[0, 0, 4, 4], [5, 5, 8, 9]], [1, 3])], *names)
    with pytest.raises(ValueError, match=r"'predicates' row 0 holds id 2, expected 1..1"):
        write_vg_dataset(str(tmp_path), [image("train", [[0, 0, 4, 4], [5, 5, 8, 9]], [1, 2], [[0, 1, 2]])], *names)
    with pytest.raises(ValueError, match=r"relation 0 \(image 0\) is \[0, 2, 1\]; subject and object must index"):
        write_vg_dataset(str(tmp_path), [image("train", [[0, 0, 4, 4], [5, 5, 8, 9]], [1, 2], [[0, 2, 1]])], *names)
    with pytest.raises(ValueError, match="split 'val'"):
        write_vg_dataset(str(tmp_path), [image("val", [[0, 0, 4, 4]], [1])], *names)
    with pytest.raises(ValueError, match="1592.*corrupted"):
        write_vg_dataset(str(tmp_path), [image("train", [[0, 0, 4, 4]], [1], image_id=1592)], *names)


@pytest.fixture
def image_dataset(synthetic_images, tmp_path):
    """A copy of the drawn synthetic dataset (its images may be damaged here) and its test split."""
    root = tmp_path / "copy"
    shutil.copytree(synthetic_images[0], root)
    return VGDataset("test", **dataset_paths(str(root)))


def _jpeg_bytes(ds, index):
    with open(ds.filenames[index], "rb") as f:
        return f.read()


def test_an_undecodable_image_is_a_data_error_naming_file_and_index(image_dataset):
    ds = image_dataset
    path, image_id = ds.filenames[5], ds.img_info[5]["image_id"]
    with open(path, "wb") as f:
        f.write(b"\x00" * 64)  # not an image any more
    with pytest.raises(DataError) as raised:
        ds[5]
    message = str(raised.value)
    assert f"item 5 (image_id {image_id}) could not be decoded: {path}" in message
    assert ds.image_file in message
    assert ds[4][2] == 4  # the other items still load


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_a_truncated_jpeg_is_a_data_error_naming_the_file(image_dataset, keep):
    ds = image_dataset
    data = _jpeg_bytes(ds, 2)
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"  # a whole JPEG before the cut
    with open(ds.filenames[2], "wb") as f:
        f.write(data[:int(len(data) * keep)])
    with pytest.raises(DataError, match=f"item 2 .* could not be decoded: {re.escape(ds.filenames[2])} "
                                        r"\(image file is truncated"):
        ds[2]
