"""benchmarks/bench_train_vs_sgb.py: our side runs end to end on tiny settings (SGB's side needs SGB's code, which is
never in this repository), and the pieces the comparison rests on are checked by hand: the GT relation matrix, the
alternating order of the paired steps and the SGB / ours ratio."""
import importlib.util
import os
import re
import types

import pytest
import torch

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "bench_train_vs_sgb.py")
spec = importlib.util.spec_from_file_location("bench_train_vs_sgb", PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

# a small ResNet-50 body and 64-wide heads: the real code path at a fraction of the X-101 config's cost
TINY = ["--steps", "1", "--warmup", "1", "--batch", "1", "--height", "64", "--width", "96", "--boxes", "3",
        "--relations", "2", "--opts", "MODEL.BACKBONE.CONV_BODY", "R-50-FPN", "MODEL.RESNETS.NUM_GROUPS", "1",
        "MODEL.RESNETS.WIDTH_PER_GROUP", "64", "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", "64",
        "MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM", "64", "MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM", "32"]


def test_our_side_trains_motif_and_transformer_predcls(capsys):
    bench.main(["--predictors", "MotifPredictor", "TransformerPredictor", *TINY])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "Predictor" in line]
    assert re.search(r"^MotifPredictor: trainable parameters ours [1-9][0-9,]*$", out, re.M)
    measures = ["wall", "CPU", "CPU: backbone", "CPU: rest of forward", "CPU: backward", "CPU: clip + SGD"]
    assert [row.split(" | ")[:2] for row in rows] == [[f"| {predictor}", measure]
                                                     for predictor in ("MotifPredictor", "TransformerPredictor")
                                                     for measure in measures]
    assert all(float(row.split(" | ")[2].rstrip(" |")) >= 0 for row in rows)
    assert all(float(row.split(" | ")[2].rstrip(" |")) > 0 for row in rows if row.split(" | ")[1] in ("wall", "CPU"))


def test_our_side_gets_the_stated_boxes_relations_and_frozen_detector():
    args = bench.argparse.Namespace(batch=2, height=64, width=96, boxes=4, relations=3,
                                    opts=TINY[TINY.index("--opts") + 1:])
    side = bench.OurSide(args, "MotifPredictor")
    images, targets = side.inputs
    assert tuple(images.tensors.shape) == (2, 3, 64, 96)
    assert [len(t) for t in targets] == [4, 4]
    assert [int((t.get_field("relation") > 0).sum()) for t in targets] == [3, 3]
    trainable = {name.split(".")[0] for name, p in side.model.named_parameters() if p.requires_grad}
    assert "detector" not in trainable and trainable


def test_relation_matrix_puts_the_predicate_at_subject_row_object_column():
    matrix = bench.relation_matrix(torch.tensor([[0, 1, 5], [2, 0, 7]]), 3)
    expected = torch.zeros(3, 3, dtype=torch.long)
    expected[0, 1], expected[2, 0] = 5, 7
    assert torch.equal(matrix, expected)


def test_relations_must_be_fewer_than_boxes(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--boxes", "3", "--relations", "3"])
    assert "--relations must be between 1 and --boxes - 1 = 2, got 3" in capsys.readouterr().err


class FakeSide:
    """A one-parameter model behind a 'backbone' that burns CPU time; its step logs its name, to see the order
    run_pairs uses."""

    def __init__(self, name, log):
        self.name, self.log = name, log
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.optimizer = torch.optim.SGD([self.weight], lr=0.1)
        self.cfg = types.SimpleNamespace(SOLVER=types.SimpleNamespace(GRAD_NORM_CLIP=5.0))
        self.backbone = torch.nn.Linear(200, 200)
        self.backbone_clock = bench.BackboneClock(self.backbone)

    def losses(self):
        self.log.append(self.name)
        with torch.no_grad():
            for _ in range(20):
                self.backbone(torch.ones(200, 200))
        return {"loss": (self.weight * 2).sum()}


def test_pairs_alternate_which_side_goes_first_and_drop_the_warmup():
    log = []
    ours, sgb = FakeSide("ours", log), FakeSide("SGB", log)
    times = bench.run_pairs([ours, sgb], steps=3, warmup=1)
    assert log == ["ours", "SGB", "SGB", "ours", "ours", "SGB", "SGB", "ours"]
    assert len(times["ours"]) == len(times["SGB"]) == 3
    assert float(ours.weight.detach()) == pytest.approx(1 - 4 * 0.1 * 2)  # every step really trained


def test_phases_split_the_step_cpu_time_and_the_backbone_is_counted_per_step():
    side = FakeSide("ours", [])
    first, second = bench.timed_step(side), bench.timed_step(side)
    # the backbone dominates the fake step: a clock that kept the first step's time would exceed the second's CPU
    for seconds in (first, second):
        assert sum(seconds[phase] for phase in bench.PHASES) == pytest.approx(seconds["CPU"], abs=1e-9)
        assert 0 < seconds["backbone"] <= seconds["CPU"]
        assert all(seconds[phase] >= -1e-9 for phase in bench.PHASES)


def test_summary_gives_medians_and_the_pairwise_sgb_over_ours_ratio():
    # (wall, cpu) per step; wall ratios 1.5, 1.0, 3.0 and CPU ratios 2, 3, 2 (pairwise, not ratio of medians)
    def steps(pairs):
        return [{"wall": wall, "CPU": cpu} for wall, cpu in pairs]

    times = {"ours": steps([(2.0, 1.0), (4.0, 2.0), (3.0, 1.0)]), "SGB": steps([(3.0, 2.0), (4.0, 6.0), (9.0, 2.0)])}
    assert bench.summary(times, "wall") == ["3.00", "4.00", "1.50 (1.00-3.00)"]  # ratio of medians would be 1.33
    assert bench.summary(times, "CPU") == ["1.00", "2.00", "2.00 (2.00-3.00)"]
    assert bench.summary({"ours": times["ours"]}, "wall") == ["3.00"]
