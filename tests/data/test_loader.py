"""build_data_loader on a small synthetic VG: well-formed batches for training (with and without flips) and testing."""
import torch

from sgg.config import load_config
from sgg.data import build_data_loader, build_dataset, get_dataset_statistics
from sgg.structures import BoxList, ImageList


def _cfg(root, *extra):
    return load_config(None, [
        "DATASETS.DATA_DIR", str(root), "DATASETS.TRAIN", "('SyntheticVG_train',)", "DATASETS.VAL",
        "('SyntheticVG_val',)", "DATASETS.TEST", "('SyntheticVG_test',)", "DATASETS.VAL_SIZE", "8",
        "MODEL.RELATION_ON", "True", "SOLVER.IMS_PER_BATCH", "4", "TEST.IMS_PER_BATCH", "3", "SOLVER.MAX_ITER", "5",
        "DATALOADER.NUM_WORKERS", "0", "DATALOADER.SIZE_DIVISIBILITY", "32", "INPUT.MIN_SIZE_TRAIN", "(96,)",
        "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "128",
        "OUTPUT_DIR", str(root / "out"), *extra])


def _check_batch(batch, size):
    images, targets, indices = batch
    assert isinstance(images, ImageList) and images.tensors.shape[0] == len(targets) == len(indices) == size
    assert images.tensors.shape[-1] % 32 == 0 and images.tensors.shape[-2] % 32 == 0
    for (height, width), target in zip(images.image_sizes, targets):
        assert isinstance(target, BoxList) and target.size == (width, height)
        # shorter side 96 unless the longer would pass 128 (then capped, maskrcnn's integer rounding)
        assert max(height, width) <= 128 and (min(height, width) == 96 or max(height, width) >= 127)
        boxes = target.bbox
        # inside the image up to the rounding of the resize (maskrcnn's flip maps x2 = W - 1 to about 0)
        assert (boxes[:, :2] > -1).all() and (boxes[:, 2] < width).all() and (boxes[:, 3] < height).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        rels = target.get_field("relation_tuple")
        assert rels.shape[1] == 3 and (rels[:, :2] < len(target)).all() and (rels[:, 2] > 0).all()
        assert target.get_field("relation").shape == (len(target), len(target))
        assert len(target.get_field("labels")) == len(target)


def test_training_loader_yields_max_iter_batches(synthetic_images):
    root = synthetic_images[0]
    loader = build_data_loader(_cfg(_parent(root)), "train")
    batches = list(loader)
    assert len(batches) == 5
    for batch in batches:
        _check_batch(batch, 4)


def test_flip_moves_the_targets_with_the_images(synthetic_images):
    root = _parent(synthetic_images[0])
    plain = next(iter(build_data_loader(_cfg(root, "INPUT.FLIP_PROB_TRAIN", "0.0"), "train")))
    flipped = next(iter(build_data_loader(_cfg(root, "INPUT.FLIP_PROB_TRAIN", "1.0"), "train")))
    assert plain[2] == flipped[2]  # same seeded order of images
    _check_batch(flipped, 4)
    for (h, w), a, b, ia, ib in zip(plain[0].image_sizes, plain[1], flipped[1], plain[0].tensors,
                                    flipped[0].tensors):
        # same boxes, mirrored: x1' = W - x2 - 1; and the pixels mirrored the same way
        if len(a) == len(b):
            assert torch.allclose(b.bbox[:, 0], w - a.bbox[:, 2] - 1, atol=1e-4)
        assert torch.allclose(ib[:, :h, :w], ia[:, :h, :w].flip(-1), atol=1e-4)


def test_test_loader_keeps_dataset_order_and_every_image(synthetic_images):
    root = _parent(synthetic_images[0])
    cfg = _cfg(root)
    (loader,) = build_data_loader(cfg, "test")
    seen = [i for _, _, indices in loader for i in indices]
    assert seen == list(range(len(loader.dataset)))
    _check_batch(next(iter(loader)), 3)
    # evaluation targets of val/test are the same boxes as the model inputs (no SGB misalignment)
    dataset = build_dataset(cfg, "SyntheticVG_test")
    for index in range(len(dataset)):
        model_target = dataset[index][1]
        eval_target = dataset.get_groundtruth(index, evaluation=True)
        assert len(model_target) == len(eval_target)
        assert torch.equal(model_target.get_field("relation_tuple"), eval_target.get_field("relation_tuple"))


def test_statistics_head_body_tail_use_annotation_counts(synthetic_images):
    cfg = _cfg(_parent(synthetic_images[0]))
    statistics = get_dataset_statistics(cfg)
    train = build_dataset(cfg, "SyntheticVG_train", filter_non_overlap=False)
    expected = torch.bincount(torch.cat([torch.as_tensor(r[:, 2]) for r in train.relationships]),
                              minlength=len(train.ind_to_predicates))
    assert torch.equal(torch.as_tensor(statistics["predicate_counts"]), expected)
    groups = statistics["predicate_groups"]
    assert sorted(p for g in groups.values() for p in g) == list(range(1, len(train.ind_to_predicates)))


def _parent(root):
    """The synthetic fixture writes its files straight into ``root``; the catalog expects ``<data>/synthetic_vg``."""
    import os
    import pathlib

    root = pathlib.Path(root)
    link = root.parent / f"{root.name}_data"
    if not link.exists():
        link.mkdir()
        os.symlink(root, link / "synthetic_vg")
    return link
