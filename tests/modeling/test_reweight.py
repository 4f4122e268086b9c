"""ReweightedRelationCE: the class-balanced weights (and that they are the reference's VG150 vector), the weight file,
the head-predicate curriculum at chosen iterations, resume through the state dict, USE_REWEIGHT, bad input."""
import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

from sgg.config import load_config
from sgg.modeling.roi_heads.relation_head.losses import RelationLossInputs, build_relation_losses
from sgg.modeling.roi_heads.relation_head.losses.reweight import (ReweightedRelationCE, curriculum_factor,
                                                                  effective_number_weights, head_predicates,
                                                                  load_weight_file, resolve_loss_spec)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VG150_WEIGHTS = os.path.join(REPO, "configs", "penet", "vg150_penet_predicate_weights.json")
# predicate_count of VG150's VG-SGG-dicts-with-attri.json (all splits), in class order 1..50
VG150_COUNTS = [47341, 1996, 3092, 3624, 3477, 9903, 10190, 41356, 3288, 3411, 5213, 2312, 3806, 4688, 1973, 9145,
                2945, 1853, 9894, 277936, 42722, 251756, 13715, 3739, 3083, 1869, 2380, 2253, 96589, 146339, 712409,
                1914, 9317, 3095, 2721, 2065, 3810, 8856, 2241, 18643, 14185, 2517, 22596, 1925, 1740, 4613, 3490,
                136099, 15457, 66425]
RW = "MODEL.ROI_RELATION_HEAD.REWEIGHT."
NAMES = ["__background__", "on", "has", "near", "parked on"]


def inputs(logits, labels):
    return RelationLossInputs(rel_logits=logits, rel_labels=labels)


def test_effective_number_weights_by_hand():
    # beta = 0.5, counts (bg, 1, 2): raw = (0.5, 0.5 / 0.5 = 1, 0.5 / 0.75 = 2/3); sum 13/6; x 3 / sum
    weights = effective_number_weights([0, 1, 2], 0.5)
    assert torch.allclose(weights, torch.tensor([0.5, 1.0, 2 / 3]) * 3 / (13 / 6), atol=1e-6)
    assert weights.sum().item() == pytest.approx(3.0)


def test_effective_number_weights_reproduce_the_reference_vg150_vector():
    with open(VG150_WEIGHTS) as f:
        reference = torch.tensor(list(json.load(f).values()))
    weights = effective_number_weights([0] + VG150_COUNTS, 0.99999)
    assert (weights - reference).abs().max().item() < 1e-4  # the file holds 4 decimals


def test_weight_file_formats_and_names(tmp_path):
    (tmp_path / "w.json").write_text(json.dumps({"on": 0.1, "__background__": 0.5, "has": 1, "near": 2,
                                                 "parked on": 3}))
    assert load_weight_file(str(tmp_path / "w.json"), NAMES).tolist() == pytest.approx([0.5, 0.1, 1, 2, 3])
    (tmp_path / "w.txt").write_text("0.5\n0.1\n1\n2\n3\n")
    assert load_weight_file(str(tmp_path / "w.txt"), NAMES).tolist() == pytest.approx([0.5, 0.1, 1, 2, 3])
    vg = load_weight_file(VG150_WEIGHTS, ["__background__"] + list(json.load(open(VG150_WEIGHTS)))[1:])
    assert vg[31].item() == pytest.approx(0.0419)  # "on"


def test_weight_file_errors(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"on": 1.0, "sits": 2.0}))
    with pytest.raises(ValueError, match=r"WEIGHT_FILE: .*bad.json does not name the dataset's predicates"):
        load_weight_file(str(tmp_path / "bad.json"), NAMES)
    (tmp_path / "short.txt").write_text("1\n2\n")
    with pytest.raises(ValueError, match="has 2 weights but there are 5 predicate classes"):
        load_weight_file(str(tmp_path / "short.txt"), NAMES)
    with pytest.raises(FileNotFoundError, match="WEIGHT_FILE: .*missing.txt does not exist"):
        load_weight_file(str(tmp_path / "missing.txt"), NAMES)


def test_head_set_by_names_or_counts():
    assert head_predicates(["near", "on"], 16, None, NAMES) == [3, 1]
    assert head_predicates([], 2, [0, 50, 5, 80, 1], NAMES) == [1, 3]
    assert head_predicates([], 0, None, NAMES) == []
    with pytest.raises(ValueError, match="HEAD_PREDICATES: \\['sits'\\]"):
        head_predicates(["sits"], 16, None, NAMES)
    # the reference's 16 VG150 head predicates are the 16 most frequent
    reference = [41, 7, 22, 49, 23, 8, 21, 43, 20, 48, 1, 40, 50, 31, 30, 29]
    names = ["bg"] + [str(i) for i in range(1, 51)]
    assert head_predicates([], 16, [0] + VG150_COUNTS, names) == sorted(reference)


def test_curriculum_factor_at_chosen_iterations():
    assert curriculum_factor(1, 30000, 0.2) == pytest.approx(1 - 1 / 30000)
    assert curriculum_factor(15000, 30000, 0.2) == pytest.approx(0.5)
    assert curriculum_factor(24000, 30000, 0.2) == pytest.approx(0.2)
    assert curriculum_factor(60000, 30000, 0.2) == pytest.approx(0.2)
    assert curriculum_factor(10, 0, 0.2) == 1.0


def test_loss_applies_the_schedule_per_training_call_and_resumes():
    weights = torch.tensor([0.5, 1.0, 2.0])
    loss = ReweightedRelationCE(weights, head=[1], decay_iters=4, floor=0.2).train()
    logits = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([1, 2])
    # uniform logits: every pair's CE is ln 3, so the weighted mean is ln 3 whatever the weights
    assert loss(inputs(logits, labels))["loss_rel"].item() == pytest.approx(math.log(3))
    assert int(loss.iteration) == 1
    # call 2: t = 2, factor 1 - 2/4 = 0.5 -> weights (0.5, 0.5, 2)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    ce1 = -math.log(1 / (math.e ** 2 + 2))  # label 1 of row 1
    ce2 = math.log(3)
    expected = (0.5 * ce1 + 2.0 * ce2) / (0.5 + 2.0)
    assert loss(inputs(logits, labels))["loss_rel"].item() == pytest.approx(expected, rel=1e-6)
    assert torch.allclose(loss.current_weights(), torch.tensor([0.5, 0.5, 2.0]))
    # t = 4 and later: the floor 0.2
    loss(inputs(logits, labels))
    loss(inputs(logits, labels))
    assert torch.allclose(loss.current_weights(), torch.tensor([0.5, 0.2, 2.0]))
    # the counter is a buffer: a checkpoint resumes it exactly; eval calls do not advance it
    resumed = ReweightedRelationCE(weights, head=[1], decay_iters=4, floor=0.2)
    resumed.load_state_dict(loss.state_dict())
    assert int(resumed.iteration) == 4 and "iteration" in loss.state_dict()
    resumed.eval()(inputs(logits, labels))
    assert int(resumed.iteration) == 4


def test_weighted_ce_matches_torch_and_handles_no_pairs():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    loss = ReweightedRelationCE(torch.tensor([0.1, 1.0, 3.0])).train()
    assert loss(inputs(logits, labels))["loss_rel"].item() == pytest.approx(
        F.cross_entropy(logits, labels, weight=torch.tensor([0.1, 1.0, 3.0])).item(), rel=1e-6)
    empty = loss(inputs(torch.zeros(0, 3, requires_grad=True), torch.zeros(0, dtype=torch.long)))["loss_rel"]
    assert empty.item() == 0.0
    with pytest.raises(ValueError, match="4 relation logits per pair but 3 class weights"):
        loss(inputs(torch.zeros(2, 4), torch.tensor([0, 1])))


def make_stats():
    return {"rel_classes": NAMES, "predicate_counts": torch.tensor([0, 100, 40, 10, 1])}


def test_from_config_builds_with_any_predictor_losses():
    cfg = load_config(opts=["MODEL.ROI_RELATION_HEAD.LOSS", '("ReweightedRelationCE", "ObjectCE")',
                            RW + "HEAD_COUNT", "2", RW + "DECAY_ITERS", "10", RW + "BETA", "0.5"])
    losses = build_relation_losses(cfg, make_stats())
    term = losses.terms[0]
    assert term.head_mask.tolist() == [False, True, True, False, False]
    # beta 0.5: raw (0.5, ~0.5, ~0.5, ~0.5, 1) -> head weights are the two most frequent
    assert torch.allclose(term.class_weights, effective_number_weights([0, 100, 40, 10, 1], 0.5))


def test_use_reweight_swaps_relation_ce_in_the_loss_list():
    cfg = load_config(opts=["MODEL.USE_REWEIGHT", "PENET", "MODEL.ROI_RELATION_HEAD.LOSS",
                            '("RelationCE", "ObjectCE:0.5")'])
    assert resolve_loss_spec(cfg) == [("ReweightedRelationCE", 1.0), ("ObjectCE", 0.5)]
    cfg = load_config(opts=["MODEL.USE_REWEIGHT", "none"])
    assert resolve_loss_spec(cfg) == [("RelationCE", 1.0), ("ObjectCE", 1.0)]
    with pytest.raises(ValueError, match="MODEL.USE_REWEIGHT must be one of none, PENET"):
        resolve_loss_spec(load_config(opts=["MODEL.USE_REWEIGHT", "focal"]))
    with pytest.raises(ValueError, match="needs a relation CE"):
        resolve_loss_spec(load_config(opts=["MODEL.USE_REWEIGHT", "PENET", "MODEL.ROI_RELATION_HEAD.LOSS",
                                            '("ObjectCE",)']))


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="WEIGHTS must be 'effective_number' or 'file'"):
        build_relation_losses(load_config(opts=["MODEL.ROI_RELATION_HEAD.LOSS", '("ReweightedRelationCE",)',
                                                RW + "WEIGHTS", "median"]), make_stats())
    with pytest.raises(ValueError, match="WEIGHT_FILE is empty"):
        build_relation_losses(load_config(opts=["MODEL.ROI_RELATION_HEAD.LOSS", '("ReweightedRelationCE",)',
                                                RW + "WEIGHTS", "file"]), make_stats())
    with pytest.raises(ValueError, match="BETA must be in"):
        effective_number_weights([0, 1], 1.0)
    with pytest.raises(ValueError, match="FLOOR must be in"):
        ReweightedRelationCE(torch.ones(3), floor=1.5)
