"""Eval determinism, RNG hygiene, init modes and state_dict round trips."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from solver_cases import HAMS, make, make_input

import hamburger as hb
import reference as ref


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("groups", [1, 2])
def test_eval_is_deterministic_and_batch_invariant(name, groups):
    ham = make(name, groups=groups).eval()
    x = make_input(name, (3, 8, 4, 4), dtype=torch.float32)
    first = ham(x)
    assert torch.equal(first, ham(x))
    permuted = ham(x[[2, 0, 1]])
    torch.testing.assert_close(permuted, first[[2, 0, 1]], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ham(x[1:2]), first[1:2], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("init", ["random", "online"])
def test_eval_leaves_global_rng_untouched(name, init):
    ham = make(name, init=init, channels=None if init == "random" else 8).eval()
    x = make_input(name, (2, 8, 16))
    state = torch.get_rng_state()
    ham(x)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", HAMS)
def test_training_draws_fresh_bases(name):
    ham = make(name).train()
    x = make_input(name, (2, 8, 16))
    state = torch.get_rng_state()
    a, b = ham(x), ham(x)
    assert not torch.allclose(a, b)
    torch.set_rng_state(state)  # the draws come from the global RNG: same seed, same output
    assert torch.equal(ham(x), a)


@pytest.mark.parametrize("name", HAMS)
def test_eval_init_random_redraws(name):
    ham = make(name, eval_init="random").eval()
    x = make_input(name, (2, 8, 16))
    assert not torch.allclose(ham(x), ham(x))


@pytest.mark.parametrize("name", HAMS)
def test_fixed_eval_bases_are_unit_norm_with_training_distribution(name):
    """The fixed eval dictionary is what the module uses: passing it explicitly gives the same output."""
    ham = make(name, groups=2).eval()
    x = make_input(name, (2, 8, 16))
    from hamburger.solvers._init import draw_bases

    fixed = draw_bases((2, 4, 4), distribution=ham.distribution, dtype=x.dtype, fixed=True)
    torch.testing.assert_close(fixed.norm(dim=1), torch.ones(2, 4, dtype=x.dtype))
    if name == "nmf":
        assert (fixed > 0).all()
    else:
        assert (fixed < 0).any()
    assert torch.equal(ham(x), ham(x, bases=fixed.repeat(2, 1, 1)))


# ------------------------------------------------------------------ state_dict
def _round_trip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("init", ["random", "online", "learned"])
def test_state_dict_round_trip(name, init):
    options = {"init": init}
    if init != "random":
        options["channels"] = 8
        options["groups"] = 2
    if init == "learned":
        options["grad_mode"] = "bptt"
    ham = make(name, **options)
    keys = set(ham.state_dict())
    if init == "random":
        assert keys == set()
    else:
        assert keys == {"bases"}
        assert ham.state_dict()["bases"].shape == (2, 4, 4)
        is_param = "bases" in dict(ham.named_parameters())
        assert is_param == (init == "learned")
        assert ("bases" in dict(ham.named_buffers())) == (init == "online")
    x = make_input(name, (2, 8, 16), dtype=torch.float32)
    ham.train()
    ham(x)  # moves the online buffer
    if init == "learned":
        with torch.no_grad():
            ham.bases.add_(0.1)
    fresh = make(name, **options)
    fresh.load_state_dict(_round_trip(ham.state_dict()), strict=True)
    ham.eval(), fresh.eval()
    assert torch.equal(ham(x), fresh(x))
    if init != "random":
        assert not torch.equal(make(name, **options).eval()(x), ham(x))


def test_hamburger_state_dict_keys_before_forward():
    online = hb.Hamburger(8, ham="cd", rank=4, init="online")
    assert "ham.bases" in online.state_dict() and "ham.bases" in dict(online.named_buffers())
    learned = hb.Hamburger(8, ham="nmf", rank=4, init="learned", grad_mode="bptt")
    assert "ham.bases" in dict(learned.named_parameters())
    assert "ham.bases" not in hb.Hamburger(8, rank=4).state_dict()
    fresh = hb.Hamburger(8, ham="cd", rank=4, init="online")
    with torch.no_grad():
        online.ham.bases.mul_(-1)
    fresh.load_state_dict(_round_trip(online.state_dict()), strict=True)
    x = torch.randn(2, 8, 4, 4)
    assert torch.equal(fresh.eval()(x), online.eval()(x))


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("momentum", [0.9, 0.3, 1.0, 0.0])
def test_online_update_is_ema(name, momentum):
    ham = make(name, init="online", channels=8, groups=2, momentum=momentum).double().train()
    x = make_input(name, (3, 8, 20))
    before = ham.bases.clone()
    xm = ref.to_matrix(x, 2, True)
    with torch.no_grad():
        d_final, _ = ham.decompose(xm, before.repeat(3, 1, 1))
    mean = d_final.reshape(3, 2, 4, 4).mean(0)
    expected = F.normalize(before + momentum * (mean - before), dim=1)
    ham(x)
    torch.testing.assert_close(ham.bases, expected, rtol=1e-12, atol=1e-12)
    if momentum > 0:
        assert not torch.allclose(ham.bases, before)
    # eval: used, never moved
    moved = ham.bases.clone()
    ham.eval()(x)
    assert torch.equal(ham.bases, moved)


def test_online_bases_are_used_for_every_sample():
    ham = make("cd", init="online", channels=8).double().eval()
    x = make_input("cd", (2, 8, 12))
    expected = ref.reconstruct("cd", x, ham.bases.repeat(2, 1, 1), steps=ham.eval_steps, ridge=ham.ridge)
    torch.testing.assert_close(ham(x), expected, rtol=1e-9, atol=1e-11)
