import random

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import BatchSampler, DistributedSampler, SequentialSampler

from sgg.config import load_config
from sgg.data.samplers import GroupedBatchSampler, IterationBasedBatchSampler
from sgg.data.transforms import Normalize, RandomHorizontalFlip, Resize, build_transforms, resized_shape
from sgg.structures import BoxList, to_image_list


def _target(boxes, size):
    t = BoxList(torch.tensor(boxes, dtype=torch.float32), size)
    t.add_field("labels", torch.arange(1, len(boxes) + 1))
    t.add_field("relation_tuple", torch.tensor([[0, 1, 3]]))
    return t


def test_resized_shape_follows_maskrcnn_rule():
    # shorter side to 600 unless the longer side would pass 1000
    assert resized_shape(800, 600, (600,), 1000) == (600, 800)
    assert resized_shape(400, 300, (600,), 1000) == (600, 800)
    assert resized_shape(2000, 500, (600,), 1000) == (250, 1000)  # 600 * 4 > 1000 -> short side 250
    assert resized_shape(300, 400, (600,), 1000) == (800, 600)


def test_resize_scales_boxes_with_the_image():
    image = Image.new("RGB", (200, 100))
    target = _target([[10, 20, 50, 60], [0, 0, 199, 99]], (200, 100))
    out_image, out_target = Resize(200, 1000)(image, target)
    assert out_image.size == (400, 200)
    assert out_target.size == (400, 200)
    assert torch.allclose(out_target.bbox[0], torch.tensor([20.0, 40.0, 100.0, 120.0]))


def test_flip_moves_boxes_with_pixels():
    array = np.zeros((50, 100, 3), dtype=np.uint8)
    array[10:20, 5:15] = 255  # a white square at x in [5, 14]
    image = Image.fromarray(array)
    target = _target([[5, 10, 14, 19], [50, 0, 99, 49]], (100, 50))
    flipped_image, flipped = RandomHorizontalFlip(1.0)(image, target)
    # x1' = W - x2 - 1
    assert flipped.bbox[0].tolist() == [85.0, 10.0, 94.0, 19.0]
    assert flipped.bbox[1].tolist() == [0.0, 0.0, 49.0, 49.0]
    pixels = np.asarray(flipped_image)
    x1, y1, x2, y2 = [int(v) for v in flipped.bbox[0]]
    assert pixels[y1:y2 + 1, x1:x2 + 1].min() == 255
    assert pixels[:, :x1].max() == 0 and pixels[:, x2 + 1:].max() == 0
    # relations and labels travel unchanged
    assert flipped.get_field("relation_tuple").tolist() == [[0, 1, 3]]


def test_flip_probability_zero_never_flips():
    image = Image.new("RGB", (10, 10))
    target = _target([[0, 0, 2, 2]], (10, 10))
    for _ in range(20):
        _, out = RandomHorizontalFlip(0.0)(image, target)
        assert out.bbox[0].tolist() == [0.0, 0.0, 2.0, 2.0]


def test_normalize_to_bgr255():
    image = torch.zeros(3, 1, 1)
    image[0] = 1.0  # pure red in RGB 0..1
    out, _ = Normalize((1.0, 2.0, 3.0), (1.0, 1.0, 1.0), to_bgr255=True)(image)
    assert out.flatten().tolist() == [-1.0, -2.0, 252.0]


def test_build_transforms_uses_config_sizes_and_flip():
    cfg = load_config(None, ["INPUT.MIN_SIZE_TRAIN", "(100,)", "INPUT.MAX_SIZE_TRAIN", "300",
                             "INPUT.FLIP_PROB_TRAIN", "1.0", "INPUT.MIN_SIZE_TEST", "50"])
    image = Image.new("RGB", (200, 100))
    target = _target([[0, 0, 9, 9]], (200, 100))
    tensor, out = build_transforms(cfg, is_train=True)(image, target)
    assert tuple(tensor.shape) == (3, 100, 200)
    assert out.bbox[0].tolist() == [190.0, 0.0, 199.0, 9.0]  # flipped
    tensor, out = build_transforms(cfg, is_train=False)(image, target)
    assert tuple(tensor.shape) == (3, 50, 100)
    assert out.bbox[0].tolist() == [0.0, 0.0, 4.5, 4.5]  # test never flips


def test_image_list_pads_to_divisible_size():
    batch = to_image_list([torch.ones(3, 30, 40), torch.ones(3, 33, 20)], size_divisible=32)
    assert tuple(batch.tensors.shape) == (2, 3, 64, 64)
    assert batch.image_sizes == [(30, 40), (33, 20)]
    assert batch.tensors[1, :, 33:].abs().sum() == 0 and batch.tensors[1, :, :, 20:].abs().sum() == 0


def test_grouped_batches_never_mix_groups_until_leftovers():
    groups = [0, 1, 0, 1, 0, 0, 1, 0]
    batches = list(GroupedBatchSampler(SequentialSampler(range(8)), groups, batch_size=2))
    assert batches[:3] == [[0, 2], [1, 3], [4, 5]]
    assert sorted(i for b in batches for i in b) == list(range(8))
    for batch in batches[:-1]:
        assert len({groups[i] for i in batch}) == 1
    assert len(GroupedBatchSampler(SequentialSampler(range(8)), groups, batch_size=2)) == len(batches)


def test_iteration_based_sampler_runs_exactly_max_iter_and_resumes_identically():
    def make(start):
        sampler = DistributedSampler(range(10), num_replicas=1, rank=0, shuffle=True, seed=3)
        return IterationBasedBatchSampler(BatchSampler(sampler, 4, drop_last=False), 9, start_iter=start)

    full = list(make(0))
    assert len(full) == 9
    # epochs are reshuffled (set_epoch) and each epoch covers the dataset
    assert sorted(sum(full[:3], [])) == list(range(10))
    assert sum(full[:3], []) != sum(full[3:6], [])
    assert list(make(5)) == full[5:]


def test_iteration_based_sampler_rejects_empty_dataset():
    sampler = IterationBasedBatchSampler(BatchSampler(SequentialSampler([]), 2, drop_last=False), 3)
    with pytest.raises(ValueError, match="empty"):
        list(sampler)


def test_seeded_random_state_is_not_consumed_by_index_replay():
    random.seed(0)
    before = random.random()
    random.seed(0)
    list(IterationBasedBatchSampler(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False), 4, 2))
    assert random.random() == before
