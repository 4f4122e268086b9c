"""Compact prediction files: save what the metrics at the largest K can use, re-evaluate later without the model.

Per image the file keeps the predicted objects (boxes, labels, scores in fp32) and only the relation pairs some
metric can reach at the largest K: the graph-constrained top-K, the pairs of the no-graph-constraint top-K and, in
predcls/sgcls, the pair-accuracy top-K. Their full score vectors are stored in fp16, and next to them the exact
rankings computed from the fp32 scores (pair order, each pair's graph-constrained predicate, the ng (pair, predicate)
list, the pair-accuracy list), so re-evaluating a file reproduces the in-memory metrics exactly even where fp16
rounding would tie or swap scores.

Layout (format version 2, little endian): ``b"SGGPRED2"``, then blocks of ``uint32 n, uint32 crc32, n bytes of JSON``
(the CRC-32 covers the JSON bytes). The first block is the metadata; per image a block
``{"image_id", "graph_count", "arrays": [[name, dtype, shape], ...], "crc32": C}`` is followed by the raw arrays in
that order (``C`` is the CRC-32 of those array bytes); finally a block ``{"end": true, "num_images": N}``. Every byte
is covered by a magic, a length or a checksum, so any single-bit corruption is reported with the file name
(CRC-32 detects every single-bit error). Version 1 files (``b"SGGPRED1"``, the same blocks without CRCs) are still
read, unchecked. Records stream in and out one image at a time; no pickle.
"""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Mapping, Optional

import numpy as np

from sgg.utils.errors import EvaluationError

from .inputs import check_mode, parse_groundtruth, parse_prediction
from .ranking import RankedPrediction, rank_prediction
from .sg_evaluator import SceneGraphEvaluator

MAGIC = b"SGGPRED2"
FORMAT_VERSION = 2
MAGIC_V1 = b"SGGPRED1"  # still readable (no checksums)
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
    ``relation_nms``/``relation_nms_iou``/``legacy_iou`` (they change the stored ranking); optional
    ``predicate_counts``, ``split_rule`` and ``iou_threshold`` (the run's head/body/tail counts and match IoU, so that
    a re-evaluation gives the run's numbers whatever config it is given); anything else JSON-able (dataset name,
    predicate_names, model...) is stored as is.
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
        if meta.get("predicate_counts") is not None:
            meta["predicate_counts"] = [float(c) for c in np.asarray(meta["predicate_counts"]).reshape(-1)]
        meta["format_version"] = FORMAT_VERSION
        self.meta = meta
        self.path = path
        self.num_images = 0
        self._file = open(path, "wb")
        self._file.write(MAGIC)
        self._write_block(meta)

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

    def _write_block(self, content: dict) -> None:
        blob = json.dumps(content).encode()
        self._file.write(_LEN.pack(len(blob)) + _LEN.pack(zlib.crc32(blob)) + blob)

    def _write_record(self, header: dict, arrays: Dict[str, np.ndarray]) -> None:
        header["arrays"] = [[name, str(a.dtype), list(a.shape)] for name, a in arrays.items()]
        payload = b"".join(np.ascontiguousarray(a, dtype=_DTYPES[str(a.dtype)]).tobytes() for a in arrays.values())
        header["crc32"] = zlib.crc32(payload)
        self._write_block(header)
        self._file.write(payload)

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._write_block({"end": True, "num_images": self.num_images})
            self._file.close()

    def __enter__(self) -> "PredictionFileWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PredictionFileReader:
    """Iterate over the :class:`PredictionRecord` of a file; ``meta`` holds the writer's metadata.

    A damaged file (bad magic, truncation, checksum mismatch, undecodable content) raises :class:`EvaluationError`
    naming the file."""

    def __init__(self, path: str):
        self.path = path
        self.version = None
        with open(path, "rb") as f:
            self.meta = self._read_meta(f)

    def _damaged(self, what: str) -> EvaluationError:
        return EvaluationError(f"{self.path}: damaged prediction file ({what}); write it again with "
                               f"tools/relation_test_net.py")

    def _read_meta(self, f) -> dict:
        magic = f.read(len(MAGIC))
        if magic not in (MAGIC, MAGIC_V1):
            raise EvaluationError(f"{self.path}: not a scene graph prediction file (bad magic {magic!r}, expected "
                                  f"{MAGIC!r} or {MAGIC_V1!r})")
        self.version = 2 if magic == MAGIC else 1
        meta = self._read_block(f, "metadata")
        required = {"mode": str, "num_predicates": int, "ks": list, "top_k": int, "relation_nms": bool}
        for key, kind in required.items():
            if not isinstance(meta.get(key), kind):
                raise self._damaged(f"metadata field {key!r}: expected {kind.__name__}, got {meta.get(key)!r}")
        return meta

    def _read_exact(self, f, n: int) -> bytes:
        data = f.read(n)
        if len(data) != n:
            raise EvaluationError(f"{self.path}: truncated prediction file (writer not closed?)")
        return data

    def _read_block(self, f, what: str) -> dict:
        """One JSON block (length, in version 2 a CRC-32, the JSON bytes) as a dict."""
        size = _LEN.unpack(self._read_exact(f, 4))[0]
        crc = _LEN.unpack(self._read_exact(f, 4))[0] if self.version == 2 else None
        blob = self._read_exact(f, size)
        if crc is not None and zlib.crc32(blob) != crc:
            raise self._damaged(f"checksum mismatch in the {what}")
        try:
            content = json.loads(blob)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise self._damaged(f"{what} is not valid JSON: {err}") from None
        if not isinstance(content, dict):
            raise self._damaged(f"{what} is not a JSON object")
        return content

    def __iter__(self) -> Iterator[PredictionRecord]:
        with open(self.path, "rb") as f:
            self._read_meta(f)
            count = 0
            while True:
                where = f"record {count}"
                header = self._read_block(f, where)
                if header.get("end"):
                    if header.get("num_images") != count:
                        raise self._damaged(f"end block counts {header.get('num_images')!r} images, read {count}")
                    return
                try:
                    arrays = self._read_arrays(f, header)
                    record = self._record(header, arrays)
                except EvaluationError:
                    raise
                except (KeyError, IndexError, TypeError, ValueError) as err:  # v1 files have no checksum
                    raise self._damaged(f"{where}: {type(err).__name__}: {err}") from None
                count += 1
                yield record

    def _read_arrays(self, f, header: dict) -> Dict[str, np.ndarray]:
        layout = [(name, np.dtype(_DTYPES[dtype]), [int(n) for n in shape]) for name, dtype, shape in header["arrays"]]
        sizes = [int(np.prod(shape)) * dt.itemsize if shape else dt.itemsize for _, dt, shape in layout]
        payload = self._read_exact(f, sum(sizes))
        if self.version == 2 and zlib.crc32(payload) != header["crc32"]:
            raise self._damaged(f"checksum mismatch in the arrays of image {header.get('image_id')!r}")
        arrays, offset = {}, 0
        for (name, dt, shape), size in zip(layout, sizes):
            arrays[name] = np.frombuffer(payload, dtype=dt, count=size // dt.itemsize, offset=offset).reshape(shape)
            offset += size
        return arrays

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
    reader = PredictionFileReader(path)
    meta = reader.meta
    kwargs = dict(evaluator_kwargs)
    for key in ("mode", "num_predicates", "ks", "relation_nms", "relation_nms_iou"):
        kwargs.setdefault(key, meta[key])
    for key in ("predicate_names", "predicate_counts", "split_rule", "iou_threshold"):
        if meta.get(key) is not None:
            kwargs.setdefault(key, meta[key])
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
        raise EvaluationError(f"{path}: evaluator settings {', '.join(bad)} do not fit the file (mode={meta['mode']}, "
                              f"num_predicates={meta['num_predicates']}, largest K={meta['top_k']}, "
                              f"relation_nms={meta['relation_nms']})")
    try:
        evaluator = SceneGraphEvaluator(**kwargs)
    except EvaluationError:
        raise
    except ValueError as err:
        raise EvaluationError(f"{path}: the file's metadata does not make an evaluator: {err}") from None
    for record in reader:
        try:
            groundtruth = groundtruth_lookup(record.image_id)
            evaluator.update(groundtruth, record.ranked, image_id=record.image_id)
        except (ValueError, IndexError, KeyError, TypeError) as err:  # an unknown image, a prediction not fitting
            if str(err).startswith(path):
                raise
            raise EvaluationError(f"{path}: {err}") from None
    return evaluator
