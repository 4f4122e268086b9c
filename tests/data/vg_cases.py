"""Hand-built VG-format cases shared by the data tests (imported as a plain module, like tests/engine/engine_toys)."""
import os

import numpy as np

from sgg.data.vg_format import dataset_paths
from sgg.data.vg_writer import write_vg_dataset

REAL_VG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "vg150")

OBJECTS = ["a", "b", "c"]
PREDICATES = ["p1", "p2", "p3"]
ATTRIBUTES = ["red", "big"]


def image(split, boxes, labels, relations=(), size=(100, 100), **extra):
    return dict(width=size[0], height=size[1], split=split, boxes=np.array(boxes, dtype=float).reshape(-1, 4),
                labels=labels, relations=np.array(relations, dtype=int).reshape(-1, 3), **extra)


# h5 order matters: it defines val (the first filtered train images) and the positional splits.
FILTER_CASE = [
    # 0 train: A-B overlap, A-C do not; the pair (A, B) is annotated twice
    image("train", [[0, 0, 50, 50], [25, 25, 75, 75], [80, 80, 99, 99]], [1, 2, 3], [[0, 1, 1], [0, 2, 2], [0, 1, 2]],
          attributes=[[1], [], [1, 2]]),
    # 1 train: one relation between boxes that do not overlap
    image("train", [[0, 0, 25, 25], [50, 50, 75, 75]], [1, 2], [[0, 1, 1]]),
    # 2 train: boxes, no relation
    image("train", [[0, 0, 25, 25], [50, 50, 75, 75]], [1, 1]),
    # 3 train: overlapping boxes
    image("train", [[10, 10, 60, 60], [20, 20, 90, 90]], [3, 1], [[1, 0, 3]]),
    # 4 test: the same relation twice (test relations are never deduplicated)
    image("test", [[0, 0, 50, 50], [25, 25, 75, 75]], [2, 3], [[0, 1, 1], [0, 1, 1]]),
    # 5 test: no relation
    image("test", [[0, 0, 50, 50]], [2]),
    # 6 train: no boxes at all
    image("train", [], []),
]


def write_case(root, images, objects=OBJECTS, predicates=PREDICATES, attributes=ATTRIBUTES):
    write_vg_dataset(str(root), images, objects, predicates, attributes)
    return dataset_paths(str(root))
