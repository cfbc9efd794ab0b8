"""HamOptions: one typed, validated description of the ham and its block, used unchanged by the block."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import hamburger as hb
from hamburger.blocks import HamOptions


def test_every_solver_option_reaches_the_solver():
    block = hb.Hamburger(
        8, ham="cd", rank=3, steps=2, eval_steps=4, groups=2, grad_mode="truncated", grad_steps=2, eps=1e-5,
        inv_temp=7.0, ridge=0.5, solve="newton_schulz", check_input=False, eval_init="random",
    )  # fmt: skip
    ham = block.ham
    assert isinstance(ham, hb.CD)
    got = {k: getattr(ham, k) for k in ("rank", "steps", "eval_steps", "groups", "grad_mode", "grad_steps", "eps")}
    assert got == {"rank": 3, "steps": 2, "eval_steps": 4, "groups": 2, "grad_mode": "truncated", "grad_steps": 2,
                   "eps": 1e-5}  # fmt: skip
    assert (ham.inv_temp, ham.ridge, ham.solve, ham.check_input, ham.eval_init) == (
        7.0, 0.5, "newton_schulz", False, "random"
    )  # fmt: skip
    assert block.options == HamOptions.from_solver(ham)
    online = hb.Hamburger(8, ham="nmf", init="online", momentum=0.25)
    assert online.ham.momentum == 0.25 and online.ham.bases.shape == (1, 8, 64)


def test_options_object_and_keywords_build_the_same_block():
    opts = HamOptions(ham="vq", rank=4, inv_temp=10.0, version="v2+", gate_init=0.5)
    torch.manual_seed(0)
    a = hb.Hamburger(16, ham=opts)
    torch.manual_seed(0)
    b = hb.Hamburger(16, ham="vq", rank=4, inv_temp=10.0, version="v2+", gate_init=0.5)
    assert a.options == b.options == opts
    x = torch.randn(2, 16, 5, 7)
    assert torch.equal(a.eval()(x), b.eval()(x))
    assert a.coef_ham.detach().item() == 0.5
    # keywords given with an options object override its fields
    assert hb.Hamburger(16, ham=opts, rank=2).ham.rank == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ham": "nmf", "inv_temp": 10.0}, ValueError, r"inv_temp=10.0 does not apply to ham='nmf'"),
        ({"ham": "vq", "ridge": 0.1}, ValueError, r"ridge=0.1 does not apply to ham='vq'"),
        ({"ham": "nmf", "rank": 0}, ValueError, r"rank must be an int >= 1, got 0"),
        ({"ham": "nmf", "rank": 16.0}, TypeError, r"rank must be an int >= 1, got float 16.0"),
        ({"ham": "svd"}, ValueError, r"unknown ham 'svd'"),
        ({"ham": "nmf", "version": "v3"}, ValueError, r"version must be one of \['v1', 'v2', 'v2\+'\], got 'v3'"),
        ({"ham": "nmf", "dual": True}, ValueError, r"dual=True needs version='v2\+'"),
        ({"ham": "nmf", "init": "learned"}, ValueError, r"init='learned' needs grad_mode='bptt'"),
        ({"ham": "nmf", "grad_mode": "fixed_point"}, ValueError, r"grad_mode must be one of"),
    ],
)
def test_bad_options_are_refused_naming_the_option(kwargs, error, match):
    with pytest.raises(error, match=match):
        HamOptions(**kwargs)
    with pytest.raises(error, match=match):
        hb.Hamburger(8, **kwargs)


def test_unknown_option_names_are_a_type_error():
    with pytest.raises(TypeError, match=r"unknown ham option\(s\) \['rnak'\]"):
        hb.Hamburger(8, ham="nmf", rnak=4)
    with pytest.raises(TypeError, match=r"unknown ham option\(s\) \['rnak'\]"):
        HamOptions.coerce({"ham": "nmf", "rnak": 4})


def test_solver_instance_with_solver_options_is_an_error_not_ignored():
    solver = hb.NMF(rank=4)
    for key, value in (("rank", 16), ("grad_mode", "bptt"), ("steps", 3)):
        with pytest.raises(ValueError, match=rf"solver option\(s\) \['{key}'\] conflict with the given solver"):
            hb.Hamburger(8, ham=solver, **{key: value})
    block = hb.Hamburger(8, ham=solver, version="v2")  # block options are fine
    assert block.ham is solver and block.options.rank == 4 and block.options.version == "v2"


def test_replace_to_another_ham_drops_options_it_does_not_take():
    opts = HamOptions(ham="cd", inv_temp=10.0, ridge=0.01)
    nmf = opts.replace(ham="nmf")
    assert (nmf.ham, nmf.inv_temp, nmf.ridge) == ("nmf", None, None)
    vq = opts.replace(ham="vq")
    assert (vq.inv_temp, vq.ridge) == (10.0, None)


def test_round_trip_through_a_dict_and_frozen():
    opts = HamOptions(ham="vq", rank=8, inv_temp=3.0, grad_mode="bptt", norm_layer="batch")
    assert HamOptions.from_dict(opts.to_dict()) == opts
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.rank = 3  # type: ignore[misc]


def test_norm_inherit_means_batch_for_a_bare_block_and_none_means_no_norm():
    assert isinstance(hb.Hamburger(8).upper_norm, torch.nn.BatchNorm2d)
    assert isinstance(hb.Hamburger(8, norm_layer=None).upper_norm, torch.nn.Identity)
    assert isinstance(hb.Hamburger(8, norm_layer="group").upper_norm, torch.nn.GroupNorm)
