"""Optimiser parameter groups and the warmup + poly schedule of the segmentation recipe."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hamburger.training.optim import WarmupPoly, build_optimizer, build_scheduler, param_groups


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Conv2d(4, 2, 1)
        self.head.coef_shortcut = nn.Parameter(torch.zeros(1, 1, 1, 1))  # 4-D gate: still no decay


def _group_of(groups: list[dict], name: str) -> dict:
    return next(g for g in groups if name in g["names"])


def test_param_groups_decay_and_lr_mult() -> None:
    groups = param_groups(_Toy(), weight_decay=1e-4, head_lr_mult=10.0)
    assert sum(len(g["params"]) for g in groups) == 7
    # conv weights decay; biases, norm weights and coef_* gates do not
    assert _group_of(groups, "backbone.0.weight")["weight_decay"] == 1e-4
    assert _group_of(groups, "head.weight")["weight_decay"] == 1e-4
    for name in ("backbone.0.bias", "backbone.1.weight", "backbone.1.bias", "head.bias", "head.coef_shortcut"):
        assert _group_of(groups, name)["weight_decay"] == 0.0, name
    assert _group_of(groups, "backbone.0.weight")["lr_mult"] == 1.0
    assert _group_of(groups, "head.bias")["lr_mult"] == 10.0
    opt = build_optimizer(groups, "sgd", lr=0.01)
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs == [0.01, pytest.approx(0.1)]
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)


def test_param_groups_real_model_gates() -> None:
    from hamburger.models import create_model

    model = create_model("tiny_ham", num_classes=3)
    groups = param_groups(model, weight_decay=0.01)
    decayed = {n for g in groups if g["weight_decay"] > 0 for n in g["names"]}
    assert decayed and all(dict(model.named_parameters())[n].ndim > 1 for n in decayed)
    assert not any(n.rsplit(".", 1)[-1].startswith("coef") for n in decayed)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="optimizer"):
        build_optimizer(param_groups(_Toy(), weight_decay=0.0), "adam", lr=0.1)
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(_Toy(), weight_decay=-1.0)
    with pytest.raises(ValueError, match="total_steps"):
        WarmupPoly(0)


def test_warmup_poly_values() -> None:
    f = WarmupPoly(100, power=0.9)
    assert f(0) == 1.0
    assert f(50) == pytest.approx(0.5**0.9)
    assert f(100) == 0.0
    g = WarmupPoly(100, power=1.0, warmup_steps=10, warmup_ratio=1e-6)
    assert g(0) == pytest.approx(1e-6)  # starts at ratio x the poly value
    assert g(5) == pytest.approx((1 - 0.05) * (1 - 0.5 * (1 - 1e-6)))
    assert g(10) == pytest.approx(0.9)  # warmup over: plain poly
    h = WarmupPoly(100, power=0.9, min_ratio=0.01)
    assert h(100) == pytest.approx(0.01)


def test_scheduler_steps_and_state_roundtrip() -> None:
    model = _Toy()
    opt = build_optimizer(param_groups(model, weight_decay=0.0, head_lr_mult=2.0), "adamw", lr=1e-3)
    sched = build_scheduler(opt, total_steps=20, power=0.9, min_lr=1e-5)
    for _ in range(7):
        opt.step()
        sched.step()
    poly = (1 - 7 / 20) ** 0.9  # min_lr is absolute: lr = (base - min_lr) * poly + min_lr in every group
    assert min(g["lr"] for g in opt.param_groups) == pytest.approx((1e-3 - 1e-5) * poly + 1e-5)
    assert max(g["lr"] for g in opt.param_groups) == pytest.approx((2e-3 - 1e-5) * poly + 1e-5)
    state = sched.state_dict()
    opt2 = build_optimizer(param_groups(_Toy(), weight_decay=0.0, head_lr_mult=2.0), "adamw", lr=1e-3)
    sched2 = build_scheduler(opt2, total_steps=20, power=0.9, min_lr=1e-5)
    sched2.load_state_dict(state)
    assert sched2.last_epoch == 7
    assert [f(7) for f in sched2.lr_lambdas] == [f(7) for f in sched.lr_lambdas]
    assert math.isclose(sched2.lr_lambdas[0].min_ratio, sched.lr_lambdas[0].min_ratio)
