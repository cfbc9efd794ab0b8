"""HamGAN / SAGAN / SNGAN networks: shapes, conditioning, spectral norm, init, the GAN ham, config, errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from hamburger.blocks import Hamburger
from hamburger.layers import ConditionalBatchNorm
from hamburger.models.gan import (
    Discriminator,
    GANConfig,
    Generator,
    SNSelfAttention2d,
    create_gan,
    gan_config,
    list_gans,
)

SMALL = ("hamgan_32", "sagan_32", "sngan_32")
TINY_128 = {"g_channels": 4, "d_channels": 4, "g_ham": {"rank": 4}, "d_ham": {"rank": 4}}


def _inputs(g: Generator, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, g.z_dim, generator=gen)
    y = torch.randint(0, g.num_classes, (batch,), generator=gen)
    return z, y


def test_registry_names():
    names = list_gans()
    for name in ("hamgan_32", "sagan_32", "sngan_32", "hamgan_baby_128", "hamgan_strong_128", "sagan_128"):
        assert name in names
    assert gan_config("hamgan_32").context == "hamburger"
    assert gan_config("sagan_32").context == "self_attention"
    assert gan_config("sngan_32").context == "none"
    assert (gan_config("hamgan_32").num_classes, gan_config("hamgan_32").out_channels) == (10, 1)
    big = gan_config("hamgan_baby_128")
    assert (big.num_classes, big.g_channels, big.d_channels, big.z_dim) == (1000, 64, 64, 128)


@pytest.mark.parametrize("name", SMALL)
def test_32_shapes_range_and_training_step(name):
    torch.manual_seed(0)
    g, d = create_gan(name)
    assert (g.image_size, g.out_channels, g.num_classes, g.z_dim) == (32, 1, 10, 128)
    z, y = _inputs(g, 5)
    x = g(z, y)
    assert x.shape == (5, 1, 32, 32) and x.abs().max() <= 1 and x.std() > 0.01
    logits = d(x, y)
    assert logits.shape == (5,)
    (logits.mean() - d(torch.rand(5, 1, 32, 32) * 2 - 1, y).mean()).backward()  # gradients reach G and D
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in d.parameters() if p.requires_grad)
    assert g.linear.parametrizations.weight.original.grad is not None


@pytest.mark.parametrize("name", ["hamgan_baby_128", "sagan_128"])
def test_128_shapes_tiny_widths(name):
    torch.manual_seed(0)
    g, d = create_gan(name, **TINY_128)
    z, y = _inputs(g, 2)
    x = g(z, y)
    assert x.shape == (2, 3, 128, 128) and x.abs().max() <= 1
    assert d(x, y).shape == (2,)
    # the context sits at 32x32 in both networks (official g_block3 / d_block2), on 4gf and 2df channels
    assert g.context_index == 2 and d.context_index == 1
    assert g.config.g_widths[g.context_index + 1] == 16 and d.config.d_widths[d.context_index] == 8


# parameter counts of the paper-size 128x128 networks, counted on the meta device
PARAMS_128 = {
    "hamgan_baby_128": (42_640_260, 39_476_034),
    "sagan_128": (42_078_852, 39_463_618),
    "sngan_128": (41_996_931, 39_443_137),
}


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.fixture
def no_init(monkeypatch):
    """Skip orthogonal init and spectral norm's initial power iteration (slow on the meta device): neither
    adds or removes parameters (spectral norm keeps the weight as ``parametrizations.weight.original``)."""
    from hamburger.models.gan import layers

    monkeypatch.setattr(layers, "_spectral", lambda module: module)


def test_spectral_norm_does_not_change_parameter_counts(monkeypatch):
    g, d = create_gan("hamgan_32")
    counts = (_count(g), _count(d))
    from hamburger.models.gan import layers

    monkeypatch.setattr(layers, "_spectral", lambda module: module)
    g, d = create_gan("hamgan_32")
    assert (_count(g), _count(d)) == counts


@pytest.mark.parametrize("name", sorted(PARAMS_128))
def test_128_parameter_counts(name, no_init):
    with torch.device("meta"):
        g, d = create_gan(name)
    assert (_count(g), _count(d)) == PARAMS_128[name]


def test_conditioning_changes_g_and_d():
    torch.manual_seed(0)
    g, d = create_gan("hamgan_32")
    g.eval(), d.eval()
    z, _ = _inputs(g, 4)
    y0, y1 = torch.tensor([0, 1, 2, 3]), torch.tensor([5, 6, 7, 8])
    with torch.no_grad():  # class gains of G's conditional norms are 1 at init: perturb them as training would
        for m in g.modules():
            if isinstance(m, ConditionalBatchNorm):
                m.gain.weight.add_(0.1 * torch.randn_like(m.gain.weight))
        x0, x1 = g(z, y0), g(z, y1)
        assert (x0 - x1).abs().max() > 1e-3
        torch.testing.assert_close(g(z, y0), x0)  # and nothing else changes it in eval
        assert (d(x0, y0) - d(x0, y1)).abs().min() > 1e-6


def test_projection_equals_hand_computation():
    torch.manual_seed(0)
    _, d = create_gan("sngan_32")
    d.eval()  # spectral norm's power iteration frozen: the same normalised weights in every call
    x, y = torch.rand(3, 1, 32, 32) * 2 - 1, torch.tensor([0, 4, 9])
    with torch.no_grad():
        h = d.features(x)
        w, b, emb = d.linear.weight, d.linear.bias, d.embedding.weight  # the spectral-normalised weights
        expected = h @ w[0] + b[0] + (emb[y] * h).sum(dim=1)
        torch.testing.assert_close(d(x, y), expected)
        assert torch.linalg.matrix_norm(emb, ord=2) == pytest.approx(1.0, rel=1e-3)
        assert not torch.allclose(d(x, y), d(x, torch.tensor([1, 4, 9])))


def test_generator_ham_norm_uses_the_labels():
    torch.manual_seed(0)
    g, _ = create_gan("hamgan_32")
    block = g.context
    assert isinstance(block, Hamburger) and isinstance(block.upper_norm, ConditionalBatchNorm)
    block.eval()
    h = torch.rand(2, 64, 16, 16)
    with torch.no_grad():
        block.coef_ham.fill_(1.0)  # sigma = 1: out = h + cBN(W_u M(W_l h)) per class
        block.upper_norm.gain.weight[3].zero_()  # class 3: gain 0, bias 2 -> the branch is the constant 2
        block.upper_norm.bias.weight[3].fill_(2.0)
        torch.testing.assert_close(block(h, cond=torch.tensor([3, 3])), h + 2)
        assert (block(h, cond=torch.tensor([0, 0])) - h - 2).abs().max() > 0.1


def _linear_layers(module: nn.Module):
    for name, m in module.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
            yield name, m


@pytest.mark.parametrize("name", SMALL)
def test_spectral_norm_on_every_conv_linear_embedding(name):
    g, d = create_gan(name)
    for net in (g, d):
        layers = dict(_linear_layers(net))
        assert len(layers) > 10
        for layer_name, m in layers.items():
            sn = parametrize.is_parametrized(m, "weight") and any(
                type(p).__name__ == "_SpectralNorm" for p in m.parametrizations.weight
            )
            in_cbn = layer_name.endswith((".gain", ".bias"))  # conditional-BN class tables: plain, gain 1 at init
            assert sn != in_cbn, layer_name
    assert not any(isinstance(m, (nn.modules.batchnorm._NormBase, ConditionalBatchNorm)) for m in d.modules())
    if name == "hamgan_32":
        assert isinstance(d.context, Hamburger) and isinstance(d.context.upper_norm, nn.Identity)
        assert isinstance(g.context.upper_norm, ConditionalBatchNorm)


def test_orthogonal_init_before_spectral_norm():
    g, d = create_gan("hamgan_32")
    checked = 0
    for net in (g, d):
        for layer_name, m in _linear_layers(net):
            if layer_name.endswith((".gain", ".bias")):
                continue
            w = m.parametrizations.weight.original.reshape(m.parametrizations.weight.original.shape[0], -1)
            w = w if w.shape[0] <= w.shape[1] else w.T  # the orthonormal side
            torch.testing.assert_close(w @ w.T, torch.eye(w.shape[0]), atol=1e-4, rtol=0)
            checked += 1
    assert checked > 20
    cbn = g.blocks[0].bn1
    assert torch.equal(cbn.gain.weight, torch.ones_like(cbn.gain.weight)) and not cbn.bias.weight.any()


@pytest.mark.parametrize("name", SMALL)
def test_context_block_is_identity_at_init(name):
    torch.manual_seed(0)
    g, d = create_gan(name)
    h_g, h_d = torch.randn(2, 64, 16, 16), torch.randn(2, 64, 16, 16)
    y = torch.tensor([1, 2])
    if g.context is None:
        assert d.context is None
        return
    assert isinstance(g.context, (Hamburger, SNSelfAttention2d))
    out_g = g.context(h_g, cond=y) if isinstance(g.context, Hamburger) else g.context(h_g)
    assert torch.equal(out_g, h_g) and torch.equal(d.context(h_d), h_d)  # exact: sigma = 0
    sigma = g.context.coef_ham if isinstance(g.context, Hamburger) else g.context.sigma
    assert sigma.requires_grad and float(sigma.detach()) == 0.0


def _official_nmf(x: torch.Tensor, bases: torch.Tensor, steps: int) -> torch.Tensor:
    """The official GAN NMF (gan/HamGAN/ham.py) in torch: K MU steps, stop-gradient, one differentiable code step."""
    x = torch.relu(x)
    with torch.no_grad():
        coef = torch.softmax(torch.einsum("bdn,bdr->bnr", x, bases), dim=-1)
        for _ in range(steps):
            coef = coef * torch.einsum("bdn,bdr->bnr", x, bases) / (coef @ (bases.transpose(1, 2) @ bases) + 1e-6)
            bases = bases * torch.einsum("bdn,bnr->bdr", x, coef) / (bases @ (coef.transpose(1, 2) @ coef) + 1e-6)
    coef = coef * torch.einsum("bdn,bdr->bnr", x, bases) / (coef @ (bases.transpose(1, 2) @ bases) + 1e-6)
    return torch.einsum("bnr,bdr->bdn", coef, bases)


@pytest.mark.parametrize("train", [True, False])
def test_gan_ham_matches_the_official_nmf_and_its_one_step_gradient(train):
    torch.manual_seed(0)
    g, _ = create_gan("hamgan_32")
    ham = g.context.ham
    ham.train(train)
    assert (ham.rank, ham.steps, ham.eval_steps, ham.grad_mode) == (8, 6, 6, "one_step")
    x = torch.randn(2, 64, 6, 5, dtype=torch.float64)
    bases = torch.nn.functional.normalize(torch.rand(2, 64, 8, dtype=torch.float64), dim=1)  # library init
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = ham(torch.relu(x1), bases)  # the block applies the ReLU before the ham
    ref = _official_nmf(x2.flatten(2), bases, 6).reshape(x.shape)
    torch.testing.assert_close(ours, ref)
    weight = torch.randn_like(ref)
    (ours * weight).sum().backward()
    (ref * weight).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)  # no gradient through the K steps: the same as stop_gradient
    bptt = create_gan("hamgan_32", g_ham={"grad_mode": "bptt"})[0].context.ham.train(train)
    x3 = x.clone().requires_grad_()
    (bptt(torch.relu(x3), bases) * weight).sum().backward()
    assert not torch.allclose(x3.grad, x2.grad)  # the check can tell the two gradients apart


def test_variants_and_hams():
    torch.manual_seed(0)
    for overrides in ({"g_ham": {"version": "v2"}, "d_ham": {"version": "v2"}},
                      {"g_ham": {"ham": "cd", "ridge": 0.01}, "d_ham": {"ham": "vq"}}):  # fmt: skip
        g, d = create_gan("hamgan_32", **overrides)
        z, y = _inputs(g, 3)
        assert g(z, y).shape == (3, 1, 32, 32) and d(g(z, y), y).shape == (3,)
    g, d = create_gan("hamgan_32", g_ham={"ham": "cd"}, d_ham={"ham": "cd", "ridge": 0.5})
    assert (g.context.ham.ridge, d.context.ham.ridge) == (0.01, 0.5)  # the GAN code's ridge unless set
    g, _ = create_gan("hamgan_32", g_ham={"version": "v2"})
    assert isinstance(g.context.cheese[1], ConditionalBatchNorm) and isinstance(g.context.upper_norm, nn.Identity)
    g, d = create_gan("hamgan_32", g_context_size=32, d_context_size=8)
    assert g.context_index == 2 and d.context_index == 1


def test_config_defaults_resolve_the_context_place():
    assert (
        GANConfig(image_size=32, num_classes=2).g_context_size,
        GANConfig(image_size=32, num_classes=2).d_context_size,
    ) == (16, 16)
    assert (
        GANConfig(image_size=128, num_classes=2).g_context_size,
        GANConfig(image_size=64, num_classes=2).d_context_size,
    ) == (32, 32)


def test_config_round_trip():
    for name in list_gans():
        config = gan_config(name)
        data = json.loads(json.dumps(config.to_dict()))
        assert GANConfig.from_dict(data) == config
    config = gan_config("hamgan_32", g_ham={"rank": 4}, z_dim=16)
    assert config.g_ham.rank == 4 and config.g_ham.steps == 6 and config.d_ham.rank == 8
    assert GANConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda g, d: g(torch.randn(2, 128), torch.tensor([0, 10])), ValueError, r"indices in \[0, 10\), got 10"),
        (lambda g, d: g(torch.randn(2, 128), torch.tensor([-1, 0])), ValueError, r"in \[0, 10\), got -1"),
        (lambda g, d: g(torch.randn(2, 128), torch.tensor([0.0, 1.0])), TypeError, "int64 tensor of class indices"),
        (lambda g, d: g(torch.randn(2, 128), torch.tensor([0, 1, 2])), ValueError, r"y must have shape \(2,\)"),
        (lambda g, d: g(torch.randn(2, 64), torch.tensor([0, 1])), ValueError, r"z must have shape \(B, 128\)"),
        (lambda g, d: g([0.0], torch.tensor([0])), TypeError, "z must be a floating-point"),
        (lambda g, d: d(torch.rand(2, 1, 28, 28), torch.tensor([0, 1])), ValueError, r"x must have shape \(B, 1, 32"),
        (lambda g, d: d(torch.rand(2, 3, 32, 32), torch.tensor([0, 1])), ValueError, r"\(B, 1, 32, 32\), got \(2, 3"),
        (lambda g, d: d(torch.rand(2, 1, 32, 32), torch.tensor([[0], [1]])), ValueError, r"y must have shape \(2,\)"),
        (lambda g, d: d(torch.rand(2, 1, 32, 32).long(), torch.tensor([0, 1])), TypeError, "floating-point"),
    ],
)  # fmt: skip
def test_bad_inputs_are_one_clear_error(call, error, match):
    g, d = create_gan("sngan_32")
    with pytest.raises(error, match=match):
        call(g, d)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: gan_config("hamgan_64"), ValueError, "unknown GAN 'hamgan_64'; choose from"),
        (lambda: create_gan("nope"), ValueError, "unknown GAN 'nope'"),
        (lambda: gan_config("hamgan_32", image_sise=64), ValueError, r"unknown GANConfig field\(s\) \['image_sise'\]"),
        (lambda: GANConfig.from_dict({"image_size": 32, "num_classes": 2, "foo": 1}), ValueError, r"\['foo'\]"),
        (lambda: GANConfig.from_dict({"image_size": 32}), ValueError, r"needs the field\(s\) \['num_classes'\]"),
        (lambda: gan_config("hamgan_32", g_ham={"rnak": 2}), ValueError, r"g_ham: unknown ham option\(s\) \['rnak'\]"),
        (lambda: GANConfig(image_size=48, num_classes=2), ValueError, "image_size must be one of"),
        (lambda: GANConfig(image_size=32, num_classes=0), ValueError, "num_classes"),
        (lambda: GANConfig(image_size=32, num_classes=2, context="attention"), ValueError, "context must be one of"),
        (lambda: GANConfig(image_size=32, num_classes=2, g_context_size=4), ValueError, r"one of \[8, 16, 32\], got 4"),
        (lambda: GANConfig(image_size=32, num_classes=2, d_context_size=32), ValueError, r"\[8, 16\], got 32"),
        (lambda: GANConfig(image_size=32, num_classes=2, g_ham=3), TypeError, "g_ham must be a HamOptions"),
        (lambda: Generator({"image_size": 32}), TypeError, "config must be a GANConfig"),
        (lambda: Discriminator(None), TypeError, "config must be a GANConfig"),
    ],
)  # fmt: skip
def test_bad_configs_are_one_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
