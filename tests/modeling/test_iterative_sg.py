"""IterativeSG (METHODS.md 6): matcher, loss weights, relation-box target, shared assignment, zero-initialised
conditioning, post-processing, the model end to end on a tiny config, and its bad-input paths."""
import itertools
import logging
import math

import numpy as np
import pytest
import torch

from sgg.config import load_config
from sgg.evaluation import SceneGraphEvaluator
from sgg.modeling.detector.detectors import meta_architecture_name
from sgg.modeling.iterative_sg import (IterativeSceneGraph, IterativeSGPostProcessor, TripletMatcher, TripletTargets,
                                       build_triplet_targets, hungarian_match, predicate_loss_weights,
                                       relation_boxes_from_centres, triplet_cost_matrix)
from sgg.modeling.iterative_sg.losses import IterativeSGCriterion
from sgg.modeling.iterative_sg.transformer import IterativeDecoder
from sgg.modeling.roi_heads.relation_head.inference import groundtruth_to_eval_fields, prediction_to_eval_fields
from sgg.structures import BoxList, to_image_list

NUM_CLASSES, NUM_PREDICATES = 6, 5
MODES = {"predcls": (True, True), "sgcls": (True, False), "sgdet": (False, False)}


def _statistics():
    return {"obj_classes": ["__background__"] + [f"c{i}" for i in range(1, NUM_CLASSES)],
            "rel_classes": ["__background__"] + [f"p{i}" for i in range(1, NUM_PREDICATES)],
            "predicate_counts": np.array([0, 70, 20, 9, 1])}


def _cfg(mode="sgdet", *extra):
    box, label = MODES[mode]
    opts = ["MODEL.META_ARCHITECTURE", "IterativeSceneGraph", "MODEL.RELATION_ON", "True",
            "MODEL.BACKBONE.CONV_BODY", "tiny-FPN", "MODEL.RANDOM_INIT_BACKBONE", "True",
            "MODEL.BACKBONE.OUT_CHANNELS", "16", "MODEL.TINY_BACKBONE.STAGE_CHANNELS", "(8, 8, 16, 16)",
            "MODEL.ROI_BOX_HEAD.NUM_CLASSES", str(NUM_CLASSES), "MODEL.ROI_RELATION_HEAD.NUM_CLASSES",
            str(NUM_PREDICATES), "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", str(box),
            "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", str(label), "MODEL.DETR.FEATURE_STRIDE", "16",
            "MODEL.DETR.HIDDEN_DIM", "16", "MODEL.DETR.NHEADS", "2", "MODEL.DETR.DIM_FEEDFORWARD", "32",
            "MODEL.DETR.ENC_LAYERS", "1", "MODEL.DETR.DEC_LAYERS", "2", "MODEL.DETR.NUM_OBJECT_QUERIES", "6",
            "MODEL.DETR.NUM_RELATION_QUERIES", "6", "MODEL.DETR.DROPOUT", "0.0", *extra]
    return load_config(None, [str(o) for o in opts])


def _model(*args):
    return IterativeSceneGraph.from_config(_cfg(*args), _statistics())


def _target(boxes, labels, rels, size=(96, 64)):
    t = BoxList(torch.tensor(boxes, dtype=torch.float32), size)
    t.add_field("labels", torch.tensor(labels))
    t.add_field("relation_tuple", torch.tensor(rels, dtype=torch.long).reshape(-1, 3))
    return t


def _batch():
    torch.manual_seed(0)
    images = to_image_list([torch.randn(3, 64, 96), torch.randn(3, 60, 80)], 32)
    targets = [_target([[2, 2, 30, 30], [20, 10, 60, 40], [50, 30, 90, 60]], [1, 2, 3], [[0, 1, 1], [1, 2, 4]]),
               _target([[10, 10, 40, 40], [45, 5, 78, 50]], [5, 2], [[0, 1, 3]], size=(80, 60))]
    return images, targets


def _probabilities_as_logits(probs):
    return torch.tensor(probs).log()


# ------------------------------------------------------------------------------------------------------ matching
def _brute_force_minimum(cost):
    q, g = cost.shape
    return min(sum(float(cost[p[k], k]) for k in range(g)) for p in itertools.permutations(range(q), g))


@pytest.mark.parametrize("seed", range(8))
def test_hungarian_matching_equals_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    queries = 5
    gts = 1 + seed % 5
    cost = torch.randn(queries, gts, generator=g)
    rows, cols = hungarian_match(cost)
    assert len(rows) == gts and sorted(cols.tolist()) == list(range(gts))
    assert len(set(rows.tolist())) == gts  # each query at most once
    assert math.isclose(float(cost[rows, cols].sum()), _brute_force_minimum(cost), abs_tol=1e-5)


def test_triplet_cost_sums_branches_and_layers_by_hand():
    # One query, one GT triplet, two layers. Probabilities of the GT classes: subject 0.5, object 0.25, predicate 0.4.
    sub = _probabilities_as_logits([[0.2, 0.5, 0.3]])
    obj = _probabilities_as_logits([[0.25, 0.25, 0.5]])
    rel = _probabilities_as_logits([[0.6, 0.4]])
    same = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    shifted = torch.tensor([[0.6, 0.5, 0.2, 0.2]])  # cx + 0.1: L1 0.1; xyxy [.5,.4,.7,.6] vs [.4,.4,.6,.6]
    layer = {"subject_logits": sub, "object_logits": obj, "relation_logits": rel,
             "subject_boxes": shifted, "object_boxes": same, "relation_boxes": same}
    outputs = {k: torch.stack([v, v]) for k, v in layer.items()}
    target = TripletTargets(torch.tensor([1]), torch.tensor([2]), torch.tensor([1]), same, same, same)
    cost = triplet_cost_matrix(outputs, target, class_weight=1.0, l1_weight=5.0, giou_weight=2.0)
    # per layer: class -(0.5 + 0.5 + 0.4) = -1.4; subject box 5 * 0.1 - 2 * GIoU, GIoU = IoU 0.02 / 0.06 = 1/3
    # (the enclosing box equals the union); object and relation boxes: 0 - 2 * 1 each.
    per_layer = -1.4 + (0.5 - 2.0 / 3.0) - 2.0 - 2.0
    assert cost.shape == (1, 1)
    assert math.isclose(float(cost[0, 0]), 2 * per_layer, rel_tol=1e-5)


def _two_layer_outputs():
    """Two queries, two GT triplets (labels all 1, boxes A and B). Layer 0: query 0 on A, query 1 on B. Layer 1:
    query 0 on B, query 1 half-way. Alone, layer 1 matches query 0 -> B; summed, query 0 -> A, query 1 -> B."""
    box_a, box_b = [0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]
    logits = torch.zeros(2, 3)
    rel_logits = torch.zeros(2, 2)
    layer0 = torch.tensor([box_a, box_b])
    layer1 = torch.tensor([box_b, [0.5, 0.5, 0.2, 0.2]])
    outputs = {}
    for name in ("subject", "object", "relation"):
        outputs[f"{name}_logits"] = torch.stack([logits, logits])[:, None] if name != "relation" else \
            torch.stack([rel_logits, rel_logits])[:, None]
        outputs[f"{name}_boxes"] = torch.stack([layer0, layer1])[:, None]
    boxes = torch.tensor([box_a, box_b])
    target = TripletTargets(torch.tensor([1, 1]), torch.tensor([1, 1]), torch.tensor([1, 1]), boxes, boxes, boxes)
    return outputs, target


def test_one_assignment_is_shared_by_all_layers():
    outputs, target = _two_layer_outputs()
    matcher = TripletMatcher(1.0, 5.0, 2.0)
    joint = matcher(outputs, [target], [0, 1])[0]
    last_only = matcher(outputs, [target], [1])[0]
    assert joint[1][joint[0] == 0].item() == 0  # summed cost: query 0 -> GT 0 (box A)
    assert last_only[1][last_only[0] == 0].item() == 1  # the last layer alone would match query 0 to box B
    criterion = IterativeSGCriterion(3, torch.tensor([0.1, 1.0]), 0.1, 1.0, 5.0, 2.0)
    losses = criterion(outputs, [target], [joint], [0, 1])
    by_layer = [criterion.layer_losses({k: v[i] for k, v in outputs.items()}, [target], [joint], 2.0)
                for i in (0, 1)]
    for key, value in losses.items():
        assert torch.allclose(value, by_layer[0][key] + by_layer[1][key])
    # layer 0 with the shared assignment is exact: no box loss there
    assert float(by_layer[0]["loss_subject_l1"]) == pytest.approx(0.0, abs=1e-6)


def test_model_matches_once_per_batch_over_every_layer(monkeypatch):
    model = _model()
    calls = []
    original = model.matcher.__class__.__call__

    def spy(self, outputs, targets, layers):
        calls.append(list(layers))
        return original(self, outputs, targets, layers)

    monkeypatch.setattr(TripletMatcher, "__call__", spy)
    images, targets = _batch()
    model.train()
    model(images, targets)
    assert calls == [[0, 1]]


# -------------------------------------------------------------------------------------------------- loss weights
def test_predicate_loss_weights_by_hand():
    # 1000 triplets: f = 0.2, 0.001, 0.799; alpha 0.07, U 1.5 (beta 0.75)
    weights = predicate_loss_weights([0, 200, 1, 799], alpha=0.07, undersample_param=1.5, no_relation_weight=0.1)
    # p1: sqrt(0.07 / 0.20001) < 1 -> 1; p2: sqrt(0.07 / 0.00101) = sqrt(69.3069) = 8.32508, ** 1.5 = 8.32508 * 2.88532 = 24.0205;
    # p3: 1. Same as max(1, (0.07 / 0.00101) ** 0.75) = 69.3069 ** 0.75.
    assert weights.tolist() == pytest.approx([0.1, 1.0, 24.0205, 1.0], rel=1e-4)
    assert float(weights[2]) == pytest.approx((0.07 / 0.00101) ** 0.75, rel=1e-6)
    plain = predicate_loss_weights([0, 200, 1, 799], 0.07, 1.5, 0.1, reweight=False)
    assert plain.tolist() == pytest.approx([0.1, 1.0, 1.0, 1.0])


def test_predicate_loss_weights_reject_bad_counts():
    with pytest.raises(ValueError, match="OVERSAMPLE_PARAM"):
        predicate_loss_weights([0, 1, 2], alpha=0.0, undersample_param=1.5, no_relation_weight=0.1)
    with pytest.raises(ValueError, match="all are zero"):
        predicate_loss_weights([5, 0, 0], alpha=0.07, undersample_param=1.5, no_relation_weight=0.1)


def test_model_uses_weights_of_the_training_frequencies():
    model = IterativeSceneGraph.from_config(_cfg(), _statistics())
    # counts 70, 20, 9, 1 of 100: w = max(1, sqrt(0.07 / (f + 1e-5))) ** 1.5 -> 1, 1, 1, sqrt(6.99301) ** 1.5 = 2.64443 * 1.62617 = 4.3003
    assert model.criterion.predicate_weights.tolist() == pytest.approx([0.1, 1.0, 1.0, 1.0, 4.3003], rel=1e-4)
    assert model.criterion.object_weights.tolist() == pytest.approx([0.1] + [1.0] * (NUM_CLASSES - 1))


# ------------------------------------------------------------------------------------------------------ targets
def test_relation_box_spans_the_subject_and_object_centres():
    subject = torch.tensor([[0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 20.0, 20.0]])
    objects = torch.tensor([[40.0, 20.0, 60.0, 60.0], [40.0, 0.0, 60.0, 20.0]])
    boxes = relation_boxes_from_centres(subject, objects, (100, 80))
    # centres (10, 10) and (50, 40): midpoint (30, 25), size 40 x 30, divided by 100 x 80
    assert boxes[0].tolist() == pytest.approx([0.3, 0.3125, 0.4, 0.375])
    # centres (10, 10) and (50, 10) share a row: no area -> the subject box (10, 10, 20, 20) / (100, 80)
    assert boxes[1].tolist() == pytest.approx([0.1, 0.125, 0.2, 0.25])


def test_triplet_targets_from_a_boxlist():
    target = _target([[0, 0, 20, 20], [40, 20, 60, 60]], [3, 4], [[1, 0, 2]], size=(100, 80))
    triplets = build_triplet_targets(target, max_triplets=10)
    assert triplets.subject_labels.tolist() == [4] and triplets.object_labels.tolist() == [3]
    assert triplets.predicate_labels.tolist() == [2]
    assert triplets.subject_boxes[0].tolist() == pytest.approx([0.5, 0.5, 0.2, 0.5])
    assert triplets.relation_boxes[0].tolist() == pytest.approx([0.3, 0.3125, 0.4, 0.375])


def test_more_gt_triplets_than_queries_keeps_the_first_with_a_warning(caplog):
    rels = [[0, 1, 1], [1, 0, 2], [0, 2, 3], [2, 1, 4]]
    target = _target([[0, 0, 20, 20], [40, 20, 60, 60], [10, 10, 30, 50]], [1, 2, 3], rels, size=(100, 80))
    with caplog.at_level(logging.WARNING, logger="sgg.modeling.iterative_sg.targets"):
        triplets = build_triplet_targets(target, max_triplets=3)
    assert triplets.predicate_labels.tolist() == [1, 2, 3]  # the first three in annotation order
    assert "4 GT triplets" in caplog.text and "NUM_RELATION_QUERIES" in caplog.text and "1 dropped" in caplog.text


def test_model_trains_on_an_image_with_more_triplets_than_queries(caplog):
    model = _model("sgdet", "MODEL.DETR.NUM_OBJECT_QUERIES", "1", "MODEL.DETR.NUM_RELATION_QUERIES", "1")
    images, targets = _batch()
    model.train()
    with caplog.at_level(logging.WARNING):
        losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    assert "dropped" in caplog.text


# ------------------------------------------------------------------------------------------ zero-init conditioning
def test_zero_initialised_conditioning_leaves_three_independent_decoders():
    torch.manual_seed(0)
    d, queries, cells, batch = 16, 5, 12, 2
    decoder = IterativeDecoder(d, 2, 32, 0.0, num_layers=3).eval()
    decoder.zero_init()
    memory, memory_pos = torch.randn(batch, cells, d), torch.randn(batch, cells, d)
    mask = torch.zeros(batch, cells, dtype=torch.bool)
    mask[1, -3:] = True
    pos = {name: torch.randn(batch, queries, d) for name in ("subject", "object", "relation")}
    with torch.no_grad():
        sub, obj, rel = decoder(memory, memory_pos, mask, pos["subject"], pos["object"], pos["relation"])

        def plain(layers, query_pos, norm):
            x, outs = torch.zeros_like(query_pos), []
            for layer in layers:
                x = layer(x, memory, query_pos, memory_pos, mask)
                outs.append(norm(x))
            return torch.stack(outs)

        assert torch.allclose(sub, plain(decoder.subject_layers, pos["subject"], decoder.entity_norm), atol=1e-6)
        assert torch.allclose(obj, plain(decoder.object_layers, pos["object"], decoder.entity_norm), atol=1e-6)
        assert torch.allclose(rel, plain(decoder.relation_layers, pos["relation"], decoder.relation_norm), atol=1e-6)
        # the coupling is real: once the projections are non-zero the object decoder sees the subjects
        torch.nn.init.normal_(decoder.object_conditioning[0].linear.weight)
        _, coupled, _ = decoder(memory, memory_pos, mask, pos["subject"], pos["object"], pos["relation"])
    assert not torch.allclose(coupled, obj, atol=1e-4)


def test_transformer_starts_with_zero_conditioning_projections():
    model = _model()
    decoder = model.transformer.decoder
    zero = [m.linear for m in [*decoder.object_conditioning, *decoder.relation_conditioning,
                               *decoder.refine["subject"], *decoder.refine["object"], *decoder.refine["relation"]]]
    assert len(zero) == 2 + 2 + 3 * 1  # DEC_LAYERS 2: conditioning per layer, refinement between layers
    assert all(not m.weight.detach().any() and not m.bias.detach().any() for m in zero)


# ------------------------------------------------------------------------------------------------- inference
def test_post_processing_by_hand():
    # 3 queries. Subject boxes of queries 0 and 1 coincide with the same class (NMS merges them); object boxes are
    # distinct. Probabilities: index 0 is the background.
    box1, box2, box3 = [0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5], [0.25, 0.75, 0.5, 0.5]
    outputs = {
        "subject_logits": _probabilities_as_logits([[0.1, 0.9, 0.0 + 1e-9], [0.2, 0.8, 1e-9], [0.5, 1e-9, 0.5]]),
        "object_logits": _probabilities_as_logits([[0.3, 1e-9, 0.7], [0.4, 1e-9, 0.6], [0.5, 0.5, 1e-9]]),
        "relation_logits": _probabilities_as_logits([[0.5, 0.5, 1e-9], [0.5, 0.5, 1e-9], [0.2, 1e-9, 0.8]]),
        "subject_boxes": torch.tensor([box1, box1, box3]),
        "object_boxes": torch.tensor([box2, box2, box1]),
    }
    prediction = IterativeSGPostProcessor(nms_thresh=0.5)(outputs, (40, 100))  # (h, w)
    # pooled: s0 (c1, .9), s1 (c1, .8), s2 (c2, .5), o0 (c2, .7), o1 (c2, .6), o2 (c1, .5); NMS keeps s0, o0, s2
    # (o1 = o0 suppressed, s1 = s0 suppressed, o2 = box1 like s0 with the same class 1 -> suppressed)
    assert prediction.get_field("pred_labels").tolist() == [1, 2, 2]
    assert prediction.get_field("pred_scores").tolist() == pytest.approx([0.9, 0.7, 0.5])
    assert prediction.bbox[0].tolist() == pytest.approx([0.0, 0.0, 50.0, 20.0])
    # triplets: q0 (s0->e0, o0->e1, p1) 0.5*.9*.7 = .315; q1 (e0, e1, p1) .5*.8*.6 = .24 (duplicate -> dropped);
    # q2 (s2->e2, o2->e0, p2) .8*.5*.5 = .2
    assert prediction.get_field("rel_pair_idxs").tolist() == [[0, 1], [2, 0]]
    assert prediction.get_field("pred_rel_labels").tolist() == [1, 2]
    assert prediction.get_field("pred_rel_scores").shape == (2, 3)
    assert prediction.size == (100, 40)
    # the model's own ranking for the evaluator: the query's s_rel * s_sub * s_obj, in the output order
    assert prediction.get_field("pred_rel_rank_scores").tolist() == pytest.approx([0.315, 0.2])
    # TEST.RELATION.MAX_PAIRS_STORED 1 keeps the best de-duplicated triplet (not the duplicate query 1)
    capped = IterativeSGPostProcessor(nms_thresh=0.5, max_pairs=1)(outputs, (40, 100))
    assert capped.get_field("rel_pair_idxs").tolist() == [[0, 1]]
    assert capped.get_field("pred_rel_rank_scores").tolist() == pytest.approx([0.315])
    # the cap counts de-duplicated triplets: 2 keeps both (capping the 3 queries first would lose query 2)
    capped = IterativeSGPostProcessor(nms_thresh=0.5, max_pairs=2)(outputs, (40, 100))
    assert capped.get_field("rel_pair_idxs").tolist() == [[0, 1], [2, 0]]


def test_entity_nms_sees_the_unclipped_boxes():
    # Two subject boxes of class 1 (normalised xyxy): A = (-0.6, 0, 0.4, 1) crosses the left border, B = (0, 0, 0.4, 1).
    # Unclipped their IoU is 0.4 / 1.0 = 0.4 < 0.5: both are kept, as in the reference. Clipped first, A would become
    # B (IoU 1) and swallow it, merging the two triplets into one.
    outputs = {"subject_logits": _probabilities_as_logits([[0.1, 0.9, 1e-9], [0.2, 0.8, 1e-9]]),
               "object_logits": _probabilities_as_logits([[0.3, 1e-9, 0.7], [0.3, 1e-9, 0.7]]),
               "relation_logits": _probabilities_as_logits([[0.5, 0.5], [0.6, 0.4]]),
               "subject_boxes": torch.tensor([[-0.1, 0.5, 1.0, 1.0], [0.2, 0.5, 0.4, 1.0]]),
               "object_boxes": torch.tensor([[0.8, 0.5, 0.2, 0.2], [0.8, 0.5, 0.2, 0.2]])}
    prediction = IterativeSGPostProcessor(nms_thresh=0.5)(outputs, (50, 100))  # (h, w)
    # kept: A (0.9), C (0.7, the object box), B (0.8): NMS output in descending score order A, B, C
    assert prediction.get_field("pred_scores").tolist() == pytest.approx([0.9, 0.8, 0.7])
    # output boxes are clipped: A and B both become (0, 0, 40, 50)
    torch.testing.assert_close(prediction.bbox, torch.tensor([[0.0, 0, 40, 50], [0, 0, 40, 50], [70, 20, 90, 30]]))
    assert prediction.get_field("rel_pair_idxs").tolist() == [[0, 2], [1, 2]]


def test_query_ranking_can_be_left_to_the_evaluator():
    outputs = {"subject_logits": torch.zeros(2, 3), "object_logits": torch.zeros(2, 3),
               "relation_logits": torch.zeros(2, 3), "subject_boxes": torch.rand(2, 4) * 0.5 + 0.2,
               "object_boxes": torch.rand(2, 4) * 0.5 + 0.2}
    prediction = IterativeSGPostProcessor(0.5, own_ranking=False)(outputs, (50, 50))
    assert not prediction.has_field("pred_rel_rank_scores")
    assert "rel_rank_scores" not in prediction_to_eval_fields(prediction)
    assert _model().postprocessor.own_ranking  # the reference's order by default
    assert not _model("sgdet", "MODEL.DETR.EVAL_QUERY_RANKING", "False").postprocessor.own_ranking


def test_one_predicate_per_pair_keeps_the_best_triplet_of_each_pair():
    box_a, box_b = [0.25, 0.25, 0.3, 0.3], [0.75, 0.75, 0.3, 0.3]
    outputs = {"subject_logits": torch.tensor([[0.0, 5.0], [0.0, 5.0]]),
               "object_logits": torch.tensor([[0.0, 5.0], [0.0, 5.0]]),
               "relation_logits": _probabilities_as_logits([[0.1, 0.3, 0.6], [0.1, 0.7, 0.2]]),
               "subject_boxes": torch.tensor([box_a, box_a]), "object_boxes": torch.tensor([box_b, box_b])}
    both = IterativeSGPostProcessor(0.5)(outputs, (50, 50))
    assert both.get_field("pred_rel_labels").tolist() == [1, 2]  # distinct predicates: both kept, best first
    one = IterativeSGPostProcessor(0.5, one_predicate_per_pair=True)(outputs, (50, 50))
    assert one.get_field("pred_rel_labels").tolist() == [1]


# ------------------------------------------------------------------------------------------------ end to end
def test_sgdet_forward_backward_and_evaluable_predictions():
    model = _model()
    images, targets = _batch()
    model.train()
    losses = model(images, targets)
    assert set(losses) == {f"loss_{b}_{t}" for b in ("subject", "object") for t in ("ce", "l1", "giou")} | {
        "loss_predicate_ce", "loss_relation_l1", "loss_relation_giou"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    for part in (model.backbone, model.transformer.encoder, model.transformer.decoder.relation_layers,
                 model.transformer.relation_classifier, model.transformer.box_head):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    model.eval()
    with torch.no_grad():
        predictions = model(images)
    evaluator = SceneGraphEvaluator(mode="sgdet", num_predicates=NUM_PREDICATES,
                                    predicate_names=_statistics()["rel_classes"])
    for prediction, target, (h, w) in zip(predictions, targets, images.image_sizes):
        assert prediction.size == (w, h)
        pairs = prediction.get_field("rel_pair_idxs")
        assert pairs.shape[1] == 2 and 0 < len(pairs) <= 6
        assert int(pairs.max()) < len(prediction)
        assert prediction.get_field("pred_rel_scores").shape == (len(pairs), NUM_PREDICATES)
        rank_scores = prediction.get_field("pred_rel_rank_scores")  # handed to the evaluator, best first
        assert rank_scores.shape == (len(pairs),) and bool((rank_scores[:-1] >= rank_scores[1:]).all())
        labels = prediction.get_field("pred_labels")
        assert int(labels.min()) >= 1 and int(labels.max()) < NUM_CLASSES
        target.add_field("relation", torch.zeros(len(target), len(target), dtype=torch.long))
        evaluator.update(groundtruth_to_eval_fields(target), prediction_to_eval_fields(prediction))
    assert 0.0 <= evaluator.compute()["R@50"] <= 1.0


def test_training_loss_falls_on_one_batch():
    torch.manual_seed(0)
    model = _model()
    images, targets = _batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    first = None
    for _ in range(15):
        loss = sum(model(images, targets).values())
        first = float(loss.detach()) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.8 * first


def test_without_deep_supervision_only_the_last_layer_is_supervised():
    model = _model("sgdet", "MODEL.DETR.DEEP_SUPERVISION", "False")
    assert model.supervised_layers(2) == [1]
    model.train()
    images, targets = _batch()
    assert torch.isfinite(sum(model(images, targets).values()))


def test_registered_as_a_meta_architecture():
    from sgg.modeling.registry import META_ARCHITECTURES

    assert META_ARCHITECTURES.get(meta_architecture_name(_cfg())) is IterativeSceneGraph


# ------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_gt_box_protocols_are_refused(mode):
    with pytest.raises(ValueError, match="USE_GT_BOX False") as err:
        IterativeSceneGraph.from_config(_cfg(mode), _statistics())
    assert mode in str(err.value)


def test_unequal_query_counts_are_refused():
    with pytest.raises(ValueError, match="NUM_OBJECT_QUERIES .* must be equal"):
        IterativeSceneGraph.from_config(_cfg("sgdet", "MODEL.DETR.NUM_OBJECT_QUERIES", "5"), _statistics())


def test_missing_feature_stride_and_test_index_are_explained():
    with pytest.raises(ValueError, match="FEATURE_STRIDE 12"):
        IterativeSceneGraph.from_config(_cfg("sgdet", "MODEL.DETR.FEATURE_STRIDE", "12"), _statistics())
    with pytest.raises(ValueError, match="TEST_INDEX 2"):
        IterativeSceneGraph.from_config(_cfg("sgdet", "MODEL.DETR.TEST_INDEX", "2"), _statistics())


def test_class_count_mismatch_is_explained():
    with pytest.raises(ValueError, match="MODEL.ROI_RELATION_HEAD.NUM_CLASSES is 7"):
        IterativeSceneGraph.from_config(_cfg("sgdet", "MODEL.ROI_RELATION_HEAD.NUM_CLASSES", "7"), _statistics())


def test_backbone_from_a_detector_checkpoint(tmp_path):
    model = IterativeSceneGraph.from_config(_cfg(), _statistics())
    donor = IterativeSceneGraph.from_config(_cfg(), _statistics())
    state = {f"backbone.{k}": v for k, v in donor.backbone.state_dict().items()}
    state["rpn.head.conv.weight"] = torch.zeros(1)  # the rest of a detector checkpoint is ignored
    path = tmp_path / "detector.pth"
    torch.save({"model": state}, path)
    model.load_pretrained_detector(str(path))
    for key, value in donor.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value)
    # a SceneGraphRCNN checkpoint keeps the detector under "detector."
    torch.save({"model": {f"detector.{k}": v for k, v in state.items()}}, tmp_path / "sg.pth")
    model.load_pretrained_detector(str(tmp_path / "sg.pth"))


def test_backbone_checkpoint_that_does_not_fit_is_explained(tmp_path):
    model = IterativeSceneGraph.from_config(_cfg(), _statistics())
    other = IterativeSceneGraph.from_config(_cfg("sgdet", "MODEL.BACKBONE.OUT_CHANNELS", "24"), _statistics())
    path = tmp_path / "other.pth"
    torch.save({"model": {f"backbone.{k}": v for k, v in other.backbone.state_dict().items()}}, path)
    with pytest.raises(ValueError, match="does not fit") as err:
        model.load_pretrained_detector(str(path))
    assert "MODEL.PRETRAINED_DETECTOR_CKPT" in str(err.value) and "other shapes" in str(err.value)
    torch.save({"model": {"roi_heads.weight": torch.zeros(1)}}, tmp_path / "none.pth")
    with pytest.raises(ValueError, match="holds no backbone weights"):
        model.load_pretrained_detector(str(tmp_path / "none.pth"))
    with pytest.raises(FileNotFoundError, match="MODEL.PRETRAINED_DETECTOR_CKPT"):
        model.load_pretrained_detector(str(tmp_path / "missing.pth"))


def test_training_needs_targets_in_resized_coordinates():
    model = _model()
    images, targets = _batch()
    model.train()
    with pytest.raises(ValueError, match="needs targets"):
        model(images)
    targets[0] = targets[0].resize((48, 32))
    with pytest.raises(ValueError, match="resized image's coordinates"):
        model(images, targets)
    bad = _target([[0, 0, 10, 10]], [1], [[0, 0, 1]])
    bad.remove_field("relation_tuple")
    with pytest.raises(ValueError, match="relation_tuple"):
        build_triplet_targets(bad, 4)
