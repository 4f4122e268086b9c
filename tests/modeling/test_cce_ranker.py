"""CCE loss, the Ranker and its loss (Huang et al., ACCV 2020; METHODS.md 2.2-2.3): values and gradients on
hand-computed numbers, the Ranker after Motif and LinkNet in the whole scene graph model in the three protocols, the
test-time score combination, CE-checkpoint fine-tuning, and the bad-input errors."""
import glob
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sgg.config import load_config
from sgg.modeling.detector.scene_graph_rcnn import SceneGraphRCNN
from sgg.modeling.roi_heads.relation_head.inference import RelationPostProcessor
from sgg.modeling.roi_heads.relation_head.losses import RelationLossInputs, build_relation_losses
from sgg.modeling.roi_heads.relation_head.losses.cce import ContrastingCrossEntropy, hardest_negative_labels
from sgg.modeling.roi_heads.relation_head.losses.gce_ranker import RankerLoss
from sgg.modeling.roi_heads.relation_head.rescorers.ranker import Ranker
from sgg.modeling.roi_heads.relation_head.types import AuxiliaryOutputs, PredictorOutput, RankerOutputs, RelationBatch
from sgg.structures import BoxList, to_image_list
from sgg.utils.checkpoint import Checkpointer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_CLASSES, NUM_PREDICATES = 6, 5
PROTOCOLS = [("predcls", True, True), ("sgcls", True, False), ("sgdet", False, False)]
RANKER_OPTS = ["MODEL.ROI_RELATION_HEAD.RESCORER", "Ranker", "MODEL.ROI_RELATION_HEAD.RANKER.HIDDEN_DIM", "16",
               "MODEL.ROI_RELATION_HEAD.RANKER.ATTENTION_DIM", "16", "MODEL.ROI_RELATION_HEAD.RANKER.NUM_HEAD", "2"]

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")


def _inputs(logits, labels, ranker_logits=None):
    ranker = None if ranker_logits is None else RankerOutputs(ranker_logits, torch.sigmoid(ranker_logits))
    return RelationLossInputs(logits, torch.as_tensor(labels), aux=AuxiliaryOutputs(ranker=ranker))


# ------------------------------------------------------------------------------------------------------ CCE
# Four pairs over 3 predicates. CE(z, y) - CE(z, y~) = z_y~ - z_y (the log-sum-exp cancels), so by hand:
#   pair 0: z (0, 2, 1), y 1 correct  -> y~ 2, gap 1 - 2 = -1
#   pair 1: z (0, 1, 3), y 1 wrong    -> y~ 2, gap 3 - 1 = 2
#   pair 2: z (2, 0, 1), y 0 correct  -> y~ 2, gap 1 - 2 = -1
#   pair 3: z (1, 0, 0), y 2, background wins -> y~ 0, gap 1 - 0 = 1 (y~ 1, gap 0 without background negatives)
CCE_LOGITS = [[0.0, 2.0, 1.0], [0.0, 1.0, 3.0], [2.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
CCE_LABELS = [1, 1, 0, 2]


def test_cce_negative_label_is_the_most_confident_wrong_class():
    logits, labels = torch.tensor(CCE_LOGITS), torch.tensor(CCE_LABELS)
    assert hardest_negative_labels(logits, labels, True).tolist() == [2, 2, 2, 0]
    assert hardest_negative_labels(logits, labels, False).tolist() == [2, 2, 2, 1]


def test_cce_value_with_zero_margin_ignores_correct_pairs():
    logits = torch.tensor(CCE_LOGITS, requires_grad=True)
    loss = ContrastingCrossEntropy(100.0, 0.0, background_as_negative=True)(
        _inputs(logits, CCE_LABELS))["loss_rel_cce"]
    assert math.isclose(loss.item(), 100.0 * (0 + 2 + 0 + 1) / 4, rel_tol=1e-6)  # 75
    loss.backward()
    # d/dz of lambda1 / N * (z_y~ - z_y) for the active pairs 1 and 3 only: +25 at y~, -25 at y
    expected = torch.tensor([[0.0, 0.0, 0.0], [0.0, -25.0, 25.0], [0.0, 0.0, 0.0], [25.0, 0.0, -25.0]])
    assert torch.allclose(logits.grad, expected, atol=1e-5)


def test_cce_without_background_negatives_the_default():
    logits = torch.tensor(CCE_LOGITS, requires_grad=True)
    loss = ContrastingCrossEntropy(100.0, 0.0)(
        _inputs(logits, CCE_LABELS))["loss_rel_cce"]
    assert math.isclose(loss.item(), 100.0 * 2 / 4, rel_tol=1e-6)  # pair 3: gap 0 -> hinge 0
    loss.backward()
    assert torch.allclose(logits.grad[3], torch.zeros(3)) and torch.allclose(logits.grad[0], torch.zeros(3))


def test_the_two_negative_rules_on_a_pair_both_penalise():
    """z = (3, 1, 2, 0), y = 3 (the weakest class). Background allowed: y~ = 0, hinge z_0 - z_3 + m1 = 3 + .5;
    foreground only (default): y~ = 2, hinge z_2 - z_3 + .5 = 2.5. Gradient (lambda1 1, one pair): +1 at y~, -1 at y."""
    for background, negative, value in [(True, 0, 3.5), (False, 2, 2.5)]:
        logits = torch.tensor([[3.0, 1.0, 2.0, 0.0]], requires_grad=True)
        assert hardest_negative_labels(logits, torch.tensor([3]), background).tolist() == [negative]
        loss = ContrastingCrossEntropy(1.0, 0.5, background)(_inputs(logits, [3]))["loss_rel_cce"]
        assert math.isclose(loss.item(), value, rel_tol=1e-6)
        loss.backward()
        expected = torch.zeros(1, 4)
        expected[0, negative], expected[0, 3] = 1.0, -1.0
        assert torch.allclose(logits.grad, expected, atol=1e-6)


def test_cce_with_a_margin_also_pushes_correct_pairs_within_it():
    logits = torch.tensor(CCE_LOGITS, requires_grad=True)
    loss = ContrastingCrossEntropy(10.0, 1.5, background_as_negative=True)(_inputs(logits, CCE_LABELS))["loss_rel_cce"]
    # hinges: max(0, -1 + 1.5) = 0.5, 3.5, 0.5, 2.5 -> 10 * 7 / 4
    assert math.isclose(loss.item(), 10.0 * 7.0 / 4, rel_tol=1e-6)
    loss.backward()
    assert torch.allclose(logits.grad[0], torch.tensor([0.0, -2.5, 2.5]), atol=1e-6)  # now active: 10 / 4


def test_cce_equals_the_cross_entropy_difference():
    """The hinge as stevehuanghe/scene_graph (commit f53affa8c9947033e8853ab498cc1047dbaa03e7) writes it in
    train_rels.py ``train_batch``: lambda1 * relu(CE(z, y) - CE(z, y~) + m1).mean(), given the negatives (its
    ``get_neg_labels`` is not in the repository; the negatives here are ours, checked by hand above)."""
    torch.manual_seed(0)
    logits, labels = torch.randn(7, 5), torch.randint(0, 5, (7,))
    negatives = hardest_negative_labels(logits, labels, True)
    reference = F.relu(F.cross_entropy(logits, labels, reduction="none")
                       - F.cross_entropy(logits, negatives, reduction="none") + 0.2).mean() * 3.0
    loss = ContrastingCrossEntropy(3.0, 0.2, background_as_negative=True)(_inputs(logits, labels))["loss_rel_cce"]
    assert torch.allclose(loss, reference, atol=1e-6)


def test_cce_without_pairs_is_zero_with_a_graph():
    logits = torch.zeros(0, 4, requires_grad=True)
    loss = ContrastingCrossEntropy()(_inputs(logits, torch.zeros(0, dtype=torch.long)))["loss_rel_cce"]
    assert loss.item() == 0.0 and loss.requires_grad


def test_cce_from_config_and_negative_margin_is_refused():
    cfg = load_config(opts=["MODEL.ROI_RELATION_HEAD.LOSS", '("cce", "ObjectCE")',
                            "MODEL.ROI_RELATION_HEAD.CCE.LAMBDA1", "2.0",
                            "MODEL.ROI_RELATION_HEAD.CCE.MARGIN_M1", "0.5"])
    term = build_relation_losses(cfg).terms[0]
    assert (term.lambda1, term.margin, term.background_as_negative) == (2.0, 0.5, False)
    background = load_config(opts=["MODEL.ROI_RELATION_HEAD.LOSS", '("cce", "ObjectCE")',
                                   "MODEL.ROI_RELATION_HEAD.CCE.BACKGROUND_AS_NEGATIVE", "True"])
    assert build_relation_losses(background).terms[0].background_as_negative is True
    with pytest.raises(ValueError, match="CCE.MARGIN_M1 must be >= 0"):
        build_relation_losses(load_config(opts=["MODEL.ROI_RELATION_HEAD.LOSS", '("cce",)',
                                                "MODEL.ROI_RELATION_HEAD.CCE.MARGIN_M1", "-0.1"]))
    with pytest.raises(ValueError, match="CCE.LAMBDA1"):
        ContrastingCrossEntropy(lambda1=-1.0)


# ------------------------------------------------------------------------------------------------ ranker loss
# logits (0, ln 3, -ln 3) -> S = (1/2, 3/4, 1/4); labels (0, 2, 0) -> t = (0, 1, 0)
RANK_LOGITS = [0.0, math.log(3.0), -math.log(3.0)]
RANK_LABELS = [0, 2, 0]


def _rank_loss(kind, lambda2=1.0, margin=0.0):
    logits = torch.tensor(RANK_LOGITS, requires_grad=True)
    inputs = _inputs(torch.zeros(3, NUM_PREDICATES), RANK_LABELS, ranker_logits=logits)
    return logits, RankerLoss(kind, lambda2, margin)(inputs)["loss_rank"]


def test_ranker_bce_value_and_gradient():
    logits, loss = _rank_loss("bce", lambda2=2.0)
    assert math.isclose(loss.item(), 2.0 * (-math.log(0.5) - math.log(0.75) - math.log(0.75)) / 3, rel_tol=1e-5)
    loss.backward()
    # d BCE / d logit = (S - t) / n, times lambda2
    assert torch.allclose(logits.grad, 2.0 * torch.tensor([0.5, -0.25, 0.25]) / 3, atol=1e-6)


def test_ranker_mse_value():
    _, loss = _rank_loss("mse")
    assert math.isclose(loss.item(), (0.5 ** 2 + 0.25 ** 2 + 0.25 ** 2) / 3, rel_tol=1e-5)  # 0.125


def test_ranker_margin_value():
    _, loss = _rank_loss("margin", margin=0.1)
    # S t = (0, .75, 0), S (1 - t) = (.5, 0, .25): max_neg .5, min_pos 0; w_pos = 2/3, w_neg = 1/3
    # term 1: mean relu(.5 - S t + .1) = mean(.6, 0, .6) = .4; term 2: mean relu(S (1 - t) - 0 + .1) = 1.05 / 3
    assert math.isclose(loss.item(), 2 / 3 * 0.4 + 1 / 3 * 0.35, rel_tol=1e-5)


def test_ranker_loss_needs_the_ranker():
    with pytest.raises(KeyError, match="RESCORER"):
        RankerLoss()(_inputs(torch.zeros(2, 3), [0, 1]))
    with pytest.raises(ValueError, match="RANKER.LOSS"):
        RankerLoss("hinge")


# --------------------------------------------------------------------------------------------- ranker module
def _ranker(**kwargs):
    torch.manual_seed(0)
    args = dict(rel_feature_dim=6, num_predicates=NUM_PREDICATES, image_feature_dim=3, hidden_dim=8,
                attention_dim=8, num_heads=2, predictor="MotifPredictor")
    args.update(kwargs)
    return Ranker(**args)


def _ranker_batch(num_pairs=(6, 2, 0), seed=0):
    g = torch.Generator().manual_seed(seed)
    boxes = [BoxList(torch.zeros(3, 4), (20, 20)) for _ in num_pairs]
    pairs = [torch.zeros(n, 2, dtype=torch.long) for n in num_pairs]
    batch = RelationBatch("predcls", boxes, pairs, torch.zeros(3 * len(num_pairs), 1),
                          features={"0": torch.randn(len(num_pairs), 3, 4, 4, generator=g)},
                          image_sizes=[(20, 20)] * len(num_pairs))
    total = sum(num_pairs)
    output = PredictorOutput(torch.zeros(0, NUM_CLASSES), torch.zeros(0, dtype=torch.long),
                             torch.randn(total, NUM_PREDICATES, generator=g),
                             torch.randn(total, 6, generator=g))
    return batch, output


def test_ranker_scores_each_image_on_its_own_and_combines_by_multiplying():
    ranker = _ranker(attention_chunk=4).eval()  # chunks smaller than the first image's 6 pairs
    batch, output = _ranker_batch((6, 2, 0))
    with torch.no_grad():
        rescored, rel_scores = ranker(batch, output)
        first, _ = ranker(*_slice(batch, output, 0, 6, 0))
    scores = rescored.aux.ranker.scores
    assert scores.shape == (8,) and ((scores > 0) & (scores < 1)).all()
    assert torch.allclose(scores, torch.sigmoid(rescored.aux.ranker.logits))
    assert torch.allclose(scores[:6], first.aux.ranker.scores, atol=1e-6)  # no attention across images
    assert torch.allclose(rel_scores, F.softmax(output.rel_logits, -1) * scores[:, None], atol=1e-6)


def _set_linear(layer, weight, bias):
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))


def test_ranker_scores_equal_a_hand_computed_case():
    """The Ranker's code was never released: its golden values are computed by hand on a case small enough for paper.

    Two images: A with pairs A1, A2, B with one pair. Widths: relation feature 1, 2 predicates, image feature 1,
    d_h 1, d_e 3, one head, one block.
      MLP_F = Linear(1,1; w 1) -> ReLU -> Linear(1,1; w 1):          f = (1, -2 | 3)  -> relu(f) = (1, 0 | 3)
      MLP_P = Linear(2,1; w (0, 1)) -> ReLU -> Linear(1,1; w 2):     rel_logits (0, 0), (0, ln 3) | (ln 3, 0)
                                                                     -> p_1 = (1/2, 3/4 | 1/4) -> 2 p_1 = (1, 1.5 | .5)
      h = (2, 1.5 | 3.5); g = mean of the image's map over the image, padding excluded = (2 | -1)
      x = Linear([h ; g]) with rows (1, 0), (0, 1), (1, -1), bias (0, 0, .5):
          x_A1 = (2, 2, .5), x_A2 = (1.5, 2, 0), x_B = (3.5, -1, 5)
      attention: q_i = (x_i[0], 0, 0), k_j = (x_j[2], 0, 0), v = x, out = identity, score q_i k_j / sqrt(3):
          A1 row: (2 * .5, 2 * 0) / sqrt 3 -> weights sigmoid(1 / sqrt 3) = .64046, .35954
          A2 row: (1.5 * .5, 0) / sqrt 3   -> weights sigmoid(.75 / sqrt 3) = .60659, .39341   (B attends to itself)
          y = x + sum_j w_ij x_j:  y_A1 = (3.82023, 4, .82023), y_A2 = (3.30330, 4, .30330), y_B = (7, -2, 10)
      LayerNorm (gain 1, bias 0, eps 1e-5), then Linear(3,3; identity) -> ReLU -> Linear(3,1; w (1, -1, .5), b .1)
      S = sigmoid(that) = (.49418, .41717 | .72761); at test the predicate scores are softmax(rel_logits) * S.
    The arithmetic below is the same, step by step on scalars."""
    ranker = Ranker(1, 2, 1, hidden_dim=1, attention_dim=3, num_heads=1, num_layers=1, predictor="LinkNetPredictor")
    _set_linear(ranker.feature_mlp[0], [[1.0]], [0.0])
    _set_linear(ranker.feature_mlp[2], [[1.0]], [0.0])
    _set_linear(ranker.predicate_mlp[0], [[0.0, 1.0]], [0.0])
    _set_linear(ranker.predicate_mlp[2], [[2.0]], [0.0])
    _set_linear(ranker.input_proj, [[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]], [0.0, 0.0, 0.5])
    qkv = [[0.0] * 3 for _ in range(9)]
    qkv[0][0] = 1.0  # q = (x[0], 0, 0)
    qkv[3][2] = 1.0  # k = (x[2], 0, 0)
    for i in range(3):
        qkv[6 + i][i] = 1.0  # v = x
    _set_linear(ranker.attention[0].qkv, qkv, [0.0] * 9)
    _set_linear(ranker.attention[0].out, torch.eye(3).tolist(), [0.0] * 3)
    _set_linear(ranker.score_head[0], torch.eye(3).tolist(), [0.0] * 3)
    _set_linear(ranker.score_head[2], [[1.0, -1.0, 0.5]], [0.1])
    boxes = [BoxList(torch.zeros(2, 4), (28, 20)), BoxList(torch.zeros(2, 4), (28, 20))]
    pairs = [torch.tensor([[0, 1], [1, 0]]), torch.tensor([[0, 1]])]
    # 20 x 28 images padded to 32 x 32: a stride-4 map covers them with its first 5 x 7 cells; padding holds 50
    fmap = torch.full((2, 1, 8, 8), 50.0)
    fmap[0, :, :5, :7], fmap[1, :, :5, :7] = 2.0, -1.0
    batch = RelationBatch("predcls", boxes, pairs, torch.zeros(4, 1), features={"0": fmap},
                          image_sizes=[(20, 28), (20, 28)])
    ln3 = math.log(3.0)
    rel_logits = torch.tensor([[0.0, 0.0], [0.0, ln3], [ln3, 0.0]])
    output = PredictorOutput(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), rel_logits,
                             torch.tensor([[1.0], [-2.0], [3.0]]))
    with torch.no_grad():
        rescored, rel_scores = ranker.eval()(batch, output)

    def sigmoid(v):
        return 1.0 / (1.0 + math.exp(-v))

    def layer_norm(y):
        mean = sum(y) / 3
        var = sum((v - mean) ** 2 for v in y) / 3
        return [(v - mean) / math.sqrt(var + 1e-5) for v in y]

    x_a1, x_a2, x_b = [2.0, 2.0, 0.5], [1.5, 2.0, 0.0], [3.5, -1.0, 5.0]
    w_a1 = sigmoid(2.0 * 0.5 / math.sqrt(3))  # weight of A1 in A1's row (A2's key is 0)
    w_a2 = sigmoid(1.5 * 0.5 / math.sqrt(3))  # weight of A1 in A2's row
    y_a1 = [x + w_a1 * a + (1 - w_a1) * b for x, a, b in zip(x_a1, x_a1, x_a2)]
    y_a2 = [x + w_a2 * a + (1 - w_a2) * b for x, a, b in zip(x_a2, x_a1, x_a2)]
    y_b = [2 * v for v in x_b]
    assert [round(v, 5) for v in y_a1] == [3.82023, 4.0, 0.82023]
    expected_s = []
    for y in (y_a1, y_a2, y_b):
        z = [max(0.0, v) for v in layer_norm(y)]
        expected_s.append(sigmoid(z[0] - z[1] + 0.5 * z[2] + 0.1))
    # LayerNorm rows (.6446, .7678, -1.4124), (.4787, .9131, -1.3918), (.3922, -1.3728, .9806)
    assert [round(v, 5) for v in expected_s] == [0.49418, 0.41717, 0.72761]
    assert torch.allclose(rescored.aux.ranker.scores, torch.tensor(expected_s), atol=1e-5)
    probs = [[0.5, 0.5], [0.25, 0.75], [0.75, 0.25]]
    assert torch.allclose(rel_scores, torch.tensor([[p * s for p in row] for row, s in zip(probs, expected_s)]),
                          atol=1e-5)


def _slice(batch, output, image, end, start):
    sub = RelationBatch("predcls", [batch.boxes[image]], [batch.pair_idxs[image]], batch.roi_features[:3],
                        features={"0": batch.features["0"][image:image + 1]}, image_sizes=[batch.image_sizes[image]])
    return sub, PredictorOutput(output.obj_logits, output.obj_preds, output.rel_logits[start:end],
                                output.rel_features[start:end])


def test_ranker_changes_the_order_of_triplets_at_test():
    """The post-processor ranks pairs by max_{p>=1} rel_scores x object scores: with the Ranker that is
    S x max p x s_s x s_o."""
    boxes = BoxList(torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30], [5, 5, 15, 15.]]), (40, 40))
    boxes.add_field("labels", torch.tensor([1, 2, 3]))
    pairs = torch.tensor([[0, 1], [1, 2]])
    rel_logits = torch.tensor([[0.0, 3.0, 0.0], [0.0, 2.0, 0.0]])  # the first pair is more confident ...
    probs = F.softmax(rel_logits, -1)
    ranker_scores = torch.tensor([0.1, 0.9])  # ... but the Ranker prefers the second
    processor = RelationPostProcessor("predcls")
    plain = processor(boxes, torch.zeros(3, 4), rel_logits, pairs)
    ranked = processor(boxes, torch.zeros(3, 4), rel_logits, pairs, probs * ranker_scores[:, None])
    assert plain.get_field("rel_pair_idxs").tolist() == [[0, 1], [1, 2]]
    assert ranked.get_field("rel_pair_idxs").tolist() == [[1, 2], [0, 1]]
    assert ranked.get_field("pred_rel_labels").tolist() == [1, 1]  # the predicate label is unchanged
    # 0.9 * p(1 | pair 2), predcls object scores are 1
    assert torch.allclose(ranked.get_field("pred_rel_scores")[0], 0.9 * probs[1])


def test_ranker_score_combination_none_leaves_the_scores():
    batch, output = _ranker_batch((4,))
    _, rel_scores = _ranker(score_combination="none").eval()(batch, output)
    assert rel_scores is None
    with pytest.raises(ValueError, match="SCORE_COMBINATION"):
        _ranker(score_combination="add")


def test_ranker_training_gradient_reaches_the_relation_features_unless_detached():
    for detach in (False, True):
        ranker = _ranker(detach_inputs=detach).train()
        batch, output = _ranker_batch((5, 3))
        output.rel_features.requires_grad_(True)
        rescored, rel_scores = ranker(batch, output)
        assert rel_scores is None  # nothing to combine in training
        labels = [1, 0, 0, 2, 0, 0, 3, 0]
        loss = RankerLoss()(_inputs(output.rel_logits, labels, rescored.aux.ranker.logits))["loss_rank"]
        loss.backward()
        assert (output.rel_features.grad is None) == detach
        assert all(p.grad is not None for p in ranker.parameters())


def test_ranker_without_predicate_distribution_has_no_mlp_p():
    ranker = _ranker(use_predicate_dist=False)
    assert ranker.predicate_mlp is None
    batch, output = _ranker_batch((3,))
    assert ranker.eval()(batch, output)[1].shape == (3, NUM_PREDICATES)


def test_ranker_refuses_a_predictor_without_relation_features():
    batch, output = _ranker_batch((3,))
    output.rel_features = None
    with pytest.raises(ValueError, match="FrequencyPredictor.*rel_features|rel_features.*FrequencyPredictor"):
        _ranker(predictor="FrequencyPredictor")(batch, output)


def test_ranker_reports_relation_features_of_another_width():
    batch, output = _ranker_batch((3,))
    output.rel_features = torch.zeros(3, 7)
    with pytest.raises(ValueError, match="REL_FEATURE_DIM"):
        _ranker()(batch, output)


def test_ranker_heads_must_divide_the_attention_width():
    with pytest.raises(ValueError, match="NUM_HEAD"):
        _ranker(attention_dim=8, num_heads=3)


# ----------------------------------------------------------------------------- the whole scene graph model
def _statistics():
    rng = np.random.default_rng(0)
    dist = rng.dirichlet(np.ones(NUM_PREDICATES), size=(NUM_CLASSES, NUM_CLASSES)).astype(np.float32)
    return {"pred_dist": np.log(dist + 1e-3), "fg_matrix": np.ones((NUM_CLASSES,) * 2 + (NUM_PREDICATES,), np.int64),
            "obj_classes": ["__background__"] + [f"c{i}" for i in range(1, NUM_CLASSES)],
            "rel_classes": ["__background__"] + [f"p{i}" for i in range(1, NUM_PREDICATES)]}


def _cfg(predictor, box, label, *extra):
    return load_config(None, [
        "MODEL.BACKBONE.CONV_BODY", "tiny-FPN", "MODEL.RANDOM_INIT_BACKBONE", "True", "MODEL.RELATION_ON", "True",
        "MODEL.ROI_BOX_HEAD.NUM_CLASSES", str(NUM_CLASSES), "MODEL.ROI_RELATION_HEAD.NUM_CLASSES", str(NUM_PREDICATES),
        "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", "32",
        "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", "4", "MODEL.BACKBONE.OUT_CHANNELS", "16",
        "MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM", "16", "MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM", "32",
        "MODEL.ROI_RELATION_HEAD.EMBED_DIM", "8", "MODEL.ROI_RELATION_HEAD.LINKNET.GEOMETRY_DIM", "8",
        "MODEL.ROI_RELATION_HEAD.BATCH_SIZE_PER_IMAGE", "32", "MODEL.ROI_RELATION_HEAD.PREDICTOR", predictor,
        "MODEL.ROI_HEADS.SCORE_THRESH", "0.0", "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", "8",
        "MODEL.ROI_HEADS.NMS_FILTER_DUPLICATES", "True",
        "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", str(box), "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", str(label),
        "GLOVE_DIR", "/nonexistent", *extra])


def _target(boxes, labels, rels, size=(96, 64)):
    t = BoxList(torch.tensor(boxes, dtype=torch.float32), size)
    t.add_field("labels", torch.tensor(labels))
    matrix = torch.zeros(len(boxes), len(boxes), dtype=torch.long)
    for s, o, p in rels:
        matrix[s, o] = p
    t.add_field("relation", matrix)
    t.add_field("relation_tuple", torch.tensor(rels, dtype=torch.long).reshape(-1, 3))
    return t


def _images_and_targets():
    torch.manual_seed(0)
    images = to_image_list([torch.randn(3, 64, 96), torch.randn(3, 48, 96)], 32)
    targets = [_target([[2, 2, 30, 30], [20, 10, 60, 40], [50, 30, 90, 60], [5, 40, 25, 60]], [1, 2, 3, 4],
                       [[0, 1, 1], [1, 2, 2], [3, 0, 4]]),
               _target([[10, 10, 40, 40], [45, 5, 80, 45]], [5, 2], [[0, 1, 3]], size=(96, 48))]
    return images, targets


CCE_RANK_LOSS = ["MODEL.ROI_RELATION_HEAD.LOSS", '("cce", "ObjectCE", "ranker")']
LINKNET_LOSS = ["MODEL.ROI_RELATION_HEAD.LOSS", '("cce", "ObjectCE", "gce", "ranker")']


@pytest.mark.parametrize("predictor,loss", [("MotifPredictor", CCE_RANK_LOSS), ("LinkNetPredictor", LINKNET_LOSS)])
@pytest.mark.parametrize("mode,box,label", PROTOCOLS)
def test_cce_and_ranker_train_and_predict_in_every_protocol(predictor, loss, mode, box, label):
    model = SceneGraphRCNN.from_config(_cfg(predictor, box, label, *loss, *RANKER_OPTS), _statistics())
    images, targets = _images_and_targets()
    model.train()
    losses = model(images, targets)
    assert {"loss_rel_cce", "loss_rank", "loss_refine_obj"} <= set(losses)
    assert ("loss_gce" in losses) == (predictor == "LinkNetPredictor")
    total = sum(losses.values())
    assert torch.isfinite(total)
    if mode != "sgdet":  # a random detector may match no GT box, leaving SGDet without pairs to learn from
        total.backward()
        assert all(p.grad is not None for p in model.relation_head.rescorer.parameters())
    model.eval()
    with torch.no_grad():
        predictions = model(images, targets)
    for prediction in predictions:
        rel_scores = prediction.get_field("pred_rel_scores")
        pairs = prediction.get_field("rel_pair_idxs")
        assert rel_scores.shape == (len(pairs), NUM_PREDICATES)
        row_sums = rel_scores.sum(1)  # softmax x S: each row sums to the pair's ranker score in (0, 1)
        assert ((row_sums > 0) & (row_sums < 1)).all()
        if len(pairs):
            obj_scores = prediction.get_field("pred_scores")
            triplet = rel_scores[:, 1:].max(1).values * obj_scores[pairs[:, 0]] * obj_scores[pairs[:, 1]]
            assert (triplet[:-1] >= triplet[1:] - 1e-6).all()  # sorted by the re-scored triplet score


def test_ranker_after_the_frequency_baseline_is_refused():
    cfg = _cfg("FrequencyPredictor", True, True, "MODEL.ROI_RELATION_HEAD.LOSS", '("RelationCE", "ranker")',
               *RANKER_OPTS)
    model = SceneGraphRCNN.from_config(cfg, _statistics()).train()
    images, targets = _images_and_targets()
    with pytest.raises(ValueError, match="FrequencyPredictor exposes"):
        model(images, targets)


def test_ranker_without_its_loss_term_is_refused():
    with pytest.raises(ValueError, match="LOSS term 'ranker'"):
        SceneGraphRCNN.from_config(_cfg("MotifPredictor", True, True, *RANKER_OPTS), _statistics())


def test_fine_tuning_starts_from_a_ce_checkpoint_of_the_same_predictor_only(tmp_path):
    statistics = _statistics()
    ce_cfg = _cfg("LinkNetPredictor", True, False, "MODEL.ROI_RELATION_HEAD.LOSS", '("RelationCE", "ObjectCE", "gce")')
    ce_model = SceneGraphRCNN.from_config(ce_cfg, statistics)
    Checkpointer(ce_model, save_dir=str(tmp_path / "ce"), cfg=ce_cfg).save("model_final", 10)
    motif_cfg = _cfg("MotifPredictor", True, False)
    motif = SceneGraphRCNN.from_config(motif_cfg, statistics)
    Checkpointer(motif, save_dir=str(tmp_path / "motif"), cfg=motif_cfg).save("model_final", 10)

    cce_cfg = _cfg("LinkNetPredictor", True, False, *LINKNET_LOSS, *RANKER_OPTS)
    cce_model = SceneGraphRCNN.from_config(cce_cfg, statistics)
    report = Checkpointer(cce_model, cfg=cce_cfg).load_weights(str(tmp_path / "ce" / "model_final.pth"))
    assert report["missing"] and all(k.startswith("relation_head.rescorer.") for k in report["missing"])
    for name, value in ce_model.relation_head.predictor.state_dict().items():
        assert torch.equal(cce_model.relation_head.predictor.state_dict()[name], value)

    with pytest.raises(ValueError, match="'MotifPredictor'.*'LinkNetPredictor'"):
        Checkpointer(cce_model, cfg=cce_cfg).load_weights(str(tmp_path / "motif" / "model_final.pth"))


# --------------------------------------------------------------------------------------------------- configs
def test_shipped_configs_load_with_the_paper_settings():
    names = sorted(glob.glob(os.path.join(REPO, "configs", "linknet", "*.yaml"))
                   + glob.glob(os.path.join(REPO, "configs", "synthetic", "linknet_*.yaml"))
                   + [os.path.join(REPO, "configs", "synthetic", "motif_cce_ranker.yaml")])
    assert len(names) == 6
    for path in names:
        cfg = load_config(path)
        head = cfg.MODEL.ROI_RELATION_HEAD
        if "cce" in os.path.basename(path):
            assert head.LOSS[0] == "cce" and "ranker" in head.LOSS and head.RESCORER == "Ranker"
            assert (head.CCE.LAMBDA1, head.CCE.MARGIN_M1, head.RANKER.LAMBDA2) == (100.0, 0.0, 1.0)
    paper = load_config(os.path.join(REPO, "configs", "linknet", "linknet_cce_ranker.yaml"))
    assert (paper.SOLVER.IMS_PER_BATCH, paper.SOLVER.BASE_LR, paper.SOLVER.GRAD_NORM_CLIP) == (10, 1e-4, 5.0)
    assert (paper.MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM, paper.MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM) == \
        (256, 4096)
    assert paper.SOLVER.MAX_ITER == 30 * math.ceil(57723 / 10)

