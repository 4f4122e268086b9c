import math

import pytest
import torch

from sgg.config import load_config
from sgg.modeling.roi_heads.relation_head.layers.frequency_bias import FrequencyBias
from sgg.modeling.roi_heads.relation_head.inference import (RelationPostProcessor, object_prediction_nms,
                                                             prediction_to_eval_fields)
from sgg.modeling.roi_heads.relation_head.losses import (RelationLossInputs, build_relation_losses,
                                                          parse_loss_spec)
from sgg.modeling.roi_heads.relation_head.sampling import (all_ordered_pairs, inference_pairs,
                                                            sample_detection_pairs, sample_gt_box_pairs)
from sgg.structures import BoxList


def _gt(num_boxes=4, rels=((0, 1, 3), (2, 0, 5))):
    boxes = torch.tensor([[0, 0, 10, 10], [5, 5, 15, 15], [30, 30, 40, 40], [50, 0, 60, 10]],
                         dtype=torch.float32)[:num_boxes]
    t = BoxList(boxes, (100, 100))
    t.add_field("labels", torch.tensor([1, 2, 3, 4])[:num_boxes])
    matrix = torch.zeros(num_boxes, num_boxes, dtype=torch.long)
    for s, o, p in rels:
        matrix[s, o] = p
    t.add_field("relation", matrix)
    t.add_field("relation_tuple", torch.tensor(rels, dtype=torch.long).reshape(-1, 3))
    return t


def test_all_ordered_pairs_excludes_self_pairs():
    assert all_ordered_pairs(3).tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    assert all_ordered_pairs(1).shape == (0, 2) and all_ordered_pairs(0).shape == (0, 2)


def test_inference_pairs_with_overlap_requirement():
    t = _gt()
    assert len(inference_pairs(t)) == 12
    # only boxes 0 and 1 overlap
    assert inference_pairs(t, require_overlap=True).tolist() == [[0, 1], [1, 0]]


def test_gt_box_sampling_counts_and_labels():
    sample = sample_gt_box_pairs(_gt(), batch_size=8, positive_fraction=0.25, generator=torch.Generator().manual_seed(0))
    pairs, labels = sample.pair_idxs.tolist(), sample.labels.tolist()
    assert len(pairs) == 8
    fg = {tuple(p): l for p, l in zip(pairs, labels) if l > 0}
    assert fg == {(0, 1): 3, (2, 0): 5}  # num_pos = 2 keeps both
    bg = [tuple(p) for p, l in zip(pairs, labels) if l == 0]
    assert len(bg) == 6 and len(set(bg)) == 6
    assert all(p not in {(0, 1), (2, 0)} and p[0] != p[1] for p in bg)
    assert sample.binary[0, 1] == 1 and sample.binary[1, 0] == 1 and sample.binary[0, 2] == 1
    assert sample.binary.sum() == 4


def test_gt_box_sampling_caps_foreground():
    sample = sample_gt_box_pairs(_gt(), batch_size=4, positive_fraction=0.25)
    assert (sample.labels > 0).sum() == 1 and len(sample.labels) == 4


def test_detection_sampling_matches_label_and_iou():
    target = _gt()
    proposals = BoxList(torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [5, 5, 15, 15], [30, 30, 40, 40],
                                      [30, 30, 40, 40]], dtype=torch.float32), (100, 100))
    # proposal 1 overlaps GT 0 well but has the wrong label; proposal 4 has label 0 (background)
    proposals.add_field("labels", torch.tensor([1, 3, 2, 3, 0]))
    sample = sample_detection_pairs(proposals, target, batch_size=10, positive_fraction=0.5,
                                    generator=torch.Generator().manual_seed(0))
    fg = {tuple(p): l for p, l in zip(sample.pair_idxs.tolist(), sample.labels.tolist()) if l > 0}
    assert fg == {(0, 2): 3, (3, 0): 5}
    bg = [tuple(p) for p, l in zip(sample.pair_idxs.tolist(), sample.labels.tolist()) if l == 0]
    # background pairs only between distinct fg-labelled proposals (0..3), minus the two fg pairs: 12 - 2 = 10,
    # capped at batch_size - num_fg = 8
    assert len(bg) == 8 and all(4 not in p and p[0] != p[1] for p in bg)


def test_detection_sampling_keeps_at_most_n_per_gt_relation():
    target = _gt(rels=((0, 1, 3),))
    boxes = torch.tensor([[0, 0, 10, 10]] * 3 + [[5, 5, 15, 15]] * 3, dtype=torch.float32)
    proposals = BoxList(boxes, (100, 100))
    proposals.add_field("labels", torch.tensor([1, 1, 1, 2, 2, 2]))
    sample = sample_detection_pairs(proposals, target, batch_size=20, positive_fraction=1.0,
                                    num_sample_per_gt_rel=4)
    assert int((sample.labels == 3).sum()) == 4  # 9 combinations, 4 sampled


def test_frequency_bias_lookups():
    pred_dist = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(2, 2, 3)
    bias = FrequencyBias(pred_dist)
    assert bias.index_with_labels(torch.tensor([[1, 0]])).tolist() == [[6.0, 7.0, 8.0]]
    # soft lookup with one-hot distributions equals the hard lookup
    soft = bias.index_with_probability(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]))
    assert soft.tolist() == [[6.0, 7.0, 8.0]]
    # a 50/50 subject distribution averages rows (0,1) and (1,1)
    soft = bias.index_with_probability(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.0, 1.0]]))
    assert soft.tolist() == [[6.0, 7.0, 8.0]]
    with pytest.raises(ValueError, match="pred_dist"):
        FrequencyBias(torch.zeros(2, 3, 4))


def test_loss_spec_parsing_and_weights():
    assert parse_loss_spec(["RelationCE", "ObjectCE:0.5"]) == [("RelationCE", 1.0), ("ObjectCE", 0.5)]
    with pytest.raises(ValueError, match="NAME:WEIGHT"):
        parse_loss_spec(["RelationCE:heavy"])
    cfg = load_config(None, ["MODEL.ROI_RELATION_HEAD.LOSS", "('RelationCE:2.0', 'ObjectCE')"])
    losses = build_relation_losses(cfg)
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p(label 1) = 3/4
    out = losses(RelationLossInputs(rel_logits=logits, rel_labels=torch.tensor([1]),
                                    obj_logits=torch.tensor([[0.0, 0.0]]), obj_labels=torch.tensor([0])))
    assert out["loss_rel"].item() == pytest.approx(-2.0 * math.log(0.75))
    assert out["loss_refine_obj"].item() == pytest.approx(math.log(2.0))


def test_unknown_loss_name_lists_registered():
    cfg = load_config(None, ["MODEL.ROI_RELATION_HEAD.LOSS", "('FocalLoss',)"])
    with pytest.raises(KeyError, match="RelationCE"):
        build_relation_losses(cfg)


def test_object_prediction_nms_labels_each_box_once():
    boxes_per_cls = torch.tensor([[[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]],
                                  [[1, 1, 10, 10], [1, 1, 10, 10], [1, 1, 10, 10]]], dtype=torch.float32)
    # both boxes prefer class 1; the second box overlaps the first, so it falls back to class 2
    logits = torch.log(torch.tensor([[0.1, 0.8, 0.1], [0.1, 0.6, 0.3]]))
    assert object_prediction_nms(boxes_per_cls, logits, 0.5).tolist() == [1, 2]
    # with a threshold the overlap (IoU 0.83) does not reach, both keep class 1
    assert object_prediction_nms(boxes_per_cls, logits, 0.9).tolist() == [1, 1]


def test_post_processor_sorts_by_triplet_score():
    boxes = BoxList(torch.tensor([[0, 0, 5, 5], [5, 5, 9, 9], [1, 1, 3, 3]], dtype=torch.float32), (10, 10))
    obj_logits = torch.log(torch.tensor([[0.0001, 0.9, 0.0999], [0.0001, 0.5, 0.4999], [0.0001, 0.2, 0.7999]]))
    pairs = torch.tensor([[0, 1], [1, 2], [2, 0]])
    rel_logits = torch.log(torch.tensor([[0.5, 0.4, 0.1], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]]))
    out = RelationPostProcessor("sgcls")(boxes, obj_logits, rel_logits, pairs)
    # object scores ~ 0.9, 0.5, 0.8; triplets: (0,1) 0.4*.45=.18, (1,2) .8*.4=.32, (2,0) .6*.72=.432
    assert out.get_field("rel_pair_idxs").tolist() == [[2, 0], [1, 2], [0, 1]]
    assert out.get_field("pred_rel_labels").tolist() == [2, 2, 1]
    assert out.get_field("pred_labels").tolist() == [1, 1, 2]
    fields = prediction_to_eval_fields(out)
    assert fields["rel_scores"].shape == (3, 3) and torch.allclose(fields["rel_scores"].sum(1), torch.ones(3))


def test_post_processor_predcls_uses_gt_labels_and_unit_scores():
    boxes = BoxList(torch.tensor([[0, 0, 5, 5], [5, 5, 9, 9]], dtype=torch.float32), (10, 10))
    boxes.add_field("labels", torch.tensor([2, 1]))
    out = RelationPostProcessor("predcls", max_pairs=1)(boxes, torch.zeros(2, 3), torch.zeros(2, 3),
                                                        torch.tensor([[0, 1], [1, 0]]))
    assert out.get_field("pred_labels").tolist() == [2, 1]
    assert out.get_field("pred_scores").tolist() == [1.0, 1.0]
    assert len(out.get_field("rel_pair_idxs")) == 1  # capped


def test_post_processor_handles_no_pairs():
    boxes = BoxList(torch.tensor([[0, 0, 5, 5]], dtype=torch.float32), (10, 10))
    out = RelationPostProcessor("sgcls")(boxes, torch.zeros(1, 3), torch.zeros(0, 3), torch.zeros(0, 2).long())
    assert out.get_field("rel_pair_idxs").shape == (0, 2) and out.get_field("pred_rel_labels").numel() == 0
