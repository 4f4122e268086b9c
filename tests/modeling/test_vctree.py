"""VCTreePredictor's parts by hand: the greedy tree and its binary form, the batch forest and its level schedules,
the TreeLSTM cells on a lone root and on a one-child tree, the binary loss, the loss term that is added for SGB's
command line, the protocols, and the errors. The whole head against SGB: test_vctree_golden.py."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sgg.config import load_config
from sgg.config.sgg_config import ConfigError
from sgg.modeling.roi_heads.relation_head.layers.object_labels import to_onehot
from sgg.modeling.roi_heads.relation_head.losses import RelationLossInputs, build_relation_losses
from sgg.modeling.roi_heads.relation_head.losses.vctree_binary import VCTreeBinary
from sgg.modeling.roi_heads.relation_head.predictors.tree_lstm import DownwardTreeLSTM, UpwardTreeLSTM
from sgg.modeling.roi_heads.relation_head.predictors.vctree_tree import binary_tree, build_forest, greedy_tree
from sgg.modeling.roi_heads.relation_head.types import AuxiliaryOutputs, PairScoreTargets, RelationBatch

import head_matrix
from test_predictors import C, build, check_output, make_batch, make_cfg, make_statistics

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# [i, j] = score of attaching j below i. Row means 0.15, 0.275, 0.525, 0.225: the root is 2. Then 2 -> 0 (0.9);
# 2 -> 1 and 2 -> 3 tie at 0.6: the lower remaining index wins; then 2 -> 3 (0.6) and 1 -> 3 (0.6) tie: the parent
# inserted first (2) wins although 1 < 2.
TIES = np.array([[0.0, 0.1, 0.2, 0.3],
                 [0.4, 0.0, 0.1, 0.6],
                 [0.9, 0.6, 0.0, 0.6],
                 [0.2, 0.6, 0.1, 0.0]], dtype=np.float32)
# Row means 0.3, 0.45, 0.225, 0.3: the root is 1 (the highest row maximum, 0.9, is in row 0). Then 1 -> 2 (0.8),
# 1 -> 3 (0.7 beats 2 -> 3 = 0.6), 3 -> 0 (0.5 beats 1 -> 0 = 0.3 and 2 -> 0 = 0.1): a tree of depth 2.
DEEP = np.array([[0.0, 0.9, 0.2, 0.1],
                 [0.3, 0.0, 0.8, 0.7],
                 [0.1, 0.2, 0.0, 0.6],
                 [0.5, 0.4, 0.3, 0.0]], dtype=np.float32)


# ------------------------------------------------------------------------------------------------------ the tree
def test_greedy_tree_with_ties_by_hand():
    root, children = greedy_tree(TIES)
    assert root == 2
    assert children == [[], [], [0, 1, 3], []]
    # left-child right-sibling: 0 is 2's left child, 1 is 0's right sibling, 3 is 1's right sibling
    assert binary_tree(children) == ([-1, -1, 0, -1], [1, 3, -1, -1])


def test_greedy_tree_of_depth_two_by_hand():
    root, children = greedy_tree(DEEP)
    assert (root, children) == (1, [[], [2, 3], [], [0]])
    assert binary_tree(children) == ([-1, 2, -1, 0], [-1, -1, 3, -1])
    # the orientation matters: the transposed matrix (attach i below j) builds another tree
    assert greedy_tree(DEEP.T.copy()) != (root, children)


def test_forest_of_a_batch_offsets_each_image_and_orders_the_levels():
    """Images of 1, 4 (DEEP) and 0 boxes: global indices 0 | 1..4 | none."""
    forest = build_forest([torch.tensor([[0.3]]), torch.from_numpy(DEEP), torch.zeros(0, 0)], "cpu")
    assert forest.roots == [0, 2]
    assert forest.left.tolist() == [-1, -1, 3, -1, 1]
    assert forest.right.tolist() == [-1, -1, -1, 4, -1]
    assert forest.parent.tolist() == [-1, 4, -1, 2, 3]
    assert forest.image.tolist() == [0, 1, 1, 1, 1]
    # heights: leaves 0 and 1; 4 (above 1); 3 (above 4 as its right child); 2 (above 3). Depths: the reverse path.
    assert [level.tolist() for level in forest.upward] == [[0, 1], [4], [3], [2]]
    assert [level.tolist() for level in forest.downward] == [[0, 2], [3], [4], [1]]


# ------------------------------------------------------------------------------------------------- TreeLSTM cells
def sgb_upward_cell(lstm, x, left, right):
    """SGB's BiTreeLSTM_Foreward.node_forward written out: gates i, o, f_l, f_r, u, r."""
    (c_l, h_l), (c_r, h_r) = left, right
    gates = lstm.ioffux(x) + lstm.ioffuh_left(h_l) + lstm.ioffuh_right(h_r)
    i, o, f_l, f_r, u, r = gates.split(lstm.hidden_dim, dim=1)
    c = torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f_l) * c_l + torch.sigmoid(f_r) * c_r
    h = torch.sigmoid(o) * torch.tanh(c)
    return c, torch.sigmoid(r) * h + (1 - torch.sigmoid(r)) * lstm.px(x)


def randomized(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return module


def test_upward_cell_of_a_lone_root_reads_zero_child_states():
    """A one-box image is a lone root: its state is the cell with zero children (biases still count)."""
    lstm = randomized(UpwardTreeLSTM(5, 3), 0)
    x = torch.randn(1, 5)
    forest = build_forest([torch.tensor([[0.2]])], "cpu")
    zero = (torch.zeros(1, 3), torch.zeros(1, 3))
    _, expected = sgb_upward_cell(lstm, x, zero, zero)
    assert torch.allclose(lstm(forest, x, None), expected, atol=1e-6)


def test_upward_cell_reads_the_left_child_through_the_left_weights():
    """Box 1 is box 0's only child, i.e. its left child: the root reads it through ioffuh_left and f_left."""
    lstm = randomized(UpwardTreeLSTM(5, 3), 1)
    x = torch.randn(2, 5)
    forest = build_forest([torch.tensor([[0.0, 0.9], [0.1, 0.0]])], "cpu")
    assert forest.left.tolist() == [1, -1]
    zero = (torch.zeros(1, 3), torch.zeros(1, 3))
    child = sgb_upward_cell(lstm, x[1:], zero, zero)
    _, root = sgb_upward_cell(lstm, x[:1], child, zero)
    assert torch.allclose(lstm(forest, x, None), torch.cat([root, child[1]]), atol=1e-6)


def test_downward_cell_reads_the_parent_state():
    lstm = randomized(DownwardTreeLSTM(4, 2), 2)
    x = torch.randn(2, 4)
    forest = build_forest([torch.tensor([[0.0, 0.9], [0.1, 0.0]])], "cpu")  # 0 is the root, 1 its child

    def cell(inputs, c_parent, h_parent):  # SGB's BiTreeLSTM_Backward.node_backward: gates i, o, f, u, r
        i, o, f, u, r = (lstm.iofux(inputs) + lstm.iofuh(h_parent)).split(2, dim=1)
        c = torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f) * c_parent
        h = torch.sigmoid(o) * torch.tanh(c)
        return c, torch.sigmoid(r) * h + (1 - torch.sigmoid(r)) * lstm.px(inputs)

    c_root, h_root = cell(x[:1], torch.zeros(1, 2), torch.zeros(1, 2))
    _, h_child = cell(x[1:], c_root, h_root)
    assert torch.allclose(lstm(forest, x, None), torch.cat([h_root, h_child]), atol=1e-6)


# ---------------------------------------------------------------------------------------------------- binary loss
def test_binary_loss_is_the_mean_over_images_of_each_image_mean_by_hand():
    # image A (2 boxes): logits [[0, 2], [-1, 0]], targets [[0, 1], [1, 0]]; image B (1 box): logit 0.5, target 0.
    # BCE(x, y) = log(1 + e^x) - x y: A = (0.693147 + 0.126928 + 1.313262 + 0.693147) / 4 = 0.706621,
    # B = log(1 + e^0.5) = 0.974077; loss = (0.706621 + 0.974077) / 2 = 0.840349 (the mean over all five entries,
    # 0.760112, would be a different number).
    scores = PairScoreTargets(logits=torch.tensor([0.0, 2.0, -1.0, 0.0, 0.5]),
                              targets=torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0]), image=torch.tensor([0, 0, 0, 0, 1]))
    inputs = RelationLossInputs(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long), num_pairs_per_image=[2, 1],
                                aux=AuxiliaryOutputs(pair_scores=scores))
    assert VCTreeBinary()(inputs)["loss_binary"].item() == pytest.approx(0.840349, abs=1e-6)


def test_binary_loss_without_the_pair_scores_names_the_keys():
    inputs = RelationLossInputs(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long), num_pairs_per_image=[2])
    with pytest.raises(KeyError, match="VCTreeBinary needs the predictor output's aux.pair_scores.*VCTreePredictor"):
        VCTreeBinary()(inputs)


def test_predictor_passes_its_pair_scores_and_the_gt_pair_matrix_to_the_loss():
    model = build("VCTreePredictor", "predcls").train()
    batch = make_batch("predcls", (3, 2))
    batch.rel_binarys = [torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0]]), torch.tensor([[0, 2], [2, 0]])]
    out = model(batch)
    _, _, _, scores = model.context(batch, return_pair_scores=True)
    assert out.aux.pair_scores.targets.tolist() == [0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0]
    assert out.aux.pair_scores.image.tolist() == [0] * 9 + [1] * 4
    assert torch.allclose(out.aux.pair_scores.logits, torch.cat([s.reshape(-1) for s in scores]))
    expected = (F.binary_cross_entropy_with_logits(scores[0], (batch.rel_binarys[0] > 0).float())
                + F.binary_cross_entropy_with_logits(scores[1], (batch.rel_binarys[1] > 0).float())) / 2
    loss = VCTreeBinary()(RelationLossInputs(out.rel_logits, torch.cat(batch.rel_labels),
                                             num_pairs_per_image=batch.num_pairs, aux=out.aux))
    assert loss["loss_binary"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_rel_binarys_of_the_wrong_size_are_reported():
    model = build("VCTreePredictor", "predcls").train()
    batch = make_batch("predcls", (3,))
    batch.rel_binarys = [torch.zeros(2, 2)]
    with pytest.raises(ValueError, match="image 0: rel_binarys has 4 entries, expected 9"):
        model(batch)


def test_sgb_command_line_trains_the_binary_loss_with_weight_one():
    """SGB's README line (PREDICTOR VCTreePredictor, default LOSS) gets VCTreeBinary; LOSS can set its weight."""
    losses = build_relation_losses(make_cfg("VCTreePredictor", "sgcls"), make_statistics())
    assert list(zip(losses.names, losses.weights)) == [("RelationCE", 1.0), ("ObjectCE", 1.0), ("VCTreeBinary", 1.0)]
    weighted = build_relation_losses(make_cfg("VCTreePredictor", "sgcls", "MODEL.ROI_RELATION_HEAD.LOSS",
                                              '("RelationCE", "VCTreeBinary:0.5")'), make_statistics())
    assert list(zip(weighted.names, weighted.weights)) == [("RelationCE", 1.0), ("VCTreeBinary", 0.5)]
    motif = build_relation_losses(make_cfg("MotifPredictor", "sgcls"), make_statistics())
    assert motif.names == ["RelationCE", "ObjectCE"]


# ------------------------------------------------------------------------------------------------------ protocols
def binary_batch(mode, num_boxes, seed=0):
    batch = make_batch(mode, num_boxes, training=True, seed=seed)
    g = torch.Generator().manual_seed(seed)
    batch.rel_binarys = []
    for n in num_boxes:
        upper = torch.randint(0, 2, (n, n), generator=g).triu(1)
        batch.rel_binarys.append(upper + upper.t())
    return batch


def full_loss(model, batch, out):
    cfg = make_cfg("VCTreePredictor", batch.mode)
    terms = build_relation_losses(cfg, make_statistics())(RelationLossInputs(
        out.rel_logits, torch.cat(batch.rel_labels), out.obj_logits if batch.mode != "predcls" else None,
        torch.cat([b.get_field("labels") for b in batch.boxes]), batch.num_pairs, aux=out.aux))
    return terms


@pytest.mark.parametrize("mode", ["predcls", "sgcls", "sgdet"])
def test_training_reaches_every_parameter(mode):
    """Relation CE + object CE + the binary loss train every weight (the score net only through the binary loss:
    the tree itself is not differentiable)."""
    model = build("VCTreePredictor", mode).train()
    batch = binary_batch(mode, (3, 5))
    out = model(batch)
    check_output(out, batch)
    terms = full_loss(model, batch, out)
    assert set(terms) == {"loss_rel", "loss_refine_obj", "loss_binary"}
    sum(terms.values()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert model.context.score_net.score_pre.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["predcls", "sgcls", "sgdet"])
@pytest.mark.parametrize("training", [True, False])
def test_one_box_images(mode, training):
    """A one-box image is a lone root: outputs are finite, its pair score matrix is 1 x 1 and in training its
    binary loss is BCE(score, 0) = softplus(score)."""
    model = build("VCTreePredictor", mode).train(training)
    batch = binary_batch(mode, (1,)) if training else make_batch(mode, (1, 4), training=False)
    out = model(batch)
    check_output(out, batch)
    if training:
        (score,) = model.context(batch, return_pair_scores=True)[3]
        assert score.shape == (1, 1)
        terms = full_loss(model, batch, out)
        softplus = F.softplus(out.aux.pair_scores.logits[0]).item()
        assert terms["loss_binary"].item() == pytest.approx(softplus, abs=1e-6)  # BCE(x, 0) cancels in float32
        sum(terms.values()).backward()


@pytest.mark.parametrize("mode", ["predcls", "sgcls", "sgdet"])
def test_images_without_boxes_at_test(mode):
    model = build("VCTreePredictor", mode).eval()
    for num_boxes in [(0,), (0, 3), (3, 0, 2)]:
        batch = make_batch(mode, num_boxes, training=False)
        with torch.no_grad():
            check_output(model(batch), batch)


@pytest.mark.parametrize("mode", ["predcls", "sgcls", "sgdet"])
def test_batched_test_equals_one_image_at_a_time(mode):
    """The TreeLSTMs step through levels of all trees of the batch at once; SGB runs one tree at a time."""
    model = build("VCTreePredictor", mode).eval()
    batch = make_batch(mode, (4, 2, 5), training=False)
    with torch.no_grad():
        joint = model(batch)
        singles = [model(RelationBatch(mode, [b], [p], f, u)) for b, p, f, u in zip(
            batch.boxes, batch.pair_idxs, batch.roi_features.split(batch.num_boxes),
            batch.union_features.split(batch.num_pairs))]
    assert torch.allclose(joint.obj_logits, torch.cat([s.obj_logits for s in singles]), atol=1e-5)
    assert torch.equal(joint.obj_preds, torch.cat([s.obj_preds for s in singles]))
    assert torch.allclose(joint.rel_logits, torch.cat([s.rel_logits for s in singles]), atol=1e-4)


@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_permuting_the_input_boxes_permutes_the_outputs(mode):
    model = build("VCTreePredictor", mode).eval()
    batch = make_batch(mode, (5,), training=False, seed=1)
    perm = torch.tensor([3, 0, 4, 1, 2])
    boxes = batch.boxes[0][perm]
    permuted = RelationBatch(mode, [boxes], [torch.argsort(perm)[batch.pair_idxs[0]]], batch.roi_features[perm],
                             batch.union_features)
    with torch.no_grad():
        out, out_perm = model(batch), model(permuted)
    assert torch.allclose(out_perm.obj_logits, out.obj_logits[perm], atol=1e-5)
    assert torch.equal(out_perm.obj_preds, out.obj_preds[perm])
    assert torch.allclose(out_perm.rel_logits, out.rel_logits, atol=1e-4)


def test_predcls_scores_pairs_with_the_gt_labels():
    model = build("VCTreePredictor", "predcls").eval()
    assert model.context.decoder_rnn is None  # nothing to classify
    batch = make_batch("predcls", (3, 4), training=False)
    labels = torch.cat([b.get_field("labels") for b in batch.boxes])
    with torch.no_grad():
        out = model(batch)
    assert torch.equal(out.obj_preds, labels) and torch.equal(out.obj_logits, to_onehot(labels, C))


@pytest.mark.parametrize("training", [True, False])
def test_sgcls_commits_the_decoders_foreground_argmax(training):
    """In training the decoder passes a sampled label down the tree (SGB), but commits the argmax, as at test."""
    model = build("VCTreePredictor", "sgcls").train(training)
    batch = binary_batch("sgcls", (3, 5)) if training else make_batch("sgcls", (3, 5), training=False)
    out = model(batch)
    assert torch.equal(out.obj_preds, out.obj_logits[:, 1:].argmax(dim=1) + 1)
    assert not torch.equal(out.obj_logits, torch.cat([b.get_field("predict_logits") for b in batch.boxes]))


def test_the_bias_is_added_to_the_pair_logits():
    model = build("VCTreePredictor", "predcls").eval()
    batch = make_batch("predcls", (3, 4), training=False)
    table = model.edge_head.freq_bias.obj_baseline.weight
    bias = table.detach().clone()
    with torch.no_grad():
        with_bias = model(batch).rel_logits
        table.zero_()
        without_bias = model(batch).rel_logits
    labels = torch.cat([b.get_field("labels") for b in batch.boxes])
    pairs = torch.cat([batch.pair_idxs[0], batch.pair_idxs[1] + 3])
    expected = bias[labels[pairs[:, 0]] * C + labels[pairs[:, 1]]]
    assert torch.allclose(with_bias - without_bias, expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------- errors
def test_without_union_features_is_a_config_error():
    with pytest.raises(ConfigError, match="PREDICT_USE_VISION must be True"):
        build("VCTreePredictor", "predcls", "MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION", "False")


def test_odd_hidden_width_is_a_config_error():
    with pytest.raises(ConfigError, match="CONTEXT_HIDDEN_DIM must be even.*got 31"):
        build("VCTreePredictor", "predcls", "MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM", "31")


def test_predcls_model_rejects_sgcls_batches():
    model = build("VCTreePredictor", "predcls").eval()
    with pytest.raises(ValueError, match="built for predcls"):
        model(make_batch("sgcls", (3,), training=False))


def test_union_features_of_the_wrong_size_are_rejected():
    model = build("VCTreePredictor", "predcls").eval()
    batch = make_batch("predcls", (3,), training=False)
    batch.union_features = torch.rand(6, 7)
    with pytest.raises(ValueError, match=r"union_features of shape \(6, 48\).*got \(6, 7\)"):
        model(batch)


def test_predict_use_bias_false_is_ignored_with_a_warning(caplog):
    with caplog.at_level("WARNING", logger="sgg.modeling.roi_heads.relation_head.predictors.vctree"):
        model = build("VCTreePredictor", "predcls", "MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS", "False")
    assert model.edge_head.freq_bias is not None
    assert "ignores MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS False" in caplog.text


def test_sgb_readme_command_line_on_sgb_relation_yaml_selects_vctree_and_its_loss():
    """SGB's yaml with its README switches (SGCls) and ``PREDICTOR VCTreePredictor``: the config resolves and the
    loss has SGB's three VCTree terms. (The model at the yaml's widths, 4096-d features and hidden 512, is not
    built here, to keep the test fast.)"""
    cfg = load_config(os.path.join(REPO, "configs", "e2e_relation_X_101_32_8_FPN_1x.yaml"), [
        "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", "True", "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", "False",
        "MODEL.ROI_RELATION_HEAD.PREDICTOR", "VCTreePredictor"])
    assert cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR == "VCTreePredictor"
    assert build_relation_losses(cfg, make_statistics()).names == ["RelationCE", "ObjectCE", "VCTreeBinary"]
    synthetic = load_config(os.path.join(REPO, "configs", "synthetic", "vctree.yaml"))
    assert synthetic.MODEL.ROI_RELATION_HEAD.PREDICTOR == "VCTreePredictor"
    assert build_relation_losses(synthetic, make_statistics()).names == ["RelationCE", "ObjectCE", "VCTreeBinary"]


@pytest.mark.parametrize("mode", ["sgcls", "sgdet"])
def test_whole_model_training_step_logs_the_binary_loss(mode, tmp_path):
    """Detector + relation head at toy size with the default LOSS: the sampler's rel_binarys reach the loss."""
    model, _ = head_matrix.build("VCTree", mode, tmp_path)
    images, targets = head_matrix.batch()
    losses = model.train()(images, targets)
    assert set(losses) == {"loss_rel", "loss_refine_obj", "loss_binary"}
    assert torch.isfinite(losses["loss_binary"]) and losses["loss_binary"] > 0
