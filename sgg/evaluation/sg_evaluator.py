"""SceneGraphEvaluator: SGB's VG150 relation metrics, streaming, order-independent and mergeable.

    ev = SceneGraphEvaluator(mode="sgdet", num_predicates=51, predicate_names=names)
    for image_id, (gt, pred) in enumerate(pairs_of_mappings):
        ev.update(gt, pred, image_id=image_id)
    results = ev.compute()
    print(ev.format(detection_map=None))

Per image only a small record is kept (one row per GT relation: predicate, zero-shot flag and the rank of the first
matching prediction in each ranked list); predictions are dropped as soon as they are ranked. See docs/evaluation.md.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from sgg.utils.errors import EvaluationError

from .inputs import check_mode, parse_groundtruth, parse_prediction, to_numpy
from .matching import NOT_MATCHED, first_match_ranks_of_lists, sorted_contains, triplet_keys
from .metrics import compute_metrics
from .predicate_split import split_head_body_tail
from .ranking import RankedPrediction, rank_prediction
from .report import format_results


def _sort_key(image_id):
    if isinstance(image_id, (int, np.integer)):
        return (0, int(image_id), "")
    return (1, 0, str(image_id))


class SceneGraphEvaluator:
    """Scene graph metrics of one protocol (see the module docstring and docs/evaluation.md).

    Args:
        mode: "predcls", "sgcls", "sgdet" or "phrdet".
        num_predicates: predicate classes including background (51 on VG150).
        predicate_names: ``num_predicates`` names, background first (printed in the per-predicate details).
        zeroshot_triplets: (M, 3) array of (subject class, object class, predicate) for zR@K; None: zR is NaN.
        predicate_counts: training counts per predicate (background first) for head/body/tail mR@K.
        iou_threshold: box IoU needed for a match (0.5).
        ks: the K of every @K metric.
        legacy_iou: +1 pixel IoU as SGB (True) or continuous IoU (False).
        relation_nms: PE-Net-style relation NMS before graph-constrained ranking (inflates numbers; off).
        split_rule: head/body/tail rule of :func:`split_head_body_tail` ("thirds" or "thresholds").
        relation_nms_iou: IoU of the relation NMS (0.6 as PE-Net).
    """

    def __init__(self, mode: str = "sgdet", num_predicates: int = 51, predicate_names: Optional[Sequence[str]] = None,
                 zeroshot_triplets=None, predicate_counts=None, iou_threshold: float = 0.5,
                 ks: Sequence[int] = (20, 50, 100), legacy_iou: bool = True, relation_nms: bool = False,
                 split_rule: str = "thirds", relation_nms_iou: float = 0.6):
        self.mode = check_mode(mode)
        if int(num_predicates) < 2:
            raise EvaluationError(f"num_predicates counts background too and must be >= 2 "
                                  f"(MODEL.ROI_RELATION_HEAD.NUM_CLASSES), got {num_predicates}")
        self.num_predicates = int(num_predicates)
        ks = sorted({int(k) for k in ks})
        if not ks or ks[0] < 1:
            raise EvaluationError(f"ks must be positive integers (TEST.RELATION.RECALL_KS), got {ks}")
        self.ks = tuple(ks)
        self.top_k = self.ks[-1]
        if predicate_names is not None:
            predicate_names = [str(n) for n in predicate_names]
            if len(predicate_names) != self.num_predicates:
                raise EvaluationError(f"predicate_names has {len(predicate_names)} names, expected num_predicates="
                                      f"{self.num_predicates} (background first)")
        self.predicate_names = predicate_names
        self.zeroshot_triplets = None
        self._zeroshot_keys = None
        if zeroshot_triplets is not None:
            z = to_numpy(zeroshot_triplets).astype(np.int64).reshape(-1, 3)
            if z.size and z.min() < 0:
                raise EvaluationError("zeroshot_triplets must hold non-negative (subject, object, predicate) classes")
            self.zeroshot_triplets = z
            self._zeroshot_keys = np.unique(triplet_keys(z[:, 0], z[:, 1], z[:, 2]))
        self.predicate_counts = None
        self.groups = None
        self.split_rule = split_rule
        if predicate_counts is not None:
            counts = to_numpy(predicate_counts).astype(np.float64).reshape(-1)
            if counts.shape[0] != self.num_predicates:
                raise EvaluationError(f"predicate_counts has {counts.shape[0]} entries, expected {self.num_predicates}")
            self.predicate_counts = counts
            self.groups = split_head_body_tail(counts, rule=split_rule)
        self.iou_threshold = float(iou_threshold)
        self.legacy_iou = bool(legacy_iou)
        self.relation_nms = bool(relation_nms)
        self.relation_nms_iou = float(relation_nms_iou)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self._records: Dict[Any, np.ndarray] = {}
        self._auto_id = 0

    def __len__(self) -> int:
        return len(self._records)

    def config(self) -> dict:
        """The settings that must agree for evaluators to be merged."""
        return {"mode": self.mode, "num_predicates": self.num_predicates, "ks": list(self.ks),
                "iou_threshold": self.iou_threshold, "legacy_iou": self.legacy_iou,
                "relation_nms": self.relation_nms, "relation_nms_iou": self.relation_nms_iou,
                "zeroshot": None if self._zeroshot_keys is None else self._zeroshot_keys.tolist()}

    def state_dict(self) -> dict:
        """Picklable state (numpy arrays and plain types) for ``torch.distributed.all_gather_object``."""
        ids = list(self._records)
        sizes = np.array([len(self._records[i]) for i in ids], dtype=np.int64)
        table = np.concatenate([self._records[i] for i in ids]) if ids else np.zeros((0, 5), dtype=np.int32)
        return {"config": self.config(), "image_ids": ids, "sizes": sizes, "records": table,
                "predicate_names": self.predicate_names, "split_rule": self.split_rule,
                "predicate_counts": None if self.predicate_counts is None else self.predicate_counts.tolist()}

    def load_state_dict(self, state: Mapping, merge: bool = False) -> None:
        """Replace (or with ``merge=True`` extend) the collected records with those of ``state``."""
        self._check_compatible(state["config"])
        if not merge:
            self.reset()
        bounds = np.concatenate([[0], np.cumsum(state["sizes"])]).astype(np.int64)
        for i, image_id in enumerate(state["image_ids"]):
            self._add_record(image_id, np.asarray(state["records"][bounds[i]:bounds[i + 1]], dtype=np.int32),
                             from_merge=True)

    @classmethod
    def from_state_dict(cls, state: Mapping, **kwargs) -> "SceneGraphEvaluator":
        """An evaluator holding ``state``, with the settings stored in it unless ``kwargs`` override them."""
        cfg = dict(state["config"])
        for key in ("predicate_names", "predicate_counts", "split_rule"):
            if state.get(key) is not None:
                kwargs.setdefault(key, state[key])
        zs = cfg.pop("zeroshot")
        kwargs.setdefault("zeroshot_triplets", None if zs is None else _keys_to_triplets(np.asarray(zs)))
        for key in ("mode", "num_predicates", "ks", "iou_threshold", "legacy_iou", "relation_nms",
                    "relation_nms_iou"):
            kwargs.setdefault(key, cfg[key])
        ev = cls(**kwargs)
        ev.load_state_dict(state)
        return ev

    def merge(self, other: Union["SceneGraphEvaluator", Mapping]) -> "SceneGraphEvaluator":
        """Add the images of another evaluator (or of its ``state_dict()``) to this one. An image present in both
        (the padding of a distributed sampler) is kept once if its records agree; otherwise a ValueError."""
        state = other.state_dict() if isinstance(other, SceneGraphEvaluator) else other
        self.load_state_dict(state, merge=True)
        return self

    def gather(self, all_gather: Callable[[Any], List[Any]], rank: int) -> "SceneGraphEvaluator":
        """Merge the evaluators of every process into this one, given the process group's ``all_gather(object) ->
        [object of each rank]`` and this process's ``rank`` (``sgg.utils.comm``'s; passed in so that the evaluator
        stays free of torch.distributed)."""
        states = all_gather(self.state_dict())
        for other, state in enumerate(states):
            if other != rank:
                self.merge(state)
        return self

    def _check_compatible(self, config: Mapping) -> None:
        own = self.config()
        diff = [k for k in own if k in config and _normalise(own[k]) != _normalise(config[k])]
        if diff:
            raise ValueError(f"cannot merge evaluators with different settings: {', '.join(diff)}")

    def _add_record(self, image_id, record: np.ndarray, from_merge: bool = False) -> None:
        if image_id in self._records:
            if from_merge and np.array_equal(self._records[image_id], record):
                return
            raise EvaluationError(f"image {image_id!r} was evaluated twice" +
                                  (" with different results" if from_merge else "") + "; image ids must be unique")
        self._records[image_id] = record

    # ------------------------------------------------------------------ per image
    def update(self, groundtruth: Mapping, prediction: Union[Mapping, RankedPrediction], image_id=None) -> None:
        """Evaluate one image. ``prediction`` is a mapping (see the module docs) or a :class:`RankedPrediction`
        read from a prediction file. Images without GT relations are skipped, as in SGB."""
        if image_id is None:
            while self._auto_id in self._records:
                self._auto_id += 1
            image_id = self._auto_id
        elif hasattr(image_id, "item"):  # numpy / torch scalar
            image_id = image_id.item()
        gt = parse_groundtruth(groundtruth, self.num_predicates, image_id)
        if isinstance(prediction, RankedPrediction):
            ranked = prediction
            if ranked.top_k < self.top_k:
                raise EvaluationError(f"image {image_id!r}: the ranked prediction keeps the top {ranked.top_k}, "
                                      f"fewer than the largest K={self.top_k}")
            if len(gt.relations) == 0:
                return
        else:
            pred = parse_prediction(prediction, self.mode, self.num_predicates, len(gt.boxes), image_id)
            if len(gt.relations) == 0:  # checked all the same, then skipped as in SGB
                return
            ranked = rank_prediction(pred, self.mode, self.top_k, gt.relations, self.relation_nms,
                                     self.relation_nms_iou, self.legacy_iou, gt.boxes, gt.labels)
        self._add_record(image_id, self._score(gt, ranked, image_id))

    def _score(self, gt, ranked: RankedPrediction, image_id) -> np.ndarray:
        rels = gt.relations
        record = np.full((len(rels), 5), NOT_MATCHED, dtype=np.int32)
        record[:, 0] = rels[:, 2]
        if self._zeroshot_keys is not None:
            keys = triplet_keys(gt.labels[rels[:, 0]], gt.labels[rels[:, 1]], rels[:, 2])
            record[:, 1] = sorted_contains(self._zeroshot_keys, keys)
        else:
            record[:, 1] = 0
        if self.mode == "predcls":
            boxes, labels = gt.boxes, gt.labels
        else:
            if ranked.boxes is None or ranked.labels is None:
                raise EvaluationError(f"image {image_id!r}: prediction field 'boxes'/'labels': missing (mode "
                                      f"{self.mode} needs the predicted objects)")
            boxes = np.asarray(ranked.boxes, dtype=np.float32)
            labels = np.asarray(ranked.labels, dtype=np.int64)
        columns, lists = [], []
        for column, rows in ((2, ranked.graph), (3, ranked.no_graph), (4, ranked.pair_accuracy)):
            if rows is None:
                continue
            rows = rows[:self.top_k]
            if len(rows) and (rows[:, :2].max() >= len(labels)):
                raise EvaluationError(f"image {image_id!r}: prediction field 'rel_pair_idxs': index outside the "
                                      f"{len(labels)} boxes")
            columns.append(column)
            lists.append(rows)
        record[:, columns] = first_match_ranks_of_lists(rels, gt.boxes, gt.labels, lists, boxes, labels,
                                                        self.iou_threshold, self.mode == "phrdet", self.legacy_iou)
        return record

    # ------------------------------------------------------------------ results
    def _ordered_records(self) -> List[np.ndarray]:
        return [self._records[i] for i in sorted(self._records, key=_sort_key)]

    def compute(self) -> dict:
        """Every metric as a dict (see docs/evaluation.md); NaN where a metric is undefined (e.g. zR@K without
        zero-shot images)."""
        results = compute_metrics(self._ordered_records(), self.ks, self.num_predicates, self.mode, self.groups,
                                  self.predicate_names)
        results["settings"] = {"iou_threshold": self.iou_threshold, "legacy_iou": self.legacy_iou,
                               "relation_nms": self.relation_nms, "zero_shot": self._zeroshot_keys is not None,
                               "split_rule": self.split_rule if self.groups else None}
        return results

    def format(self, detection_map: Optional[float] = None, results: Optional[dict] = None,
               extras: bool = True, note: Optional[str] = None) -> str:
        """SGB's printed block, line for line (PROTOCOL.md 2.4), then F@K and head/body/tail lines; ``note`` is an
        optional header line (see :func:`format_results`)."""
        results = self.compute() if results is None else results
        return format_results(results, self.predicate_names, detection_map, extras, note)


def _normalise(value):
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, (tuple, np.ndarray)):
        return list(np.asarray(value).tolist())
    return value


def _keys_to_triplets(keys: np.ndarray) -> np.ndarray:
    keys = keys.astype(np.int64)
    mask = (1 << 21) - 1
    return np.stack([keys >> 42, (keys >> 21) & mask, keys & mask], axis=1)
