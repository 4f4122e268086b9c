import pytest
import torch

from sgg.structures import BoxList, box_iou, box_iou_np, cat_boxlist, remap_relations


def _boxes():
    b = BoxList(torch.tensor([[0, 0, 9, 9], [5, 5, 14, 14], [20, 20, 20, 30], [0, 0, 3, 3]]), (40, 40))
    b.add_field("labels", torch.tensor([1, 2, 3, 4]))
    rel = torch.zeros(4, 4, dtype=torch.long)
    rel[0, 1], rel[2, 3], rel[3, 0] = 5, 6, 7
    b.add_field("relation", rel)
    b.add_field("relation_tuple", torch.tensor([[0, 1, 5], [2, 3, 6], [3, 0, 7], [0, 1, 8]]))
    return b


def test_indexing_keeps_relations_aligned_with_boxes():
    sub = _boxes()[torch.tensor([3, 0, 1])]
    assert sub.get_field("labels").tolist() == [4, 1, 2]
    # relation_tuple rows are re-indexed; the row touching the dropped box 2 is gone
    assert sub.get_field("relation_tuple").tolist() == [[1, 2, 5], [0, 1, 7], [1, 2, 8]]
    assert sub.get_field("relation").tolist() == [[0, 7, 0], [0, 0, 5], [0, 0, 0]]


def test_clip_remove_empty_drops_degenerate_box_and_its_relations():
    clipped = _boxes().clip_to_image(remove_empty=True)
    assert len(clipped) == 3  # box 2 has zero width
    assert clipped.get_field("relation_tuple").tolist() == [[0, 1, 5], [2, 0, 7], [0, 1, 8]]
    kept = _boxes().clip_to_image(remove_empty=False)
    assert len(kept) == 4 and kept.get_field("relation_tuple").shape == (4, 3)


def test_clip_to_image_bounds():
    b = BoxList(torch.tensor([[-5.0, -5.0, 50.0, 8.0]]), (40, 20)).clip_to_image(remove_empty=False)
    assert b.bbox[0].tolist() == [0.0, 0.0, 39.0, 8.0]


def test_remap_relations_with_boolean_mask():
    rel = torch.tensor([[0, 2, 1], [1, 2, 4]])
    assert remap_relations(rel, torch.tensor([0, 2]), 3).tolist() == [[0, 1, 1]]
    b = _boxes()[torch.tensor([True, True, False, False])]
    assert b.get_field("relation_tuple").tolist() == [[0, 1, 5], [0, 1, 8]]


def test_legacy_iou_uses_plus_one_widths():
    a = torch.tensor([[0.0, 0.0, 9.0, 9.0]])
    b = torch.tensor([[5.0, 0.0, 14.0, 9.0]])
    # +1 convention: each box 10x10 = 100, overlap 5x10 = 50 -> 50 / 150
    assert box_iou(a, b, legacy=True).item() == pytest.approx(1 / 3)
    # continuous: each 9x9 = 81, overlap 4x9 = 36 -> 36 / 126
    assert box_iou(a, b, legacy=False).item() == pytest.approx(36 / 126)
    assert box_iou_np(a.numpy(), b.numpy()).item() == pytest.approx(1 / 3)


def test_resize_and_convert_round_trip():
    b = BoxList(torch.tensor([[2.0, 4.0, 11.0, 13.0]]), (20, 20))
    assert b.convert("xywh").bbox.tolist() == [[2.0, 4.0, 10.0, 10.0]]
    assert b.convert("xywh").convert("xyxy").bbox.tolist() == b.bbox.tolist()
    assert b.resize((40, 10)).bbox.tolist() == [[4.0, 2.0, 22.0, 6.5]]


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        BoxList(torch.zeros(3, 5), (10, 10))
    with pytest.raises(ValueError, match="differ in image size"):
        cat_boxlist([BoxList(torch.zeros(1, 4), (10, 10)), BoxList(torch.zeros(1, 4), (11, 10))])
    with pytest.raises(IndexError, match="mask"):
        _boxes()[torch.tensor([True, False])]
    with pytest.raises(KeyError, match="labels"):
        BoxList(torch.zeros(1, 4), (10, 10)).get_field("labels")


def test_box_selection_refuses_per_pair_prediction_fields():
    b = BoxList(torch.zeros(2, 4), (10, 10))
    b.add_field("rel_pair_idxs", torch.tensor([[0, 1], [1, 0]]))
    with pytest.raises(ValueError, match="rel_pair_idxs"):
        b[torch.tensor([1, 0])]
