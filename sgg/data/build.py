"""Datasets and data loaders from the config: the one place that maps ``DATASETS.*``/``DATALOADER.*`` to objects."""
from __future__ import annotations

import logging
import random
from typing import List, Optional

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler, SequentialSampler
from torch.utils.data import BatchSampler

from sgg.config import DatasetCatalog, get_protocol
from sgg.config.sgg_config import ConfigError
from sgg.evaluation import split_head_body_tail
from sgg.structures import to_image_list
from sgg.utils.comm import get_rank, get_world_size
from sgg.utils.errors import DataError

from .bpl import balance_training_split
from .datasets import VGDataset
from .samplers import GroupedBatchSampler, IterationBasedBatchSampler
from .statistics import load_or_compute_statistics
from .transforms import build_transforms

logger = logging.getLogger(__name__)

SPLIT_TO_KEY = {"train": "TRAIN", "val": "VAL", "test": "TEST"}


def dataset_options(cfg, split: str) -> dict:
    """SGB's VGDataset options for a split (PROTOCOL.md 1.1): the filters depend on the training stage and protocol."""
    relation_on = cfg.MODEL.RELATION_ON
    use_gt_box = cfg.MODEL.ROI_RELATION_HEAD.USE_GT_BOX
    return dict(
        filter_empty_rels=relation_on,
        filter_non_overlap=(not use_gt_box) and relation_on and cfg.MODEL.ROI_RELATION_HEAD.REQUIRE_BOX_OVERLAP,
        filter_duplicate_rels=cfg.DATASETS.FILTER_DUPLICATE_RELS,
        num_im=cfg.DATASETS.NUM_IM,
        num_val_im=cfg.DATASETS.VAL_SIZE,
        check_images=cfg.DATASETS.CHECK_IMAGES,
    )


def build_dataset(cfg, name: str, transforms=None, **overrides):
    """One catalog dataset (e.g. ``"VG150_test"``, ``"SyntheticVG_train"``) with the config's options."""
    args = DatasetCatalog.get(name, cfg.DATASETS.DATA_DIR)
    args.pop("collection")
    zeroshot_file = args.pop("zeroshot_file")
    options = dataset_options(cfg, args["split"])
    options.update(overrides)
    dataset = VGDataset(transforms=transforms, **args, **options)
    dataset.name = name
    dataset.zeroshot_file = zeroshot_file
    return dataset


def build_datasets(cfg, split: str, is_train: Optional[bool] = None) -> List:
    """The datasets named in ``DATASETS.<SPLIT>`` with the split's transforms."""
    key = SPLIT_TO_KEY[split]
    names = list(getattr(cfg.DATASETS, key))
    if not names:
        raise ConfigError(f"DATASETS.{key} is empty: name at least one dataset, e.g. DATASETS.{key} "
                          f"\"('VG150_{split}',)\" or \"('SyntheticVG_{split}',)\"")
    is_train = (split == "train") if is_train is None else is_train
    transforms = build_transforms(cfg, is_train)
    datasets = [build_dataset(cfg, name, transforms) for name in names]
    ba_sgg = cfg.MODEL.ROI_RELATION_HEAD.BA_SGG
    if split == "train" and is_train and cfg.MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER and ba_sgg.BALANCE_TRAIN_DATA:
        for ds in datasets:  # BA-SGG stage 2 trains on the re-balanced split
            balance_training_split(ds, ba_sgg.TOP_PREDICATES, ba_sgg.MAX_INSTANCES)
    if not is_train:
        for ds in datasets:  # evaluating a train split: model-input boxes must equal the evaluator's GT boxes
            ds.evaluation_targets = True
    for ds in datasets:
        if len(ds) == 0:
            raise DataError(f"dataset {ds.name} is empty after filtering (DATASETS.{key}, protocol "
                            f"{get_protocol(cfg)})")
    return datasets


class BatchCollator:
    """(image, target, index) items -> (ImageList padded to ``size_divisible``, targets tuple, indices tuple)."""

    def __init__(self, size_divisible: int = 0):
        self.size_divisible = size_divisible

    def __call__(self, batch):
        images, targets, indices = zip(*batch)
        return to_image_list(images, self.size_divisible), targets, indices


def _aspect_groups(dataset) -> List[int]:
    """0 for landscape (h/w < 1), 1 for portrait, as maskrcnn-benchmark."""
    if isinstance(dataset, ConcatDataset):
        return [g for d in dataset.datasets for g in _aspect_groups(d)]
    groups = []
    for i in range(len(dataset)):
        info = dataset.get_img_info(i)
        groups.append(0 if info["height"] / info["width"] < 1 else 1)
    return groups


def _per_process_batch(total: int, key: str) -> int:
    world = get_world_size()
    if total % world != 0:
        raise ConfigError(f"{key} ({total}) must be divisible by the number of processes ({world})")
    return total // world


def build_data_loader(cfg, split: str = "train", is_distributed: bool = False, start_iter: int = 0,
                      for_training: Optional[bool] = None):
    """Training: one iteration-based loader over ``DATASETS.TRAIN``. Evaluation (val/test, or any split with
    ``for_training=False``): a list of loaders, one per dataset, in dataset order.

    Training batches follow a seeded shuffle (``SEED``) so a resumed run replays the same order.
    """
    for_training = (split == "train") if for_training is None else for_training
    datasets = build_datasets(cfg, split, is_train=for_training)
    collator = BatchCollator(cfg.DATALOADER.SIZE_DIVISIBILITY)
    num_workers = cfg.DATALOADER.NUM_WORKERS
    if for_training:
        dataset = datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)
        batch = _per_process_batch(cfg.SOLVER.IMS_PER_BATCH, "SOLVER.IMS_PER_BATCH")
        world, rank = (get_world_size(), get_rank()) if is_distributed else (1, 0)
        # DistributedSampler with one replica is a seeded shuffle; set_epoch makes every pass differ.
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                     seed=max(cfg.SEED, 0))
        if cfg.DATALOADER.ASPECT_RATIO_GROUPING:
            batch_sampler = GroupedBatchSampler(sampler, _aspect_groups(dataset), batch, drop_uneven=False)
        else:
            batch_sampler = BatchSampler(sampler, batch, drop_last=False)
        batch_sampler = IterationBasedBatchSampler(batch_sampler, cfg.SOLVER.MAX_ITER, start_iter)
        return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collator, num_workers=num_workers,
                          worker_init_fn=seed_worker)

    batch = _per_process_batch(cfg.TEST.IMS_PER_BATCH, "TEST.IMS_PER_BATCH")
    loaders = []
    for dataset in datasets:
        if is_distributed:
            # No shuffling and no padding duplicates matter: results are keyed by image index and merged.
            sampler = DistributedSampler(dataset, shuffle=False)
        else:
            sampler = SequentialSampler(dataset)
        loaders.append(DataLoader(dataset, batch_sampler=BatchSampler(sampler, batch, drop_last=False),
                                  collate_fn=collator, num_workers=num_workers, worker_init_fn=seed_worker))
    return loaders


def seed_worker(worker_id: int) -> None:  # pragma: no cover - runs in worker processes
    """Give numpy and random in each worker the worker's torch seed (torch does not seed numpy for us)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def get_dataset_statistics(cfg):
    """Frequency statistics of the first training dataset, computed as SGB does and cached in ``OUTPUT_DIR``.

    SGB always counts the train split (without val) with non-overlapping GT relations removed, empty images dropped
    and duplicates kept, whatever the training options are (PROTOCOL.md 1.6).
    """
    if not cfg.DATASETS.TRAIN:
        raise ConfigError("DATASETS.TRAIN is empty: the frequency statistics come from the first training dataset")
    name = cfg.DATASETS.TRAIN[0]
    dataset = build_dataset(cfg, name, transforms=None, filter_empty_rels=True, filter_non_overlap=True,
                            filter_duplicate_rels=False, check_images=False)
    statistics = dict(load_or_compute_statistics(dataset, cfg.OUTPUT_DIR, f"{name}_statistics"))
    # Head / body / tail follow how often each predicate is annotated in training. SGB's overlap filter above
    # would drop most relations between boxes that do not touch (e.g. "far from"), so count without it.
    annotated = build_dataset(cfg, name, transforms=None, filter_empty_rels=True, filter_non_overlap=False,
                              filter_duplicate_rels=False, check_images=False)
    counts = predicate_counts(annotated)
    statistics["predicate_counts"] = torch.from_numpy(counts)
    statistics["predicate_groups"] = split_head_body_tail(counts)
    return statistics


def predicate_counts(dataset) -> np.ndarray:
    """(P,) number of annotated relations per predicate over a dataset's images (entry 0, background, is 0)."""
    predicates = [r[:, 2] for r in dataset.relationships if len(r)]
    values = np.concatenate(predicates).astype(np.int64) if predicates else np.zeros(0, dtype=np.int64)
    return np.bincount(values, minlength=len(dataset.ind_to_predicates)).astype(np.int64)
