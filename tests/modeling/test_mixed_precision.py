"""DTYPE bfloat16: every head trains two iterations and evaluates once under the trainer's autocast, on the CPU.

The CPU runs the same ``torch.autocast`` path a GPU runs with bfloat16 (``sgg.engine.autocast_context``), so a
float16/bfloat16 mismatch in a scatter, a loss or a post-processor shows up here and not on the first GPU user's
machine. Scores handed to the evaluator must be float32: bfloat16 keeps 8 bits of mantissa, so probabilities near
each other would tie and re-order the ranking.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from sgg.engine import autocast_context
from sgg.evaluation import SceneGraphEvaluator
from sgg.modeling.roi_heads.relation_head.inference import groundtruth_to_eval_fields, prediction_to_eval_fields

import head_matrix

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")
CPU = torch.device("cpu")


def _count_bfloat16_linear_outputs(model):
    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype == torch.bfloat16))
             for m in model.modules() if isinstance(m, nn.Linear)]
    return seen, hooks


@pytest.mark.parametrize("name,mode", head_matrix.cases())
def test_each_head_trains_and_evaluates_under_bfloat16_autocast(name, mode, tmp_path):
    model, cfg = head_matrix.build(name, mode, tmp_path)
    images, targets = head_matrix.batch()
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    seen, hooks = _count_bfloat16_linear_outputs(model)
    model.train()
    for _ in range(2):
        with autocast_context(CPU, "bfloat16"):
            losses = model(images, targets)
        assert losses and all(torch.isfinite(v) for v in losses.values()), losses
        assert all(v.dtype == torch.float32 for v in losses.values()), {k: v.dtype for k, v in losses.items()}
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    for hook in hooks:
        hook.remove()
    assert any(seen), "autocast did not run any linear layer in bfloat16"
    assert any(not torch.equal(a, p) for a, p in zip(before, params)), "two steps changed no parameter"
    assert all(torch.isfinite(p).all() for p in params)

    model.eval()
    with torch.no_grad(), autocast_context(CPU, "bfloat16"):
        predictions = model(images, targets)
    evaluator = SceneGraphEvaluator(mode=mode, num_predicates=head_matrix.NUM_PREDICATES,
                                    predicate_names=head_matrix.statistics()["rel_classes"])
    for prediction, target in zip(predictions, targets):
        scores = prediction.get_field("pred_rel_scores")
        assert scores.dtype == torch.float32 and torch.isfinite(scores).all()
        assert prediction.get_field("pred_scores").dtype == torch.float32
        assert prediction.bbox.dtype == torch.float32
        evaluator.update(groundtruth_to_eval_fields(target), prediction_to_eval_fields(prediction))
    results = evaluator.compute()
    assert results["num_images"] == 2 and 0.0 <= results["R@100"] <= 1.0


def test_float16_on_the_cpu_runs_in_float32_and_bfloat16_autocasts():
    layer = nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with autocast_context(CPU, "float16"):
        assert layer(x).dtype == torch.float32  # no GradScaler on the CPU: float16 would underflow unscaled
    with autocast_context(CPU, "bfloat16"):
        assert layer(x).dtype == torch.bfloat16
    with autocast_context(CPU, "float32"):
        assert layer(x).dtype == torch.float32


def test_precision_critical_parts_compute_in_float32_under_autocast():
    """Under bfloat16 autocast the losses, the prototype cosine logits and the soft frequency-bias lookup give the
    float32 numbers (to float32 rounding), not bfloat16's. (The Hungarian costs cast their inputs to float32
    themselves; test_iterative_sg.py checks their values.)"""
    from sgg.modeling.roi_heads.relation_head.layers.frequency_bias import FrequencyBias
    from sgg.modeling.roi_heads.relation_head.losses import RelationLossInputs
    from sgg.modeling.roi_heads.relation_head.losses.base import WeightedLosses
    from sgg.modeling.roi_heads.relation_head.layers.prototypes import cosine_logits

    g = torch.Generator().manual_seed(0)
    queries, prototypes = torch.randn(7, 24, generator=g), torch.randn(5, 24, generator=g)
    scale = torch.tensor(2.3)
    exact = cosine_logits(queries, prototypes, scale)
    with autocast_context(CPU, "bfloat16"):
        mixed = cosine_logits(queries, prototypes, scale)
    assert mixed.dtype == torch.float32 and torch.allclose(mixed, exact, atol=1e-6)

    bias = FrequencyBias(torch.randn(4, 4, 3, generator=g).log_softmax(-1))
    sub, obj = torch.randn(6, 4, generator=g).softmax(-1), torch.randn(6, 4, generator=g).softmax(-1)
    exact = bias.index_with_probability(sub, obj)
    with autocast_context(CPU, "bfloat16"):
        mixed = bias.index_with_probability(sub, obj)
    assert mixed.dtype == torch.float32 and torch.allclose(mixed, exact, atol=1e-6)

    class Probe(nn.Module):  # records the dtype a loss term sees and returns a log-sum-exp
        def forward(self, inputs):
            self.dtype = inputs.rel_logits.dtype
            return {"loss_probe": torch.logsumexp(inputs.rel_logits @ inputs.rel_logits.t(), dim=1).mean()}

    probe = Probe()
    logits = torch.randn(9, 5, generator=g)
    inputs = RelationLossInputs(rel_logits=logits.bfloat16(), rel_labels=torch.zeros(9, dtype=torch.long))
    with autocast_context(CPU, "bfloat16"):
        loss = WeightedLosses([("probe", 1.0, probe)])(inputs)["loss_probe"]
    assert probe.dtype == torch.float32 and loss.dtype == torch.float32
    expected = torch.logsumexp(logits.bfloat16().float() @ logits.bfloat16().float().t(), dim=1).mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


_MOTIF_SGDET_STEP = """
import pathlib, sys
sys.path.insert(0, sys.argv[1])
import torch
import head_matrix
from sgg.engine import autocast_context

model, cfg = head_matrix.build("Motif", "sgdet", pathlib.Path(sys.argv[2]))
images, targets = head_matrix.batch()
model.train()
with autocast_context(torch.device("cpu"), "bfloat16"):
    losses = model(images, targets)
sum(losses.values()).backward()
print("finite" if all(torch.isfinite(v) for v in losses.values()) else losses)
"""


def test_motif_trains_under_bfloat16_autocast_on_a_cpu_without_avx512(tmp_path):
    """``ONEDNN_MAX_CPU_ISA=AVX2`` makes oneDNN build its primitives as on an AVX2-only CPU, where it has no bfloat16
    LSTM for Motif's SGDet shapes (CI stopped there with "could not create a primitive descriptor for the LSTM
    forward propagation primitive"): the BiLSTMs must run in float32 under CPU autocast. Its own process, since
    oneDNN reads the variable once."""
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", _MOTIF_SGDET_STEP, str(Path(__file__).parent), str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "finite", result.stdout
