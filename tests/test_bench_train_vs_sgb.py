"""benchmarks/bench_train_vs_sgb.py: our side runs end to end on tiny settings (SGB's side needs SGB's code, which is
never in this repository), and the pieces the comparison rests on are checked by hand: the GT relation matrix, the
alternating order of the paired steps and the SGB / ours ratio."""
import importlib.util
import os
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
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "Predictor" in line]
    assert [row.split(" | ")[:2] for row in rows] == [["| MotifPredictor", "wall"], ["| MotifPredictor", "CPU"],
                                                     ["| TransformerPredictor", "wall"],
                                                     ["| TransformerPredictor", "CPU"]]
    assert all(float(row.split(" | ")[2].rstrip(" |")) > 0 for row in rows)


def test_our_side_gets_the_stated_boxes_relations_and_frozen_detector():
    args = bench.argparse.Namespace(batch=2, height=64, width=96, boxes=4, relations=3, opts=TINY[TINY.index("--opts") + 1:])
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
    """A one-parameter model whose step logs its name, to see the order run_pairs uses."""

    def __init__(self, name, log):
        self.name, self.log = name, log
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.optimizer = torch.optim.SGD([self.weight], lr=0.1)
        self.cfg = types.SimpleNamespace(SOLVER=types.SimpleNamespace(GRAD_NORM_CLIP=5.0))

    def losses(self):
        self.log.append(self.name)
        return {"loss": (self.weight * 2).sum()}


def test_pairs_alternate_which_side_goes_first_and_drop_the_warmup():
    log = []
    ours, sgb = FakeSide("ours", log), FakeSide("SGB", log)
    times = bench.run_pairs([ours, sgb], steps=3, warmup=1)
    assert log == ["ours", "SGB", "SGB", "ours", "ours", "SGB", "SGB", "ours"]
    assert len(times["ours"]) == len(times["SGB"]) == 3
    assert float(ours.weight.detach()) == pytest.approx(1 - 4 * 0.1 * 2)  # every step really trained


def test_summary_gives_medians_and_the_pairwise_sgb_over_ours_ratio():
    # (wall, cpu) per step; wall ratios 1.5, 1.0, 3.0 and CPU ratios 2, 3, 2 (pairwise, not ratio of medians)
    times = {"ours": [(2.0, 1.0), (4.0, 2.0), (3.0, 1.0)], "SGB": [(3.0, 2.0), (4.0, 6.0), (9.0, 2.0)]}
    assert bench.summary(times, 0) == ["3.00", "4.00", "1.50 (1.00-3.00)"]
    assert bench.summary(times, 1) == ["1.00", "2.00", "2.00 (2.00-3.00)"]
    assert bench.summary({"ours": times["ours"]}, 0) == ["3.00"]
