"""IMPPredictor (docs/imp.md): one round of message passing computed by hand, the protocols' object logits and labels,
every parameter trained, bad configs and inputs, and learning on a fixed batch. The comparison with SGB's own
IMPPredictor is test_imp_golden.py."""
import itertools
import math

import pytest
import torch

from sgg.config.sgg_config import ConfigError
from sgg.modeling.roi_heads.relation_head.inference import object_prediction_nms
from sgg.modeling.roi_heads.relation_head.predictors import build_predictor
from sgg.modeling.roi_heads.relation_head.layers.object_labels import to_onehot
from sgg.modeling.roi_heads.relation_head.predictors.imp import IMPContext, IMPPredictor
from sgg.modeling.roi_heads.relation_head.rescorers.ranker import Ranker
from sgg.modeling.roi_heads.relation_head.types import RelationBatch
from sgg.solver import make_optimizer
from sgg.structures import BoxList

import head_matrix
from test_predictors import C, R, ROI_DIM, check_output, make_batch, make_cfg, make_statistics, training_loss

MODES = ["predcls", "sgcls", "sgdet"]
pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")
SMALL = ("MODEL.ROI_RELATION_HEAD.IMP.HIDDEN_DIM", 16)


def build(mode, *extra):
    torch.manual_seed(0)
    return build_predictor(make_cfg("IMPPredictor", mode, *SMALL, *extra), ROI_DIM, make_statistics())


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


# ------------------------------------------------------------------------------------------------ one round by hand
def _set(layer, weight, bias):
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))


def hand_model():
    """Hidden size 1, one round, weights chosen so that every step is a short formula:
    GRU(x, h) = 0.5 tanh(k x) + 0.5 h (r = z = sigmoid(0); k = 1 for nodes, 2 for edges), unary layers = identity,
    gates sigmoid(a v + b e + c) with different (a, b, c) for each of the four gates."""
    context = IMPContext("sgcls", num_obj_classes=3, num_rel_classes=3, in_channels=1, pooling_dim=1, hidden_dim=1,
                         num_iter=1)
    _set(context.obj_unary, [[1.0]], [0.0])
    _set(context.edge_unary, [[1.0]], [0.0])
    for gru, k in ((context.node_gru, 1.0), (context.edge_gru, 2.0)):
        with torch.no_grad():
            gru.weight_ih.copy_(torch.tensor([[0.0], [0.0], [k]]))  # rows: reset, update, new
            gru.weight_hh.zero_()
            gru.bias_ih.zero_()
            gru.bias_hh.zero_()
    _set(context.sub_vert_w_fc[0], [[2.0, 0.0]], [0.0])   # sigmoid(2 v_subject)
    _set(context.obj_vert_w_fc[0], [[-1.0, 1.0]], [0.0])  # sigmoid(e - v_object)
    _set(context.out_edge_w_fc[0], [[1.0, 1.0]], [0.0])   # sigmoid(v_subject + e)
    _set(context.in_edge_w_fc[0], [[0.0, -2.0]], [1.0])   # sigmoid(1 - 2 e)
    _set(context.obj_fc, [[1.0], [-1.0], [2.0]], [0.0, 0.1, -0.2])
    _set(context.rel_fc, [[0.5], [1.0], [-3.0]], [0.0, 0.0, 0.0])
    return IMPPredictor(context, union_dim=1, pooling_dim=1).eval()


def test_one_round_of_message_passing_by_hand():
    # three boxes; node 0 is the subject of two pairs, node 1 the object of two, node 2 one of each
    x = [0.5, -1.0, 2.0]
    union = [0.8, -0.6, 1.5]  # the second is cut to 0 by edge_unary's ReLU
    pairs = [(0, 1), (0, 2), (2, 1)]
    boxes = BoxList(torch.tensor([[0, 0, 10, 10], [5, 5, 20, 20], [30, 0, 40, 30.]]), (50, 40))
    boxes.add_field("labels", torch.tensor([1, 2, 1]))
    batch = RelationBatch("sgcls", [boxes], [torch.tensor(pairs)], torch.tensor(x)[:, None],
                          torch.tensor(union)[:, None])
    with torch.no_grad():
        out = hand_model()(batch)

    node = [0.5 * math.tanh(v) for v in x]  # node_gru(obj_unary(x), 0)
    edge = [0.5 * math.tanh(2 * max(u, 0.0)) for u in union]  # edge_gru(relu(edge_unary(u)), 0)
    new_edge = []
    for (s, o), e in zip(pairs, edge):
        message = sigmoid(2 * node[s]) * node[s] + sigmoid(e - node[o]) * node[o]
        new_edge.append(0.5 * math.tanh(2 * message) + 0.5 * e)
    context = [0.0, 0.0, 0.0]  # summed (not averaged) gated messages of the *old* edge states
    for (s, o), e in zip(pairs, edge):
        context[s] += sigmoid(node[s] + e) * e  # outgoing
        context[o] += sigmoid(1 - 2 * e) * e  # incoming
    new_node = [0.5 * math.tanh(c) + 0.5 * h for c, h in zip(context, node)]

    expected_rel = torch.tensor([[0.5 * e, e, -3 * e] for e in new_edge])
    expected_obj = torch.tensor([[h, -h + 0.1, 2 * h - 0.2] for h in new_node])
    assert torch.allclose(out.rel_logits, expected_rel, atol=1e-6)
    assert torch.allclose(out.obj_logits, expected_obj, atol=1e-6)
    assert torch.allclose(out.rel_features, torch.tensor(new_edge)[:, None], atol=1e-6)
    # labels the post-processor gives: the non-background argmax (h < 0 makes class 1 win over class 2)
    assert out.obj_preds.tolist() == [2 if 2 * h - 0.2 > -h + 0.1 else 1 for h in new_node]


# ----------------------------------------------------------------------------------------------------- protocols
@pytest.mark.parametrize("mode", MODES)
def test_train_forward_shapes_and_gradients_reach_every_parameter(mode):
    model = build(mode).train()
    batch = make_batch(mode, (3, 5), training=True)
    out = model(batch)
    check_output(out, batch)
    training_loss(out, batch).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"{mode}: no gradient reaches {name}"
    assert (model.context_layer.obj_fc is None) == (mode == "predcls")


def test_predcls_with_one_round_leaves_only_the_node_update_gates_without_gradient():
    """docs/imp.md: the last node states are not read in PredCls, so with NUM_ITER 1 the gates that feed them are
    unused (DDP then needs SOLVER.FIND_UNUSED_PARAMETERS)."""
    model = build("predcls", "MODEL.ROI_RELATION_HEAD.IMP.NUM_ITER", "1").train()
    batch = make_batch("predcls", (3, 5), training=True)
    training_loss(model(batch), batch).backward()
    assert sorted(name for name, param in model.named_parameters() if param.grad is None) == [
        "context_layer.in_edge_w_fc.0.bias", "context_layer.in_edge_w_fc.0.weight",
        "context_layer.out_edge_w_fc.0.bias", "context_layer.out_edge_w_fc.0.weight"]


def test_predcls_objects_are_the_gt_labels_as_onehot_logits():
    model = build("predcls").eval()
    batch = make_batch("predcls", (3, 4), training=False)
    labels = torch.cat([b.get_field("labels") for b in batch.boxes])
    with torch.no_grad():
        out = model(batch)
    assert torch.equal(out.obj_logits, to_onehot(labels, C)) and torch.equal(out.obj_preds, labels)


def test_sgdet_test_labels_come_from_the_later_nms():
    model = build("sgdet", "TEST.RELATION.LATER_NMS_PREDICTION_THRES", "0.5").eval()
    batch = make_batch("sgdet", (6,), training=False, seed=3)
    with torch.no_grad():
        out = model(batch)
    expected = object_prediction_nms(batch.boxes[0].get_field("boxes_per_cls"), out.obj_logits, 0.5)
    assert torch.equal(out.obj_preds, expected)


def test_no_frequency_bias_whatever_predict_use_bias_says(caplog):
    with caplog.at_level("INFO", logger="sgg.modeling.roi_heads.relation_head.predictors.imp"):
        with_key = build("sgcls", "MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS", "True").eval()
    assert "PREDICT_USE_BIAS is not read" in caplog.text
    without = build("sgcls", "MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS", "False").eval()
    assert with_key.state_dict().keys() == without.state_dict().keys()
    assert not any("freq" in name for name in with_key.state_dict())
    batch = make_batch("sgcls", (3, 4), training=False)
    with torch.no_grad():
        assert torch.equal(with_key(batch).rel_logits, without(batch).rel_logits)


@pytest.mark.parametrize("mode,training", list(itertools.product(MODES, [True, False])))
def test_images_with_one_box_or_none(mode, training):
    model = build(mode).train(training)
    for num_boxes in [(1,), (1, 4)] + ([] if training else [(0,), (3, 0, 2)]):
        batch = make_batch(mode, num_boxes, training=training)
        out = model(batch)
        check_output(out, batch)
        if training:
            training_loss(out, batch).backward()


def test_batched_equals_one_image_at_a_time():
    """Messages never cross images: a batch gives what its images give alone."""
    model = build("sgcls").eval()
    batch = make_batch("sgcls", (4, 2, 5), training=False)
    with torch.no_grad():
        joint = model(batch)
        singles = [model(RelationBatch("sgcls", [b], [p], f, u)) for b, p, f, u in zip(
            batch.boxes, batch.pair_idxs, batch.roi_features.split(batch.num_boxes),
            batch.union_features.split(batch.num_pairs))]
    assert torch.allclose(joint.obj_logits, torch.cat([s.obj_logits for s in singles]), atol=1e-5)
    assert torch.allclose(joint.rel_logits, torch.cat([s.rel_logits for s in singles]), atol=1e-5)


def test_loss_falls_on_a_fixed_batch():
    model = build("sgcls").train()
    batch = make_batch("sgcls", (4, 5), training=True, seed=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = training_loss(model(batch), batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


# ------------------------------------------------------------------------------------------------------ bad input
def test_without_union_features_the_config_is_refused():
    with pytest.raises(ConfigError, match="MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION True"):
        build("predcls", "MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION", "False")


def test_zero_rounds_are_refused():
    with pytest.raises(ConfigError, match=r"MODEL.ROI_RELATION_HEAD.IMP.NUM_ITER must be an integer >= 1 .*got 0"):
        build("predcls", "MODEL.ROI_RELATION_HEAD.IMP.NUM_ITER", "0")


def test_union_features_of_the_wrong_shape_are_rejected():
    model = build("predcls").eval()
    batch = make_batch("predcls", (3,), training=False)
    batch.union_features = torch.rand(6, ROI_DIM + 1)
    with pytest.raises(ValueError, match=rf"union_features of shape \(6, {ROI_DIM}\).*got shape \(6, {ROI_DIM + 1}\)"):
        model(batch)
    batch.union_features = None
    with pytest.raises(ValueError, match="got none"):
        model(batch)


def test_predcls_model_rejects_sgcls_batches():
    with pytest.raises(ValueError, match="built for predcls"):
        build("predcls").eval()(make_batch("sgcls", (3,), training=False))


def test_the_ranker_reads_the_edge_states():
    cfg = make_cfg("IMPPredictor", "sgcls", *SMALL)
    assert Ranker.predictor_feature_dim(cfg) == 16
    batch = make_batch("sgcls", (3, 4), training=False)
    with torch.no_grad():
        assert build("sgcls").eval()(batch).rel_features.shape == (sum(batch.num_pairs), 16)


def test_union_projection_only_when_the_sizes_differ():
    assert build("predcls").up_dim.weight.shape == (64, ROI_DIM)  # CONTEXT_POOLING_DIM 64 != 48
    same = build("predcls", "MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM", str(ROI_DIM))
    assert same.up_dim is None and same.context_layer.edge_unary.in_features == ROI_DIM
    assert R == same.context_layer.rel_fc.out_features


# ------------------------------------------------------------------------------------------- SGB's slow_heads
def _lr_by_name(cfg, model):
    return {name: group["lr"] for group in make_optimizer(cfg, model).param_groups for name in group["param_names"]}


@pytest.mark.parametrize("predictor,divisor", [("IMP", 10.0), ("Motif", 1.0)])
def test_relation_feature_mlps_train_ten_times_slower_with_imp_only(predictor, divisor, tmp_path):
    """SGB's relation_train_net.py: with IMPPredictor, make_optimizer(slow_heads=[relation box_feature_extractor,
    union_feature_extractor.feature_extractor], slow_ratio=10) divides those parameters' LR (bias LR included) by
    10; the union extractor's box-mask convolutions (rect_conv) and the predictor keep the full LR."""
    model, cfg = head_matrix.build(predictor, "sgcls", tmp_path, "SOLVER.BASE_LR", "0.01", "SOLVER.IMS_PER_BATCH",
                                   "4", "SOLVER.BIAS_LR_FACTOR", "2.0")
    lr = _lr_by_name(cfg, model)
    base = 0.01 * 4  # SGB's effective LR: BASE_LR x IMS_PER_BATCH
    slow = ("relation_head.box_feature_extractor.", "relation_head.union_feature_extractor.fc6.",
            "relation_head.union_feature_extractor.fc7.", "relation_head.union_feature_extractor.reduce_channel.")
    # the feature MLPs exist and are trainable; the detector is frozen and absent
    assert {name.rsplit(".", 1)[0] for name in lr if name.startswith(slow)} == {
        "relation_head.box_feature_extractor.fc6", "relation_head.box_feature_extractor.fc7",
        "relation_head.union_feature_extractor.fc6", "relation_head.union_feature_extractor.fc7",
        "relation_head.union_feature_extractor.reduce_channel.0"}
    assert not any(name.startswith("detector.") for name in lr)
    assert any(name.startswith("relation_head.union_feature_extractor.rect_conv.") for name in lr)
    for name, value in lr.items():
        expected = base * (2.0 if name.endswith("bias") else 1.0) / (divisor if name.startswith(slow) else 1.0)
        assert value == pytest.approx(expected), name
    assert lr["relation_head.box_feature_extractor.fc6.bias"] == pytest.approx(0.08 / divisor)
