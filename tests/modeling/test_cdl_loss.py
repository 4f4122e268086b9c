"""The category discriminating loss (FGPL / ReBalance-HCA predicate reweighting, METHODS.md 5.2): the lattice, the
per-batch weights and the loss value on a hand-made example, and every bad-input path."""
import math
import os
import sys

import numpy as np
import pytest
import torch

from sgg.config import load_config
from sgg.modeling.roi_heads.relation_head.losses import RelationLossInputs, build_relation_losses
from sgg.modeling.roi_heads.relation_head.losses import cdl as cdl_module
from sgg.modeling.roi_heads.relation_head.losses.cdl import (CategoryDiscriminatingLoss, class_weights,
                                                             predicate_lattice)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_values import load_golden  # noqa: E402

LOG2 = math.log(2.0)
# rows = GT, columns = predicted; background (0) row/column zero as the confusion tool writes them
CONFUSION = np.array([[0, 0, 0, 0],
                      [0, 5, 5, 0],    # GT 1 is predicted 1 or 2 equally often: 2 is correlated with 1
                      [0, 5, 5, 0],    # and 1 with 2
                      [0, 0, 1, 3]],   # GT 3: 2 is predicted a quarter of the time (not correlated)
                     dtype=np.float64)
LABELS = torch.tensor([0, 0, 0, 0, 1, 1, 2])  # n = (4, 2, 1, 0): class 3 is absent from the batch
LOGITS = torch.log(torch.tensor([1.0, 2.0, 1.0, 3.0])).repeat(7, 1)  # exp(z) = (1, 2, 1, 3) for every pair


def inputs(logits, labels):
    return RelationLossInputs(rel_logits=logits, rel_labels=labels)


def test_lattice_by_hand():
    corr = predicate_lattice(CONFUSION)
    # P = row-normalised (background row becomes [1, 0, 0, 0]); corr = P_ij / (P_ii + 1e-4)
    want = torch.tensor([[1 / 1.0001, 0, 0, 0],
                         [0, 0.5 / 0.5001, 0.5 / 0.5001, 0],
                         [0, 0.5 / 0.5001, 0.5 / 0.5001, 0],
                         [0, 0, 0.25 / 0.7501, 0.75 / 0.7501]])
    torch.testing.assert_close(corr, want)


def test_row_normalisation_equals_the_reference_expression():
    """The reference divides row i by column-sum i before normalising rows; that per-row factor cancels."""
    g = np.random.default_rng(0)
    counts = g.integers(0, 20, size=(6, 6)).astype(np.float64)
    m = counts.copy()
    m[0, :], m[:, 0], m[0, 0] = 0, 0, 1
    m = m / (m.sum(0)[:, None] + 1e-8)
    p = m / m.sum(1, keepdims=True)
    reference = p / (np.diag(p)[:, None] + 1e-4)
    torch.testing.assert_close(predicate_lattice(counts, "row"), torch.from_numpy(reference).float())


def test_column_normalisation_by_hand():
    confusion = np.array([[0, 0, 0], [0, 1, 3], [0, 1, 1]], dtype=np.float64)
    # columns 1 and 2 sum to 2 and 4: rows become (.5, .75) and (.5, .25), normalised (.4, .6) and (2/3, 1/3)
    corr = predicate_lattice(confusion, "column")
    want = torch.tensor([[1 / 1.0001, 0, 0],
                         [0, 0.4 / 0.4001, 0.6 / 0.4001],
                         [0, (2 / 3) / (1 / 3 + 1e-4), (1 / 3) / (1 / 3 + 1e-4)]])
    torch.testing.assert_close(corr, want)


def test_batch_weights_by_hand():
    weights = class_weights(torch.tensor([4, 2, 1, 0]), predicate_lattice(CONFUSION), 1.5, 2.0, 0.9)
    mitigated_half, mitigated_quarter = math.log(1 + 0.5 ** 1.5), math.log(1 + 0.25 ** 1.5)
    want = torch.tensor([
        # GT bg (n=4): rarer, uncorrelated foreground negatives are mitigated by (n_j/4)^1.5
        [LOG2, mitigated_half, mitigated_quarter, 0.0],
        # GT 1 (n=2): bg is commoner but uncorrelated -> 1; class 2 is rarer but correlated -> 1
        [LOG2, LOG2, LOG2, 0.0],
        # GT 2 (n=1): class 1 is commoner and correlated -> compensated (2/1)^2 = 4, w = log 5
        [LOG2, math.log(5.0), LOG2, 0.0],
        # GT 3 absent: every ratio clamps to 1000 >= 1, nothing correlated but itself (ratio 1) -> log 2
        [LOG2, LOG2, LOG2, LOG2]])
    torch.testing.assert_close(weights, want, atol=1e-6, rtol=0)
    assert (weights[:3, 3] < 1e-10).all()  # the absent class leaves the three softmax denominators


def test_loss_value_by_hand():
    loss = CategoryDiscriminatingLoss(CONFUSION, 1.5, 2.0, 0.9)(inputs(LOGITS, LABELS))["loss_rel_cdl"]
    # per pair: -z_y + log sum_j w_yj exp(z_j), exp(z) = (1, 2, 1, 3), class 3 weighted ~0
    bg = math.log(LOG2 * 1 + math.log(1 + 0.5 ** 1.5) * 2 + math.log(1 + 0.25 ** 1.5) * 1)  # = ln 1.416396
    one = math.log(LOG2 * (1 + 2 + 1)) - math.log(2.0)  # = ln(2 ln 2)
    two = math.log(LOG2 * 1 + math.log(5.0) * 2 + LOG2 * 1)  # = ln(2 ln 10)
    want = (4 * bg + 2 * one + two) / 7
    assert abs(want - 0.510415) < 1e-5  # 0.348115, 0.326634, 1.527180 by hand
    assert loss.item() == pytest.approx(want, abs=1e-5)


def test_keeping_absent_classes_puts_them_back_with_weight_log2():
    loss = CategoryDiscriminatingLoss(CONFUSION, absent="keep")(inputs(LOGITS, LABELS))["loss_rel_cdl"]
    extra = LOG2 * 3  # class 3 (exp z = 3) joins each denominator with w = log 2
    bg = math.log(LOG2 + math.log(1 + 0.5 ** 1.5) * 2 + math.log(1 + 0.25 ** 1.5) + extra)
    one = math.log(LOG2 * 4 + extra) - math.log(2.0)
    two = math.log(LOG2 * 2 + math.log(5.0) * 2 + extra)
    assert loss.item() == pytest.approx((4 * bg + 2 * one + two) / 7, abs=1e-5)


def test_equal_weights_reduce_to_cross_entropy_plus_a_constant():
    """With every class equally frequent and nothing correlated, w = log 2 everywhere: L = CE - log(log 2)."""
    confusion = np.eye(4)
    labels = torch.tensor([0, 1, 2, 3])
    logits = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    loss = CategoryDiscriminatingLoss(confusion, threshold=2.0)(inputs(logits, labels))["loss_rel_cdl"]
    want = torch.nn.functional.cross_entropy(logits, labels) + math.log(LOG2)
    torch.testing.assert_close(loss, want)


def test_gradient_flows_to_the_logits():
    logits = LOGITS.clone().requires_grad_(True)
    CategoryDiscriminatingLoss(CONFUSION)(inputs(logits, LABELS))["loss_rel_cdl"].backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    assert torch.all(logits.grad[:, 3].abs() < 1e-8)  # the dropped absent class is not pushed down


# ------------------------------------------------------------------------------------------------ defined edge cases
def test_batch_without_foreground_relation_gives_zero_loss_and_zero_gradient():
    logits = torch.randn(5, 4, requires_grad=True)
    for absent in ("drop", "keep"):
        loss = CategoryDiscriminatingLoss(CONFUSION, absent=absent)(inputs(logits, torch.zeros(5, dtype=torch.long)))
        assert loss["loss_rel_cdl"].item() == 0.0
        loss["loss_rel_cdl"].backward()
        assert torch.all(logits.grad == 0)


def test_empty_batch_gives_zero_loss():
    loss = CategoryDiscriminatingLoss(CONFUSION)(inputs(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)))
    assert loss["loss_rel_cdl"].item() == 0.0


# ------------------------------------------------------------------------------------------------------- bad input
def make_cfg(*extra):
    return load_config(opts=["MODEL.ROI_RELATION_HEAD.LOSS", '("cdl", "ObjectCE")', *[str(o) for o in extra]])


STATS = {"rel_classes": ["__background__", "on", "has", "near"]}


def test_reweighting_without_a_confusion_matrix_names_the_key():
    with pytest.raises(ValueError, match="MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH"):
        build_relation_losses(make_cfg(), STATS)


def test_lattice_with_the_wrong_number_of_predicates():
    with pytest.raises(ValueError, match=r"expected \(5, 5\) for 5 predicate classes"):
        CategoryDiscriminatingLoss(CONFUSION, num_predicates=5)
    loss = CategoryDiscriminatingLoss(CONFUSION)
    with pytest.raises(ValueError, match="lattice .* has 4 classes"):
        loss(inputs(torch.zeros(3, 6), torch.tensor([0, 1, 2])))


def test_bad_matrices_labels_and_options():
    with pytest.raises(ValueError, match="square"):
        predicate_lattice(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="non-negative"):
        predicate_lattice(-np.eye(3))
    with pytest.raises(ValueError, match="LATTICE_NORMALIZATION"):
        predicate_lattice(CONFUSION, "both")
    with pytest.raises(ValueError, match="ABSENT_CLASSES"):
        CategoryDiscriminatingLoss(CONFUSION, absent="ignore")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        CategoryDiscriminatingLoss(CONFUSION)(inputs(torch.zeros(2, 4), torch.tensor([1, 4])))


def test_built_from_the_config_with_a_saved_matrix(tmp_path, monkeypatch):
    """The key reaches the loader with the predicate count of the statistics. The file is read through BA-SGG's
    ``load_confusion_matrix`` (its own tests cover the file checks); a stand-in with that signature is used here."""
    calls = []

    def fake_loader(path, num_predicates, predicate_names=None):
        calls.append((str(path), num_predicates, list(predicate_names)))
        return np.load(path)

    monkeypatch.setattr(cdl_module, "read_confusion_matrix", fake_loader)
    path = tmp_path / "conf_mat_freq_train.npy"
    np.save(path, CONFUSION)
    cfg = make_cfg("MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH", path,
                   "MODEL.ROI_RELATION_HEAD.CDL.ABSENT_CLASSES", "keep",
                   "MODEL.ROI_RELATION_HEAD.CDL.COMPENSATION_FACTOR", 3.0)
    losses = build_relation_losses(cfg, STATS)
    assert calls == [(str(path), 4, STATS["rel_classes"])] and losses.names == ["cdl", "ObjectCE"]
    term = losses.terms[0]
    assert (term.absent, term.compensation, term.mitigation, term.threshold) == ("keep", 3.0, 1.5, 0.9)
    values = losses(RelationLossInputs(rel_logits=LOGITS, rel_labels=LABELS))
    assert set(values) == {"loss_rel_cdl", "loss_refine_obj"}
    wrong = {"rel_classes": STATS["rel_classes"] + ["parked on"]}  # 5 predicates, a 4 x 4 matrix
    with pytest.raises(ValueError, match=r"expected \(5, 5\) for 5 predicate classes"):
        build_relation_losses(cfg, wrong)


def test_file_problems_name_the_cdl_key(tmp_path):
    matrix = CONFUSION.copy()
    matrix[2] = 0  # a predicate the stage-1 model never saw
    path = tmp_path / "conf_mat_freq_train.npy"
    np.save(path, matrix)
    # warned, not refused (the reference's + 1e-8): the never-seen GT predicate gets a zero lattice row
    with pytest.warns(UserWarning, match=r"MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH: .* all-zero rows for "
                                         r"predicates 2 \(has\)"):
        loaded = cdl_module.read_confusion_matrix(str(path), CONFUSION.shape[0], STATS["rel_classes"])
    corr = CategoryDiscriminatingLoss(loaded).correlation
    assert torch.equal(corr[2], torch.zeros(4)) and torch.isfinite(corr).all()
    assert torch.allclose(corr[1], torch.tensor([0.0, 1.0, 1.0, 0.0]), atol=1e-3)
    with pytest.raises(FileNotFoundError, match="MODEL.ROI_RELATION_HEAD.CDL.CONFUSION_MATRIX_PATH"):
        cdl_module.read_confusion_matrix(str(tmp_path / "none.npy"), CONFUSION.shape[0])


@pytest.mark.parametrize("batch", [0, 1])
def test_loss_and_gradient_match_the_reference_implementation(batch):
    """Golden values of LinusLing/ReBalance-HCA at d09f9327834767da7657e35380ce4b2a8c59fdd3:
    ``RelationLossComputation`` (``__init__``'s lattice from ``conf_mat_freq_train.npy`` and ``__call__``'s
    ``use_logits_reweight`` block with ``MyCrossEntropyLoss``) in ``maskrcnn_benchmark/modeling/roi_heads/
    relation_head/loss.py``, run on the CPU with its hard-coded 51 predicates. Inputs: a non-symmetric 51 x 51
    confusion matrix (rows often confused with other predicates more than predicted right, so corr > 0.9 occurs off
    the diagonal; GT row 17 and predicted column 23 all zero) and two batches (96 pairs, ~60% background, 24 classes
    absent; 40 pairs, ~20% background, 26 absent) of logits and labels. The loss value and d loss / d logits were
    taken from the reference with autograd. No weights."""
    golden = load_golden("cdl.npz")
    logits = torch.from_numpy(golden[f"logits_{batch}"]).requires_grad_(True)
    labels = torch.from_numpy(golden[f"labels_{batch}"])
    loss = CategoryDiscriminatingLoss(golden["confusion"])(inputs(logits, labels))["loss_rel_cdl"]
    grad, = torch.autograd.grad(loss, logits)
    assert loss.item() == pytest.approx(float(golden[f"loss_{batch}"]), rel=1e-6)
    torch.testing.assert_close(grad, torch.from_numpy(golden[f"grad_{batch}"]), rtol=1e-5, atol=1e-7)
