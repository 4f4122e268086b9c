"""A toy model and dataset that follow the model contract (dict of named losses in training, a list of BoxList with
``pred_labels`` / ``pred_scores`` in eval), so the engine tests do not depend on the detector."""
from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, SequentialSampler

from sgg.config import get_cfg
from sgg.data.build import BatchCollator
from sgg.data.samplers import IterationBasedBatchSampler
from sgg.structures import BoxList
from sgg.utils import comm

IMAGE = 8  # side of the (resized) toy images
ORIGINAL = 16  # side reported by get_img_info: predictions are scaled back by 2


class ToyDataset(Dataset):
    """Image i is a fixed random 3x8x8 tensor; its target box carries a regression value. ``jitter`` adds noise
    drawn from python's and numpy's RNGs (as augmentations do) so that resume tests cover those RNG states."""

    def __init__(self, size: int = 16, jitter: bool = False, seed: int = 123):
        gen = torch.Generator().manual_seed(seed)
        self.images = torch.randn(size, 3, IMAGE, IMAGE, generator=gen)
        self.values = torch.randn(size, 2, generator=gen)
        self.jitter = jitter
        self.name = "toy"
        self.ind_to_classes = ["__background__", "thing", "other"]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = self.images[index].clone()
        if self.jitter:
            image += 0.01 * random.random() + 0.01 * float(np.random.rand())
        return image, self.get_groundtruth(index), index

    def get_img_info(self, index):
        return {"width": ORIGINAL, "height": ORIGINAL}

    def get_groundtruth(self, index, evaluation: bool = False):
        """In the resized image for training; in the original image (twice as large) for evaluation."""
        target = BoxList(torch.tensor([[1.0, 1.0, 6.0, 6.0]]), (IMAGE, IMAGE))
        if evaluation:
            target = target.resize((ORIGINAL, ORIGINAL))
        target.add_field("labels", torch.tensor([1]))
        target.add_field("value", self.values[index].reshape(1, 2))
        return target


class ToyModel(nn.Module):
    """conv + GroupNorm backbone and a linear head; two named losses. ``nan_at`` makes ``loss_b`` NaN on that
    (1-based) training call."""

    def __init__(self, dropout: float = 0.0, nan_at: int = 0, width: int = 4):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.GroupNorm(2, width), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, 2))
        self.nan_at = nan_at
        self.calls = 0

    def forward(self, images, targets=None):
        features = self.backbone(images.tensors).mean(dim=(2, 3))
        out = self.head(features)
        if not self.training:
            results = []
            for row, size in zip(out, images.image_sizes):
                box = BoxList(torch.tensor([[1.0, 1.0, 6.0, 6.0]]), (size[1], size[0]))
                box.add_field("pred_scores", torch.sigmoid(row[:1]))
                box.add_field("pred_labels", torch.tensor([1]))
                results.append(box)
            return results
        self.calls += 1
        value = torch.cat([t.get_field("value") for t in targets]).to(out.device)
        loss_a = ((out - value) ** 2).mean()
        loss_b = 0.1 * out.abs().mean()
        if self.nan_at and self.calls == self.nan_at:
            loss_b = loss_b * float("nan")
        return {"loss_a": loss_a, "loss_b": loss_b}


def toy_cfg(output_dir, **solver):
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(output_dir)
    cfg.MODEL.DEVICE = "cpu"
    cfg.SOLVER.MAX_ITER = 8
    cfg.SOLVER.BASE_LR = 0.05
    cfg.SOLVER.SCALE_LR_BY_BATCH = False
    cfg.SOLVER.IMS_PER_BATCH = 4
    cfg.SOLVER.WARMUP_ITERS = 2
    cfg.SOLVER.STEPS = (5,)
    cfg.SOLVER.CHECKPOINT_PERIOD = 4
    cfg.SOLVER.LOG_PERIOD = 1
    cfg.SOLVER.TO_VAL = False
    cfg.SOLVER.PRE_VAL = False
    cfg.SOLVER.GRAD_NORM_CLIP = 1.0
    cfg.TEST.IMS_PER_BATCH = 4
    for key, value in solver.items():
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return cfg


def toy_train_loader(cfg, dataset, start_iter: int = 0, distributed: bool = False, workers: int = 0):
    """The framework's training sampling (seeded DistributedSampler, iteration-based batches) over ``dataset``."""
    world, rank = (comm.get_world_size(), comm.get_rank()) if distributed else (1, 0)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=max(cfg.SEED, 0))
    batches = BatchSampler(sampler, cfg.SOLVER.IMS_PER_BATCH // world, drop_last=False)
    batches = IterationBasedBatchSampler(batches, cfg.SOLVER.MAX_ITER, start_iter)
    return DataLoader(dataset, batch_sampler=batches, collate_fn=BatchCollator(0), num_workers=workers)


def toy_test_loader(cfg, dataset, distributed: bool = False):
    sampler = DistributedSampler(dataset, shuffle=False) if distributed else SequentialSampler(dataset)
    batches = BatchSampler(sampler, cfg.TEST.IMS_PER_BATCH // comm.get_world_size(), drop_last=False)
    return DataLoader(dataset, batch_sampler=batches, collate_fn=BatchCollator(0), num_workers=0)


def score_evaluator(predictions, dataset):
    """A stand-in evaluator: how many images were predicted and the mean score."""
    scores = [float(p.get_field("pred_scores")[0]) for p in predictions.values()]
    return {"num_images": len(predictions), "mean_score": sum(scores) / max(len(scores), 1)}


def write_mini_vg(root, num_train: int = 16, num_test: int = 4, width: int = 128, height: int = 96, seed: int = 0):
    """A few VG150-format images with one or two solid rectangles of 3 colour-coded classes, in
    ``root/synthetic_vg`` (the catalog's SyntheticVG_* layout), for end-to-end runs of the detector tools."""
    import os

    from PIL import Image

    from sgg.data.vg_writer import write_vg_dataset

    rng = np.random.default_rng(seed)
    colours = [(220, 40, 40), (40, 200, 40), (40, 60, 230)]
    folder = os.path.join(str(root), "synthetic_vg")
    os.makedirs(os.path.join(folder, "VG_100K"), exist_ok=True)
    images = []
    for i in range(num_train + num_test):
        canvas = np.full((height, width, 3), 128, dtype=np.uint8)
        boxes, labels = [], []
        for k in range(1 + i % 2):
            w, h = rng.integers(24, 48, size=2)
            x1 = k * (width // 2) + int(rng.integers(0, width // 2 - w))
            y1 = int(rng.integers(0, height - h))
            label = int(rng.integers(1, 4))
            canvas[y1:y1 + h, x1:x1 + w] = colours[label - 1]
            boxes.append([x1, y1, x1 + w - 1, y1 + h - 1])
            labels.append(label)
        image_id = i + 1
        Image.fromarray(canvas).save(os.path.join(folder, "VG_100K", f"{image_id}.jpg"), quality=95)
        relations = [[0, 1, 1]] if len(boxes) > 1 else []
        images.append({"width": width, "height": height, "split": "train" if i < num_train else "test",
                       "boxes": boxes, "labels": labels, "relations": relations, "image_id": image_id})
    write_vg_dataset(folder, images, ["red", "green", "blue"], ["near"])
    return folder
