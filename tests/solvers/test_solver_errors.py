"""Bad input raises a ValueError/TypeError that names the argument and what was expected."""

from __future__ import annotations

import re

import pytest
import torch
from solver_cases import HAMS, make

import hamburger as hb


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize(
    ("shape", "match"),
    [((2, 8), "x must have shape"), ((8,), "x must have shape"), ((1, 2, 8, 2, 2, 2), "x must have shape")],
)
def test_wrong_number_of_dims(name, shape, match):
    with pytest.raises(ValueError, match=match):
        make(name)(torch.rand(shape))


@pytest.mark.parametrize("name", HAMS)
def test_non_float_and_non_tensor(name):
    with pytest.raises(TypeError, match="floating-point.*int64"):
        make(name)(torch.ones(2, 8, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        make(name)([[1.0]])


@pytest.mark.parametrize("name", HAMS)
def test_channels_not_divisible_by_groups(name):
    with pytest.raises(ValueError, match=r"channels of x \(9\) must be divisible by groups \(2\)"):
        make(name, groups=2)(torch.rand(2, 9, 4))
    with pytest.raises(ValueError, match=r"channels \(9\) must be divisible by groups \(2\)"):
        make(name, groups=2, init="online", channels=9)


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"rank": 0}, ValueError, "rank must be an int >= 1, got 0"),
        ({"rank": 2.5}, TypeError, "rank must be an int"),
        ({"rank": True}, TypeError, "rank must be an int"),
        ({"steps": -1}, ValueError, "steps must be an int >= 0, got -1"),
        ({"eval_steps": -2}, ValueError, "eval_steps must be an int >= 0, got -2"),
        ({"groups": 0}, ValueError, "groups must be an int >= 1"),
        ({"grad_steps": 0}, ValueError, "grad_steps must be an int >= 1"),
        ({"grad_mode": "full"}, ValueError, r"grad_mode must be one of \['one_step', 'bptt', 'truncated', 'impl"),
        ({"init": "zeros"}, ValueError, r"init must be one of .*got 'zeros'"),
        ({"eval_init": "hash"}, ValueError, "eval_init must be one of"),
        ({"init": "learned", "channels": 8}, ValueError, "init='learned' needs grad_mode='bptt'.*'one_step'"),
        ({"init": "learned", "channels": 8, "grad_mode": "truncated"}, ValueError, "needs grad_mode='bptt'"),
        ({"init": "online"}, ValueError, "init='online' needs channels=C"),
        ({"init": "learned", "grad_mode": "bptt"}, ValueError, "init='learned' needs channels=C"),
        ({"init": "online", "channels": 8, "spatial": False}, ValueError, "needs spatial=True"),
        ({"momentum": 1.5}, ValueError, r"momentum must be a finite number in \[0, 1\], got 1.5"),
        ({"momentum": float("nan")}, ValueError, "momentum must be a finite number in"),
        ({"momentum": "0.9"}, TypeError, "momentum must be a finite number in .*got str"),
        ({"eps": 0.0}, ValueError, "eps must be a finite number > 0, got 0.0"),
        ({"eps": float("inf")}, ValueError, "eps must be a finite number > 0, got inf"),
        ({"eps": float("nan")}, ValueError, "eps must be a finite number > 0, got nan"),
        ({"spatial": 1}, TypeError, "spatial must be a bool"),
        ({"check_input": "no"}, TypeError, "check_input must be a bool, got str 'no'"),
        ({"check_input": 1}, TypeError, "check_input must be a bool, got int 1"),
        ({"grad_mode": 1}, TypeError, "grad_mode must be one of .*got int 1"),
        ({"steps": 2.0}, TypeError, "steps must be an int >= 0, got float 2.0"),
        ({"channels": 8.0, "init": "online"}, TypeError, "channels must be an int >= 1, got float"),
    ],
)
def test_bad_options(name, options, error, match):
    with pytest.raises(error, match=match):
        make(name, **options)


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("vq", {"inv_temp": 0.0}, "inv_temp must be a finite number > 0, got 0.0"),
        ("vq", {"inv_temp": float("inf")}, "inv_temp must be a finite number > 0, got inf"),
        ("cd", {"inv_temp": -1.0}, "inv_temp must be a finite number > 0"),
        ("cd", {"inv_temp": float("inf")}, "inv_temp must be a finite number > 0, got inf"),
        ("cd", {"ridge": 0.0}, "ridge must be a finite number > 0"),
        ("cd", {"ridge": float("inf")}, "ridge must be a finite number > 0, got inf"),
        ("cd", {"solve": "inverse"}, r"solve must be one of \['solve', 'newton_schulz'\], got 'inverse'"),
    ],
)
def test_bad_ham_options(name, options, match):
    with pytest.raises(ValueError, match=match):
        make(name, **options)


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("vq", {"inv_temp": "100"}, "inv_temp must be a finite number > 0, got str '100'"),
        ("cd", {"ridge": None}, "ridge must be a finite number > 0, got NoneType None"),
        ("cd", {"solve": 1}, r"solve must be one of \['solve', 'newton_schulz'\], got int 1"),
        ("nmf", {"rank": 16.0}, "rank must be an int >= 1, got float 16.0"),
    ],
)
def test_wrong_option_types_are_type_errors(name, options, match):
    with pytest.raises(TypeError, match=match):
        make(name, **options)


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("spatial", [True, False])
def test_bases_of_wrong_shape(name, spatial):
    ham = make(name, spatial=spatial, groups=2)
    x = torch.rand(3, 8, 5)
    good = (6, 4, 4) if spatial else (6, 5, 4)
    ham(x, bases=torch.rand(good))
    with pytest.raises(ValueError, match=rf"bases must have shape .*{re.escape(str(good))}.*got \(3, 4, 4\)"):
        ham(x, bases=torch.rand(3, 4, 4))
    with pytest.raises(TypeError, match="bases must be a torch.Tensor"):
        ham(x, bases=[[0.0]])


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input(name, value):
    x = torch.rand(2, 8, 4)
    x[1, 3, 2] = value
    for training in (True, False):
        with pytest.raises(ValueError, match="NaN or inf"):
            make(name).train(training)(x)


def test_negative_input_to_nmf():
    x = torch.rand(2, 8, 4)
    x[0, 0, 0] = -0.5
    with pytest.raises(ValueError, match=r"NMF needs non-negative x \(got min -0.5\).*ReLU"):
        make("nmf")(x)
    # VQ and CD take signed input; NMF can opt out of the check
    make("vq")(x), make("cd")(x)
    assert torch.isfinite(make("nmf", check_input=False)(x)).all()


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_bases(name, value):
    x = torch.rand(2, 8, 4)
    bases = torch.rand(2, 8, 4)
    bases[1, 2, 3] = value
    with pytest.raises(ValueError, match="bases contains NaN or inf"):
        make(name)(x, bases=bases)
    with pytest.raises(FloatingPointError, match="bases contains NaN or inf"):  # how a diverged run is caught
        make(name)(x, bases=bases)
    assert torch.isnan(make(name, check_input=False)(x, bases=bases)).any()  # what the check prevents


def test_negative_bases_to_nmf():
    x = torch.rand(2, 8, 4)
    bases = torch.rand(2, 8, 4)
    bases[0, 1, 2] = -0.25
    with pytest.raises(ValueError, match=r"NMF needs non-negative bases \(got min -0.25\)"):
        make("nmf")(x, bases=bases)
    # VQ and CD dictionaries are signed
    assert torch.isfinite(make("vq")(x, bases=bases)).all() and torch.isfinite(make("cd")(x, bases=bases)).all()


@pytest.mark.parametrize("name", HAMS)
def test_integer_bases(name):
    with pytest.raises(TypeError, match="bases must be a floating-point tensor, got dtype torch.int64"):
        make(name)(torch.rand(2, 8, 4), bases=torch.ones(2, 8, 4, dtype=torch.int64))


def test_online_channels_mismatch():
    ham = make("cd", init="online", channels=8)
    with pytest.raises(ValueError, match=r"x must have 8 channels \(channels=8\), got 16"):
        ham(torch.rand(2, 16, 4))


def test_empty_input():
    with pytest.raises(ValueError, match="must not be empty"):
        make("vq")(torch.rand(0, 8, 4))


def test_unknown_ham_name():
    with pytest.raises(ValueError, match=r"unknown ham 'svd'; choose from \['cd', 'nmf', 'vq'\]"):
        hb.create_solver("svd")
    with pytest.raises(ValueError, match="unknown ham 'svd'"):
        hb.Hamburger(8, ham="svd")
    with pytest.raises(TypeError, match="ham must be a solver name .* got int"):
        hb.Hamburger(8, ham=3)
    assert isinstance(hb.create_solver("NMF", rank=2), hb.NMF)
    with pytest.raises(TypeError, match="ham name must be a str, got int 3"):
        hb.create_solver(3)
