"""Compact prediction files: save what the metrics at the largest K can use, re-evaluate later without the model.

Per image the file keeps the predicted objects (boxes, labels, scores in fp32) and only the relation pairs some
metric can reach at the largest K: the graph-constrained top-K, the pairs of the no-graph-constraint top-K and, in
predcls/sgcls, the pair-accuracy top-K. Their full score vectors are stored in fp16, and next to them the exact
rankings computed from the fp32 scores (pair order, each pair's graph-constrained predicate, the ng (pair, predicate)
list, the pair-accuracy list), so re-evaluating a file reproduces the in-memory metrics exactly even where fp16
rounding would tie or swap scores.

Layout (little endian): ``b"SGGPRED1"``, uint32 n, n bytes of JSON metadata; then per image a uint32 n, an n-byte
JSON header ``{"image_id", "graph_count", "arrays": [[name, dtype, shape], ...]}`` followed by the raw arrays in that
order; finally a header ``{"end": true, "num_images": N}``. Records stream in and out one image at a time; no pickle.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Mapping, Optional

import numpy as np

from .inputs import check_mode, parse_groundtruth, parse_prediction
from .ranking import RankedPrediction, rank_prediction

MAGIC = b"SGGPRED1"
_LEN = struct.Struct("<I")
_DTYPES = {"float32": "<f4", "float16": "<f2", "int32": "<i4", "int16": "<i2", "int64": "<i8"}


@dataclass
class PredictionRecord:
    image_id: Any
    prediction: Dict[str, np.ndarray]  # boxes, labels, scores, rel_pair_idxs, rel_scores (fp16->fp32), rel_rank_scores
    ranked: RankedPrediction           # the exact rankings, for SceneGraphEvaluator.update


class PredictionFileWriter:
    """Append one image at a time to a compact prediction file.

    ``meta`` needs ``mode`` and ``num_predicates``; optional ``ks`` (default (20, 50, 100); the largest K is kept),
    ``relation_nms``/``relation_nms_iou``/``legacy_iou`` (they change the stored ranking); anything else JSON-able
    (dataset name, predicate_names, model...) is stored as is.
    """

    def __init__(self, path: str, meta: Mapping):
        meta = dict(meta)
        for key in ("mode", "num_predicates"):
            if key not in meta:
                raise ValueError(f"prediction file meta needs {key!r}")
        check_mode(meta["mode"])
        meta["num_predicates"] = int(meta["num_predicates"])
        meta.setdefault("ks", [20, 50, 100])
        meta["ks"] = sorted(int(k) for k in meta["ks"])
        meta["top_k"] = meta["ks"][-1]
        meta.setdefault("relation_nms", False)
        meta.setdefault("relation_nms_iou", 0.6)
        meta.setdefault("legacy_iou", True)
        meta["format_version"] = 1
        self.meta = meta
        self.path = path
        self.num_images = 0
        self._file = open(path, "wb")
        blob = json.dumps(meta).encode()
        self._file.write(MAGIC + _LEN.pack(len(blob)) + blob)

    def add(self, image_id, prediction: Mapping, groundtruth: Optional[Mapping] = None) -> RankedPrediction:
        """Rank and write one image; returns its :class:`RankedPrediction` (so the caller can also pass it to
        ``SceneGraphEvaluator.update`` without ranking twice). predcls/sgcls need ``groundtruth`` (its relations
        define the pair-accuracy list; predcls also takes the object count from it)."""
        mode, num_predicates = self.meta["mode"], self.meta["num_predicates"]
        if hasattr(image_id, "item"):  # numpy / torch scalar
            image_id = image_id.item()
        gt = None
        if groundtruth is not None:
            gt = parse_groundtruth(groundtruth, num_predicates, image_id)
        elif mode in ("predcls", "sgcls"):
            raise ValueError(f"image {image_id!r}: groundtruth: missing (mode {mode} stores the pair-accuracy "
                             f"list, which needs the GT pairs)")
        pred = parse_prediction(prediction, mode, num_predicates, len(gt.boxes) if gt else 0, image_id)
        ranked, detail = rank_prediction(
            pred, mode, self.meta["top_k"], gt.relations if gt else None, bool(self.meta["relation_nms"]),
            float(self.meta["relation_nms_iou"]), bool(self.meta["legacy_iou"]),
            gt.boxes if gt else None, gt.labels if gt else None, return_detail=True)

        # rows kept: graph list first (in rank order), then any other row the ng / accuracy lists use
        graph_rows = detail.graph_rows
        extra = [detail.no_graph_rows]
        if detail.accuracy_rows is not None:
            extra.append(detail.accuracy_rows)
        extra = np.setdiff1d(np.concatenate(extra), graph_rows)
        rows = np.concatenate([graph_rows, extra]).astype(np.int64)
        position = {int(r): i for i, r in enumerate(rows)}
        row_labels = np.zeros(len(rows), dtype=np.int16)
        row_labels[:len(graph_rows)] = detail.graph_labels
        if detail.accuracy_rows is not None:
            for r, lab in zip(detail.accuracy_rows.tolist(), detail.accuracy_labels.tolist()):
                row_labels[position[r]] = lab
        no_graph = np.column_stack([[position[int(r)] for r in detail.no_graph_rows],
                                    detail.no_graph_labels]).astype(np.int32).reshape(-1, 2)
        arrays = {}
        if pred.boxes is not None:
            arrays["boxes"] = pred.boxes.astype(np.float32)
        if pred.labels is not None:
            arrays["labels"] = pred.labels.astype(np.int32)
        if pred.scores is not None:
            arrays["scores"] = pred.scores.astype(np.float32)
        arrays["rel_pair_idxs"] = pred.rel_pair_idxs[rows].astype(np.int32)
        arrays["rel_scores"] = pred.rel_scores[rows].astype(np.float16)
        if pred.rank_scores is not None:  # the model's own ranking (fp32: the stored order is already exact)
            arrays["rel_rank_scores"] = pred.rank_scores[rows].astype(np.float32)
        arrays["pair_labels"] = row_labels
        arrays["no_graph"] = no_graph
        if detail.accuracy_rows is not None:
            arrays["accuracy_rows"] = np.array([position[int(r)] for r in detail.accuracy_rows], dtype=np.int32)
        self._write_record({"image_id": image_id, "graph_count": int(len(graph_rows))}, arrays)
        self.num_images += 1
        return ranked

    def _write_record(self, header: dict, arrays: Dict[str, np.ndarray]) -> None:
        header["arrays"] = [[name, str(a.dtype), list(a.shape)] for name, a in arrays.items()]
        blob = json.dumps(header).encode()
        self._file.write(_LEN.pack(len(blob)) + blob)
        for name, a in arrays.items():
            self._file.write(np.ascontiguousarray(a, dtype=_DTYPES[str(a.dtype)]).tobytes())

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            blob = json.dumps({"end": True, "num_images": self.num_images}).encode()
            self._file.write(_LEN.pack(len(blob)) + blob)
            self._file.close()

    def __enter__(self) -> "PredictionFileWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PredictionFileReader:
    """Iterate over the :class:`PredictionRecord` of a file; ``meta`` holds the writer's metadata."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            self.meta = self._read_meta(f)

    def _read_meta(self, f) -> dict:
        magic = f.read(len(MAGIC))
        if magic != MAGIC:
            raise ValueError(f"{self.path}: not a scene graph prediction file (bad magic {magic!r})")
        return json.loads(self._read_exact(f, _LEN.unpack(self._read_exact(f, 4))[0]))

    def _read_exact(self, f, n: int) -> bytes:
        data = f.read(n)
        if len(data) != n:
            raise ValueError(f"{self.path}: truncated prediction file (writer not closed?)")
        return data

    def __iter__(self) -> Iterator[PredictionRecord]:
        with open(self.path, "rb") as f:
            self._read_meta(f)
            while True:
                header = json.loads(self._read_exact(f, _LEN.unpack(self._read_exact(f, 4))[0]))
                if header.get("end"):
                    return
                arrays = {}
                for name, dtype, shape in header["arrays"]:
                    dt = np.dtype(_DTYPES[dtype])
                    count = int(np.prod(shape)) if shape else 1
                    arrays[name] = np.frombuffer(self._read_exact(f, count * dt.itemsize), dtype=dt).reshape(shape)
                yield self._record(header, arrays)

    def _record(self, header: dict, arrays: Dict[str, np.ndarray]) -> PredictionRecord:
        pairs = arrays["rel_pair_idxs"].astype(np.int64)
        labels = arrays["pair_labels"].astype(np.int64)
        graph_count = header["graph_count"]
        no_graph = arrays["no_graph"].astype(np.int64)
        graph = np.column_stack([pairs[:graph_count], labels[:graph_count]]).reshape(-1, 3)
        ng = np.column_stack([pairs[no_graph[:, 0]], no_graph[:, 1]]).reshape(-1, 3)
        acc = None
        if "accuracy_rows" in arrays:
            r = arrays["accuracy_rows"].astype(np.int64)
            acc = np.column_stack([pairs[r], labels[r]]).reshape(-1, 3)
        own = self.meta["mode"] != "predcls"
        boxes = arrays["boxes"].astype(np.float32) if "boxes" in arrays else None
        obj_labels = arrays["labels"].astype(np.int64) if "labels" in arrays else None
        ranked = RankedPrediction(boxes if own else None, obj_labels if own else None, graph, ng, acc,
                                  int(self.meta["top_k"]))
        prediction = {"rel_pair_idxs": pairs, "rel_scores": arrays["rel_scores"].astype(np.float32)}
        if "rel_rank_scores" in arrays:
            prediction["rel_rank_scores"] = np.array(arrays["rel_rank_scores"])
        for name, value in (("boxes", boxes), ("labels", obj_labels), ("scores", arrays.get("scores"))):
            if value is not None:
                prediction[name] = np.array(value)
        return PredictionRecord(header["image_id"], prediction, ranked)


def read_prediction_file(path: str) -> PredictionFileReader:
    """Open a prediction file: ``reader.meta`` and ``for record in reader`` (one image at a time)."""
    return PredictionFileReader(path)


def evaluate_prediction_file(path: str, groundtruth_lookup: Callable[[Any], Mapping], **evaluator_kwargs):
    """Re-evaluate a prediction file; ``groundtruth_lookup(image_id)`` returns that image's GT mapping.

    Mode, num_predicates, ks, relation NMS settings and (when stored) predicate_names default to the file's
    metadata; settings that would need a different stored ranking raise ValueError. Returns the filled
    :class:`SceneGraphEvaluator` (call ``compute()`` / ``format()`` on it).
    """
    from .sg_evaluator import SceneGraphEvaluator

    reader = PredictionFileReader(path)
    meta = reader.meta
    kwargs = dict(evaluator_kwargs)
    for key in ("mode", "num_predicates", "ks", "relation_nms", "relation_nms_iou"):
        kwargs.setdefault(key, meta[key])
    if "predicate_names" in meta:
        kwargs.setdefault("predicate_names", meta["predicate_names"])
    if meta["relation_nms"]:
        kwargs.setdefault("legacy_iou", meta["legacy_iou"])
    checks = {"mode": kwargs["mode"] == meta["mode"],
              "num_predicates": int(kwargs["num_predicates"]) == meta["num_predicates"],
              "ks": max(kwargs["ks"]) <= meta["top_k"],
              "relation_nms": bool(kwargs["relation_nms"]) == bool(meta["relation_nms"])}
    if meta["relation_nms"]:
        checks["relation_nms_iou"] = float(kwargs["relation_nms_iou"]) == float(meta["relation_nms_iou"])
        checks["legacy_iou"] = bool(kwargs["legacy_iou"]) == bool(meta["legacy_iou"])
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"{path}: evaluator settings {', '.join(bad)} do not fit the file (mode={meta['mode']}, "
                         f"num_predicates={meta['num_predicates']}, largest K={meta['top_k']}, "
                         f"relation_nms={meta['relation_nms']})")
    evaluator = SceneGraphEvaluator(**kwargs)
    for record in reader:
        evaluator.update(groundtruth_lookup(record.image_id), record.ranked, image_id=record.image_id)
    return evaluator
