"""Optimiser parameter groups (the ``no_weight_decay()`` contract) and the warmup + poly schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hamburger.training.optim import (
    WarmupPoly,
    build_optimizer,
    build_scheduler,
    no_weight_decay_names,
    param_groups,
)


class _Gated(nn.Module):
    """A head block with a 4-D gate declared in ``no_weight_decay`` and an undeclared 2-D ``coef_mix``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.gate = nn.Parameter(torch.zeros(1, 4, 1, 1))  # declared: no decay although 4-D
        self.coef_mix = nn.Parameter(torch.ones(4, 4))  # undeclared: decays although named coef*

    def no_weight_decay(self) -> set[str]:
        return {"gate"}


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Sequential(_Gated(), nn.Conv2d(4, 2, 1))


def _group_of(groups: list[dict], name: str) -> dict:
    return next(g for g in groups if name in g["names"])


def _decayed(groups: list[dict]) -> set[str]:
    return {n for g in groups if g["weight_decay"] > 0 for n in g["names"]}


def test_param_groups_decay_and_lr_mult() -> None:
    model = _Toy()
    groups = param_groups(model, weight_decay=1e-4, head_lr_mult=10.0)
    assert sorted(n for g in groups for n in g["names"]) == sorted(n for n, _ in model.named_parameters())
    # decay: conv weights and the undeclared 2-D coef_mix; none: 1-D parameters and the declared 4-D gate
    assert _decayed(groups) == {"backbone.0.weight", "head.0.conv.weight", "head.0.coef_mix", "head.1.weight"}
    assert _group_of(groups, "head.0.gate")["weight_decay"] == 0.0
    assert _group_of(groups, "backbone.0.weight")["lr_mult"] == 1.0
    assert _group_of(groups, "head.1.bias")["lr_mult"] == 10.0
    opt = build_optimizer(groups, "sgd", lr=0.01)
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs == [0.01, pytest.approx(0.1)]
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)
    wd_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert wd_of[id(model.head[0].gate)] == 0.0 and wd_of[id(model.head[0].coef_mix)] == 1e-4


def test_no_weight_decay_names_are_collected_with_prefixes() -> None:
    model = _Toy()
    assert no_weight_decay_names(model) == {"head.0.gate"}
    assert no_weight_decay_names(model.head[0]) == {"gate"}  # relative to the module asked
    # patterns and explicit names from the caller
    groups = param_groups(model, weight_decay=0.1, no_weight_decay=["head.0.coef_*", "backbone.0.weight"])
    assert _decayed(groups) == {"head.0.conv.weight", "head.1.weight"}


def test_no_weight_decay_of_a_nested_timm_style_backbone() -> None:
    class _FakeViT(nn.Module):  # timm models declare e.g. pos_embed relative to themselves
        def __init__(self) -> None:
            super().__init__()
            self.pos_embed = nn.Parameter(torch.zeros(1, 4, 8))
            self.proj = nn.Linear(8, 8)

        def no_weight_decay(self) -> set[str]:
            return {"pos_embed"}

    model = nn.Module()
    model.backbone = nn.Module()
    model.backbone.model = _FakeViT()
    groups = param_groups(model, weight_decay=0.05)
    assert _decayed(groups) == {"backbone.model.proj.weight"}
    assert _group_of(groups, "backbone.model.pos_embed")["weight_decay"] == 0.0


def test_no_weight_decay_must_return_names() -> None:
    class _Bad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(2, 2))

        def no_weight_decay(self) -> str:
            return "w"  # a string, not a collection of names

    with pytest.raises(TypeError, match="no_weight_decay"):
        param_groups(_Bad(), weight_decay=0.1)


def test_hamburger_and_non_local_declare_their_gates() -> None:
    from hamburger.blocks import Hamburger, NonLocal2d

    gated = Hamburger(16, version="v2+")
    assert gated.no_weight_decay() == {"coef_ham", "coef_shortcut"}
    assert gated.no_weight_decay() <= {n for n, _ in gated.named_parameters()}
    assert Hamburger(16, version="v2").no_weight_decay() == set()  # no gates
    assert NonLocal2d(16).no_weight_decay() == {"norm.weight", "norm.bias"}  # zero-initialised scale
    assert NonLocal2d(16, zero_init=False).no_weight_decay() == set()


TINY_HAM_DECAYED = [
    "backbone.stages.0.0.0.weight", "backbone.stages.1.0.0.weight", "backbone.stages.1.1.0.weight",
    "backbone.stages.2.0.0.weight", "backbone.stages.2.1.0.weight", "head.squeeze.0.weight",
    "head.context.lower_bread.weight", "head.context.cheese.0.weight", "head.context.upper_bread.weight",
    "head.align.0.weight", "head.classifier.weight",
]  # fmt: skip


def test_param_groups_real_model_gates() -> None:
    from hamburger.models import create_model

    model = create_model("tiny_ham", num_classes=3)
    groups = param_groups(model, weight_decay=0.01, head_lr_mult=10.0)
    assert sorted(_decayed(groups)) == sorted(TINY_HAM_DECAYED)  # exactly the 11 conv weights
    everything = {n for n, _ in model.named_parameters()}
    assert sorted(n for g in groups for n in g["names"]) == sorted(everything)  # each parameter once
    for gate in ("head.context.coef_ham", "head.context.coef_shortcut"):
        assert _group_of(groups, gate)["weight_decay"] == 0.0
        assert _group_of(groups, gate)["lr_mult"] == 10.0
    backbone = {n for g in groups if g["lr_mult"] == 1.0 for n in g["names"]}
    assert backbone == {n for n in everything if n.startswith("backbone.")}


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
