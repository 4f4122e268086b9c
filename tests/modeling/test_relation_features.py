from collections import OrderedDict

import torch

from sgg.modeling.roi_heads.relation_head.feature_extractors import RelationFeatureExtractor, rect_masks
from sgg.structures import BoxList


def test_rect_masks_follow_floor_ceil_rule_on_the_image_canvas():
    heads = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    tails = torch.tensor([[25.0, 5.0, 39.0, 19.0]])
    sizes = torch.tensor([[40.0, 20.0]])  # (w, h)
    masks = rect_masks(heads, tails, sizes, rect_size=4)
    # head scaled by (4/40, 4/20) = (0.1, 0.2): x [0, 1], y [0, 2]
    expected_head = torch.zeros(4, 4)
    expected_head[0:3, 0:2] = 1
    assert torch.equal(masks[0, 0], expected_head)
    # tail: x [floor(2.5)=2, ceil(3.9)=4], y [floor(1)=1, ceil(3.8)=4] -> clipped to the canvas
    expected_tail = torch.zeros(4, 4)
    expected_tail[1:4, 2:4] = 1
    assert torch.equal(masks[0, 1], expected_tail)


def _features():
    return OrderedDict([("0", torch.randn(2, 8, 16, 16)), ("1", torch.randn(2, 8, 8, 8))])


def test_union_features_shapes_for_all_level_and_mapped_pooling():
    boxes = [BoxList(torch.tensor([[0.0, 0.0, 20.0, 20.0], [30.0, 30.0, 60.0, 50.0]]), (64, 64)),
             BoxList(torch.tensor([[5.0, 5.0, 10.0, 10.0]]), (60, 64))]
    pairs = [torch.tensor([[0, 1], [1, 0]]), torch.zeros(0, 2, dtype=torch.long)]
    for all_levels in (True, False):
        extractor = RelationFeatureExtractor(8, ["0", "1"], resolution=3, sampling_ratio=2, mlp_dim=16,
                                             pool_all_levels=all_levels)
        out = extractor(_features(), boxes, pairs, [(64, 64), (64, 60)])
        assert out.shape == (2, 16) and torch.isfinite(out).all()
        out.sum().backward()
        assert extractor.fc6.weight.grad is not None


def test_union_features_with_no_pairs_at_all():
    extractor = RelationFeatureExtractor(8, ["0", "1"], 3, 2, 16)
    boxes = [BoxList(torch.tensor([[0.0, 0.0, 20.0, 20.0]]), (64, 64))]
    out = extractor(_features(), boxes, [torch.zeros(0, 2, dtype=torch.long)], [(64, 64)])
    assert out.shape == (0, 16)


def test_chunked_inference_equals_one_pass():
    torch.manual_seed(0)
    extractor = RelationFeatureExtractor(8, ["0", "1"], 3, 2, 16).eval()
    boxes = [BoxList(torch.tensor([[0.0, 0.0, 20.0, 20.0], [30.0, 30.0, 60.0, 50.0], [5.0, 40.0, 30.0, 60.0]]),
                     (64, 64)),
             BoxList(torch.tensor([[5.0, 5.0, 10.0, 10.0], [20.0, 20.0, 50.0, 40.0]]), (60, 64))]
    pairs = [torch.tensor([[0, 1], [1, 0], [2, 0], [0, 2], [1, 2]]), torch.tensor([[0, 1], [1, 0]])]
    features = _features()
    with torch.no_grad():
        whole = extractor(features, boxes, pairs, [(64, 64), (64, 60)], max_pairs_per_chunk=100)
        chunked = extractor(features, boxes, pairs, [(64, 64), (64, 60)], max_pairs_per_chunk=2)
    assert whole.shape == (7, 16)
    assert torch.allclose(whole, chunked, atol=1e-6)
