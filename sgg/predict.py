"""Scene graphs of your own images from a trained checkpoint (``tools/demo.py`` is the command line):

    from sgg.predict import load_predictor
    predictor = load_predictor("output/qt/MotifPredictor/sgdet/model_final.pth")   # = SceneGraphPredictor(...)
    graph = predictor.predict("photo.jpg", top_k=20)  # SGDet: boxes come from the detector; predictor(...) is the same
    graph = predictor("photo.jpg", boxes=[[x1, y1, x2, y2], ...], labels=["person", ...])   # PredCls checkpoints

Checkpoints are self-contained: the config text and the label names are inside, so no dataset is needed. The
protocol is the checkpoint's own (a PredCls model has no object classifier, so it cannot detect). The frequency
bias and every other learnt table come from the checkpoint; the dataset statistics the model is built with are
placeholders of the right shape.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Union

import cv2
import numpy as np
import torch
import yaml
from PIL import Image

from sgg.config import get_cfg, get_protocol
from sgg.data.transforms import build_transforms
from sgg.engine.detection import dataset_label_names
from sgg.engine.relation import build_scene_graph_model
from sgg.evaluation import split_head_body_tail
from sgg.structures import BoxList, to_image_list
from sgg.utils.checkpoint import load_checkpoint_file
from sgg.utils.errors import CheckpointError, DataError, one_line

PROTOCOL_SWITCHES = {"predcls": (True, True), "sgcls": (True, False), "sgdet": (False, False)}


def read_image(path: str) -> np.ndarray:
    """An image file as (H, W, 3) RGB uint8, any format OpenCV reads; a clear error names an unreadable file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path} does not exist")
    check_complete_jpeg(path)
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"image {path} could not be read (not an image format OpenCV reads, or a damaged file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_complete_jpeg(path: str) -> None:
    """A JPEG whose data stops early decodes in OpenCV with only libjpeg's "Premature end of JPEG file" on stderr and
    a grey lower part; PIL refuses such data, so a JPEG is first checked with PIL and a damaged one named."""
    with open(path, "rb") as f:
        if f.read(3) != b"\xff\xd8\xff":  # not a JPEG
            return
    try:
        with Image.open(path) as handle:
            handle.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"image {path} is a damaged or truncated JPEG ({err})") from None


def placeholder_statistics(obj_classes: Sequence[str], rel_classes: Sequence[str]) -> Dict:
    """What building a model needs from the dataset statistics, with the right shapes; the checkpoint overwrites
    every learnt table (e.g. the frequency bias)."""
    c, r = len(obj_classes), len(rel_classes)
    counts = np.ones(r, dtype=np.int64)
    counts[0] = 0
    return {"obj_classes": list(obj_classes), "rel_classes": list(rel_classes),
            "pred_dist": np.zeros((c, c, r), dtype=np.float32), "fg_matrix": np.ones((c, c, r), dtype=np.int64),
            "predicate_counts": torch.from_numpy(counts), "predicate_groups": split_head_body_tail(counts)}


def load_checkpoint(path: str) -> Dict:
    checkpoint = load_checkpoint_file(path)
    if is_detector_checkpoint(checkpoint):
        raise CheckpointError(f"checkpoint {path} is a detector checkpoint (MODEL.RELATION_ON False, no relation "
                              f"head): scene graphs need a relation checkpoint, the model_final.pth of a "
                              f"tools/relation_train_net.py run; train one on this detector with "
                              f"MODEL.PRETRAINED_DETECTOR_CKPT {path}")
    if not checkpoint.get("config"):
        raise CheckpointError(f"checkpoint {path} has no 'config': only relation checkpoints written by "
                              f"tools/relation_train_net.py are self-contained")
    return checkpoint


def is_detector_checkpoint(checkpoint: Dict) -> bool:
    """True for a detector alone: its config says MODEL.RELATION_ON False, or (no readable config) its state dict has
    no ``relation_head.*`` tensor."""
    try:
        relation_on = (yaml.safe_load(checkpoint.get("config") or "") or {}).get("MODEL", {}).get("RELATION_ON")
    except (yaml.YAMLError, AttributeError):  # a damaged or foreign config text: the tensors decide
        relation_on = None
    if relation_on is not None:
        return not relation_on
    return not any(str(key).startswith("relation_head.") for key in checkpoint["model"])


def checkpoint_label_names(checkpoint: Dict, cfg, path: str) -> Dict[str, List[str]]:
    """``{"ind_to_classes", "ind_to_predicates"}`` stored in the checkpoint; for checkpoints without them, read from
    the dictionary file of the config's training dataset when that file is on this machine."""
    names = checkpoint.get("label_names")
    if isinstance(names, dict) and names.get("ind_to_classes") and names.get("ind_to_predicates"):
        return {k: list(names[k]) for k in ("ind_to_classes", "ind_to_predicates")}
    try:
        names = dataset_label_names(cfg)
    except Exception:  # no catalog entry or no dictionary file here: the error below says what is needed
        names = None
    if not names:
        raise CheckpointError(f"checkpoint {path} has no 'label_names' (ind_to_classes / ind_to_predicates) and "
                              f"the dictionary file of its DATASETS.TRAIN {tuple(cfg.DATASETS.TRAIN)} is not under "
                              f"DATASETS.DATA_DIR {cfg.DATASETS.DATA_DIR!r}: pass opts=['DATASETS.DATA_DIR', "
                              f"<folder>]")
    return names


class SceneGraphPredictor:
    """A trained scene graph model with its preprocessing; ``__call__`` gives one image's scene graph dict."""

    def __init__(self, checkpoint_path: str, device: str = "cpu", opts: Sequence[str] = ()):
        checkpoint = load_checkpoint(checkpoint_path)
        cfg = get_cfg()
        cfg.merge_from_dict(yaml.safe_load(checkpoint["config"]), source=f"{checkpoint_path} (its config)")
        cfg.merge_from_list(["MODEL.DEVICE", device, "MODEL.WEIGHT", "", "MODEL.PRETRAINED_DETECTOR_CKPT", "",
                             "MODEL.PRETRAINED_MODEL_CKPT", "", "TEST.RELATION.MAX_PAIRS_STORED", "0", *opts])
        cfg.freeze()
        self.cfg = cfg
        self.protocol = get_protocol(cfg)
        names = checkpoint_label_names(checkpoint, cfg, checkpoint_path)
        self.obj_classes = list(names["ind_to_classes"])
        self.rel_classes = list(names["ind_to_predicates"])
        counts = {"MODEL.ROI_BOX_HEAD.NUM_CLASSES": (cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, self.obj_classes),
                  "MODEL.ROI_RELATION_HEAD.NUM_CLASSES": (cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES, self.rel_classes)}
        for key, (count, labels) in counts.items():
            if count != len(labels):
                raise CheckpointError(f"checkpoint {checkpoint_path}: {key} is {count} but its label names list "
                                      f"{len(labels)} (with the background)")
        self.model = build_scene_graph_model(cfg, placeholder_statistics(self.obj_classes, self.rel_classes))
        try:
            missing, unexpected = self.model.load_state_dict(checkpoint["model"], strict=False)
        except RuntimeError as err:  # tensors of another shape
            raise CheckpointError(f"checkpoint {checkpoint_path} does not fit the model its config builds: "
                                  f"{one_line(err)}") from None
        if missing or unexpected:
            raise CheckpointError(f"checkpoint {checkpoint_path} does not fit the model its config builds: missing "
                                  f"{list(missing)[:3]}, unexpected {list(unexpected)[:3]}")
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.transforms = build_transforms(cfg, is_train=False)
        self._label_index = {name: i for i, name in enumerate(self.obj_classes)}

    def _target(self, boxes, labels, size) -> BoxList:
        if self.protocol == "sgdet":
            return BoxList(torch.zeros(0, 4), size, "xyxy")
        if boxes is None:
            raise DataError(f"this checkpoint is a {self.protocol} model: give the object boxes (and, for PredCls, "
                            f"their labels), or use an SGDet checkpoint")
        box_tensor = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
        if self.protocol == "predcls" and (labels is None or len(labels) != len(box_tensor)):
            raise DataError(f"a PredCls model needs one label per box: {len(box_tensor)} boxes, "
                            f"{0 if labels is None else len(labels)} labels")
        label_ids = []
        for label in labels if labels is not None else [self.obj_classes[1]] * len(box_tensor):
            if isinstance(label, str):
                if label not in self._label_index:
                    raise DataError(f"unknown object label {label!r}; the model knows {self.obj_classes[1:6]} ...")
                label = self._label_index[label]
            label_ids.append(int(label))
        target = BoxList(box_tensor, size, "xyxy")
        target.add_field("labels", torch.tensor(label_ids, dtype=torch.long))
        return target

    @torch.no_grad()
    def __call__(self, image: Union[str, np.ndarray], boxes: Optional[Sequence[Sequence[float]]] = None,
                 labels: Optional[Sequence[Union[str, int]]] = None, top_k: int = 20) -> Dict:
        """``image``: a path or an (H, W, 3) RGB uint8 array. Returns ``{"width", "height", "objects",
        "relations"}``: objects with ``box`` (x1, y1, x2, y2 in image pixels), ``label``, ``score``; the ``top_k``
        relations by triplet score (predicate x subject x object) with ``subject`` / ``object`` object indices."""
        source = image if isinstance(image, str) else None
        array = read_image(image) if isinstance(image, str) else np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3:
            raise DataError(f"image array of shape {array.shape}, expected (H, W, 3) RGB")
        height, width = array.shape[:2]
        target = self._target(boxes, labels, (width, height))
        tensor, target = self.transforms(Image.fromarray(array.astype(np.uint8)), target)
        images = to_image_list([tensor], self.cfg.DATALOADER.SIZE_DIVISIBILITY).to(self.device)
        targets = [target.to(self.device)] if self.protocol != "sgdet" else None
        prediction = self.model(images, targets)[0].to("cpu").resize((width, height))
        graph = self._scene_graph(prediction, top_k)
        graph.update({"image": source, "width": width, "height": height, "protocol": self.protocol})
        return graph

    def predict(self, image: Union[str, np.ndarray], boxes: Optional[Sequence[Sequence[float]]] = None,
                labels: Optional[Sequence[Union[str, int]]] = None, top_k: int = 20) -> Dict:
        """The scene graph dict of one image (the same as calling the predictor)."""
        return self(image, boxes=boxes, labels=labels, top_k=top_k)

    def _scene_graph(self, prediction, top_k: int) -> Dict:
        labels = prediction.get_field("pred_labels").tolist()
        scores = prediction.get_field("pred_scores").tolist()
        objects = [{"id": i, "box": [round(float(v), 2) for v in box], "label": self.obj_classes[label],
                    "score": round(float(score), 4)}
                   for i, (box, label, score) in enumerate(zip(prediction.bbox.tolist(), labels, scores))]
        pairs = prediction.get_field("rel_pair_idxs")
        rel_scores = prediction.get_field("pred_rel_scores")
        predicates = prediction.get_field("pred_rel_labels")
        relations: List[Dict] = []
        for (s, o), p, row in zip(pairs.tolist()[:top_k], predicates.tolist()[:top_k], rel_scores[:top_k]):
            triplet = float(row[p]) * scores[s] * scores[o]
            relations.append({"subject": s, "object": o, "predicate": self.rel_classes[p],
                              "predicate_score": round(float(row[p]), 4), "score": round(triplet, 4)})
        return {"objects": objects, "relations": relations}


def load_predictor(checkpoint_path: str, device: str = "cpu", opts: Sequence[str] = ()) -> SceneGraphPredictor:
    """A ready predictor from a self-contained checkpoint: ``load_predictor(path).predict("a.jpg")``."""
    return SceneGraphPredictor(checkpoint_path, device=device, opts=opts)


__all__ = ["SceneGraphPredictor", "load_predictor", "read_image", "load_checkpoint", "checkpoint_label_names",
           "placeholder_statistics"]
