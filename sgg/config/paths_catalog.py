"""Named datasets and where their files live, relative to the data root (``DATASETS.DATA_DIR`` / ``SGG_DATA_DIR``).

A dataset name is ``<collection>_<split>``. SGB's names (``VG_stanford_filtered_with_attribute_train`` ...) are
accepted as aliases of the VG150 ones so that SGB yamls and command lines work unchanged.
"""
from __future__ import annotations

import difflib
import os
from typing import Dict

from .sgg_config import ConfigError

DEFAULT_DATA_DIR = "datasets"
SPLITS = ("train", "val", "test")

# Each collection: files relative to the data root, all in the VG150 release format.
COLLECTIONS: Dict[str, Dict[str, str]] = {
    "VG150": {
        "img_dir": "vg/VG_100K",
        "roidb_file": "vg/VG-SGG-with-attri.h5",
        "dict_file": "vg/VG-SGG-dicts-with-attri.json",
        "image_file": "vg/image_data.json",
        "zeroshot_file": "vg/zeroshot_triplet.pytorch",
    },
    "SyntheticVG": {
        "img_dir": "synthetic_vg/VG_100K",
        "roidb_file": "synthetic_vg/VG-SGG-with-attri.h5",
        "dict_file": "synthetic_vg/VG-SGG-dicts-with-attri.json",
        "image_file": "synthetic_vg/image_data.json",
        "zeroshot_file": "synthetic_vg/zeroshot_triplet.pytorch",
    },
    # the rendered VG-like profile (tools/make_synthetic_vg.py --profile vglike): VG150's scene statistics
    "SyntheticVGLike": {
        "img_dir": "synthetic_vglike/VG_100K",
        "roidb_file": "synthetic_vglike/VG-SGG-with-attri.h5",
        "dict_file": "synthetic_vglike/VG-SGG-dicts-with-attri.json",
        "image_file": "synthetic_vglike/image_data.json",
        "zeroshot_file": "synthetic_vglike/zeroshot_triplet.pytorch",
    },
}
ALIASES = {"VG_stanford_filtered_with_attribute": "VG150", "VG": "VG150"}


def resolve_data_dir(configured: str) -> str:
    """The data root: an explicitly configured DATASETS.DATA_DIR wins, then $SGG_DATA_DIR, then ``datasets``."""
    env = os.environ.get("SGG_DATA_DIR", "")
    if configured and configured != DEFAULT_DATA_DIR:
        return configured
    return env or configured or DEFAULT_DATA_DIR


def all_dataset_names():
    names = [f"{c}_{s}" for c in COLLECTIONS for s in SPLITS]
    names += [f"{a}_{s}" for a in ALIASES for s in SPLITS]
    return names


def split_name(name: str):
    """``"VG150_train"`` -> ("VG150", "train"); aliases resolved; unknown names raise with suggestions."""
    collection, _, split = name.rpartition("_")
    collection = ALIASES.get(collection, collection)
    if collection not in COLLECTIONS or split not in SPLITS:
        close = difflib.get_close_matches(name, all_dataset_names(), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown dataset name {name!r} (in DATASETS.TRAIN/VAL/TEST or --dataset).{hint} "
                          f"Known: {', '.join(f'{c}_{{train,val,test}}' for c in COLLECTIONS)} "
                          f"(SGB's VG_stanford_filtered_with_attribute_* are aliases of VG150_*)")
    return collection, split


class DatasetCatalog:
    @staticmethod
    def get(name: str, data_dir: str = DEFAULT_DATA_DIR) -> Dict[str, str]:
        """Constructor arguments of the dataset ``name``: absolute-or-relative file paths plus ``split``."""
        collection, split = split_name(name)
        root = resolve_data_dir(data_dir)
        args = {key: os.path.join(root, rel) for key, rel in COLLECTIONS[collection].items()}
        args["split"] = split
        args["collection"] = collection
        return args
