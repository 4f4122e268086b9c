"""LR schedules, optimizer parameter groups and gradient clipping on hand-computed numbers."""
import math

import pytest
import torch
from torch import nn

from sgg.config import get_cfg
from sgg.engine import freeze_by_patterns
from sgg.solver import (WarmupCosineLR, WarmupMultiStepLR, WarmupReduceLROnPlateau, clip_grad_norm,
                        make_lr_scheduler, make_optimizer)
from sgg.utils.errors import CheckpointError


def _optimizer(lr=0.1):
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


def _lrs(scheduler, n):
    out = []
    for it in range(n):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.step()
    return out


def test_warmup_multistep_linear_warmup_and_milestones():
    sched = WarmupMultiStepLR(_optimizer(0.1), milestones=(6, 8), gamma=0.1, warmup_factor=0.1, warmup_iters=4)
    # warmup factor f(1-a)+a with a = it/4: 0.1, 0.325, 0.55, 0.775; then 1; x0.1 from it 6, x0.01 from it 8
    expected = [0.01, 0.0325, 0.055, 0.0775, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert _lrs(sched, 10) == pytest.approx(expected, rel=1e-12)


def test_warmup_constant_method():
    sched = WarmupMultiStepLR(_optimizer(0.2), milestones=(), warmup_factor=0.25, warmup_iters=2,
                              warmup_method="constant")
    assert _lrs(sched, 3) == pytest.approx([0.05, 0.05, 0.2])


def test_cosine_schedule():
    sched = WarmupCosineLR(_optimizer(0.1), max_iter=10, warmup_factor=0.5, warmup_iters=2)
    lrs = _lrs(sched, 11)
    assert lrs[0] == pytest.approx(0.1 * 0.5)
    assert lrs[1] == pytest.approx(0.1 * 0.75 * 0.5 * (1 + math.cos(math.pi / 10)))
    assert lrs[5] == pytest.approx(0.05)
    assert lrs[10] == pytest.approx(0.0, abs=1e-15)


def test_plateau_decay_cooldown_and_stop_after_max_decay_step():
    sched = WarmupReduceLROnPlateau(_optimizer(0.1), factor=0.5, warmup_iters=0, patience=2, threshold=0.01,
                                    cooldown=1, max_decay_step=2)
    # (metric, stage_count after, should_stop after); None = an iteration without validation
    steps = [
        (None, 0, False),
        (0.5, 0, False),    # new best 0.5; cooldown 1 -> 0
        (None, 0, False),
        (0.505, 0, False),  # not above 0.5 + 0.01: bad 1
        (0.4, 1, False),    # bad 2 = patience: decay 1, cooldown restarts
        (0.3, 1, False),    # bad 1, but cooldown clears it
        (0.3, 1, False),    # bad 1
        (0.6, 1, False),    # new best
        (0.59, 1, False),   # bad 1
        (0.59, 2, True),    # bad 2: decay 2 = MAX_DECAY_STEP: stop
    ]
    for it, (metric, stage, stop) in enumerate(steps, start=1):
        sched.step(metric, epoch=it)
        assert (sched.stage_count, sched.should_stop) == (stage, stop), it
        assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** stage)
    assert sched.best == 0.6


def test_plateau_warmup_and_no_stop_when_max_decay_step_is_zero():
    sched = WarmupReduceLROnPlateau(_optimizer(0.1), factor=0.1, warmup_factor=0.1, warmup_iters=10, patience=1,
                                    cooldown=0, max_decay_step=0)
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    sched.step(0.5, epoch=5)  # best
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * (0.1 * 0.5 + 0.5))
    for it in range(6, 10):
        sched.step(0.1, epoch=it)
    assert sched.stage_count == 4 and not sched.should_stop


def test_scheduler_state_round_trip():
    sched = make_lr_scheduler(_cfg(SCHEDULE_TYPE="WarmupReduceLROnPlateau"), _optimizer())
    for it, metric in enumerate([0.5, 0.1, 0.1, 0.1], start=1):
        sched.step(metric, epoch=it)
    state = sched.state_dict()
    other = make_lr_scheduler(_cfg(SCHEDULE_TYPE="WarmupReduceLROnPlateau"), _optimizer())
    other.load_state_dict(state)
    assert other.stage_count == sched.stage_count > 0 and other.last_epoch == 4
    assert other.optimizer.param_groups[0]["lr"] == pytest.approx(sched.optimizer.param_groups[0]["lr"])
    multi = make_lr_scheduler(_cfg(), _optimizer())
    with pytest.raises(CheckpointError, match="SOLVER.SCHEDULE.TYPE"):
        multi.load_state_dict(state)


def _cfg(SCHEDULE_TYPE="WarmupMultiStepLR", **solver):
    cfg = get_cfg()
    cfg.SOLVER.SCHEDULE.TYPE = SCHEDULE_TYPE
    cfg.SOLVER.SCHEDULE.COOLDOWN = 0
    cfg.SOLVER.SCHEDULE.PATIENCE = 1
    for key, value in solver.items():
        cfg.SOLVER[key] = value
    return cfg


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def test_param_groups_lr_multipliers_and_weight_decay():
    cfg = _cfg(BASE_LR=0.01, IMS_PER_BATCH=4, SCALE_LR_BY_BATCH=True, BIAS_LR_FACTOR=2.0, BACKBONE_LR_FACTOR=0.1,
               WEIGHT_DECAY=1e-4, WEIGHT_DECAY_BIAS=0.0, WARMUP_ITERS=0)
    net = Net()
    opt = make_optimizer(cfg, net)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    lr_wd = {}
    for group in opt.param_groups:
        for name in group["param_names"]:
            lr_wd[name] = (group["lr"], group["weight_decay"])
    base = 0.01 * 4  # SGB's effective LR: BASE_LR x IMS_PER_BATCH
    expected = {
        "backbone.0.weight": (base * 0.1, 1e-4),
        "backbone.0.bias": (base * 0.1 * 2, 0.0),
        "backbone.1.weight": (base * 0.1, 0.0),      # norm layer: no decay
        "backbone.1.bias": (base * 0.1 * 2, 0.0),
        "head.weight": (base, 1e-4),
        "head.bias": (base * 2, 0.0),
    }  # frozen.* (requires_grad False) left out
    assert set(lr_wd) == set(expected)
    for name, (lr, weight_decay) in expected.items():  # approx of nested values varies across pytest versions
        assert lr_wd[name][0] == pytest.approx(lr) and lr_wd[name][1] == pytest.approx(weight_decay), name
    assert sum(len(g["params"]) for g in opt.param_groups) == 6


def test_effective_lr_off_adamw_and_unknown_names():
    cfg = _cfg(BASE_LR=0.001, IMS_PER_BATCH=8, SCALE_LR_BY_BATCH=False, OPTIMIZER="AdamW", BETAS=(0.8, 0.9),
               BIAS_LR_FACTOR=1.0, WARMUP_ITERS=0)
    opt = make_optimizer(cfg, Net())
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.8, 0.9)
    assert {g["lr"] for g in opt.param_groups} == {0.001}
    cfg.SOLVER.OPTIMIZER = "Adam"
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER 'Adam'.*SGD, AdamW"):
        make_optimizer(cfg, Net())
    cfg.SOLVER.SCHEDULE.TYPE = "Step"
    with pytest.raises(ValueError, match="WarmupMultiStepLR, WarmupReduceLROnPlateau, WarmupCosineLR"):
        make_lr_scheduler(cfg, _optimizer())


def test_scheduler_scales_every_group_from_its_own_base():
    cfg = _cfg(BASE_LR=0.01, IMS_PER_BATCH=2, BIAS_LR_FACTOR=2.0, WARMUP_ITERS=10, WARMUP_FACTOR=0.5)
    opt = make_optimizer(cfg, Net())
    make_lr_scheduler(cfg, opt)
    assert sorted({g["lr"] for g in opt.param_groups}) == pytest.approx([0.01, 0.02])  # 0.5 x (0.02, 0.04)


def test_grad_norm_clip_hand_computed():
    a = nn.Parameter(torch.zeros(2))
    b = nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([12.0])
    norm = clip_grad_norm([a, b], max_norm=6.5)  # ||(3, 4, 12)|| = 13; coefficient 6.5 / (13 + 1e-6)
    coef = 6.5 / (13 + 1e-6)
    assert float(norm) == pytest.approx(13.0)
    assert a.grad.tolist() == pytest.approx([3 * coef, 4 * coef]) and b.grad.tolist() == pytest.approx([12 * coef])
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([12.0])
    assert float(clip_grad_norm([a, b], max_norm=20.0)) == pytest.approx(13.0)
    assert a.grad.tolist() == [3.0, 4.0]  # under the limit: untouched
    assert float(clip_grad_norm([a, b], max_norm=0.0)) == pytest.approx(13.0) and b.grad.tolist() == [12.0]


def test_freeze_by_patterns():
    net = Net()
    frozen = freeze_by_patterns(net, [r"backbone\.1", "head.bias"])
    assert frozen == ["backbone.1.weight", "backbone.1.bias", "head.bias"]
    assert not net.backbone[1].weight.requires_grad and net.backbone[0].weight.requires_grad
    with pytest.raises(ValueError, match=r"\['bakbone'\] match no parameter.*backbone, frozen, head"):
        freeze_by_patterns(Net(), ["bakbone"])
    with pytest.raises(ValueError, match="not a valid regular expression"):
        freeze_by_patterns(Net(), ["("])
