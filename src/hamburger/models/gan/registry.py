"""Named GAN configurations: ``register_gan``, ``list_gans``, ``gan_config``, ``create_gan``."""

from __future__ import annotations

import fnmatch
from typing import Any

from .config import GANConfig, default_d_ham, default_g_ham
from .networks import Discriminator, Generator

_GANS: dict[str, GANConfig] = {}


def register_gan(name: str, config: GANConfig, *, overwrite: bool = False) -> GANConfig:
    """Register ``config`` under ``name`` (a ValueError if taken, unless ``overwrite``)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if not isinstance(config, GANConfig):
        raise TypeError(f"config must be a GANConfig, got {type(config).__name__}")
    if name in _GANS and not overwrite:
        raise ValueError(f"GAN {name!r} is already registered")
    _GANS[name] = config
    return config


def list_gans(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a shell-style ``pattern`` (``"*_32"``)."""
    names = sorted(_GANS)
    return names if pattern is None else fnmatch.filter(names, pattern)


def gan_config(name: str, **overrides: Any) -> GANConfig:
    """The registered config ``name`` with ``overrides`` (GANConfig fields; ``g_ham={"rank": 8}`` changes
    fields of the ham)."""
    if not isinstance(name, str) or name not in _GANS:
        raise ValueError(f"unknown GAN {name!r}; choose from {list_gans()}")
    return _GANS[name].replace(**overrides)


def create_gan(name_or_config: str | GANConfig, **overrides: Any) -> tuple[Generator, Discriminator]:
    """Build ``(G, D)`` from a registered name or a :class:`GANConfig` (with ``overrides`` applied).

    Example:
        >>> g, d = create_gan("sngan_32")
        >>> g(torch.randn(2, 128), torch.tensor([0, 9])).shape
        torch.Size([2, 1, 32, 32])
    """
    if isinstance(name_or_config, GANConfig):
        config = name_or_config.replace(**overrides)
    else:
        config = gan_config(name_or_config, **overrides)
    return Generator(config), Discriminator(config)


# --------------------------------------------------------------------------------------------- named configs
def _register_defaults() -> None:
    # Fashion-MNIST at 32x32 (10 classes, grey): small widths that train on a 2-core CPU; the context block at
    # 16x16 in G (after the second of three up-blocks) and D (after the first block), StudioGAN's CIFAR SAGAN
    # placement. Ham width = feature width (64), rank 8 (the official d / r = 8).
    small = GANConfig(
        image_size=32, num_classes=10, out_channels=1, g_channels=16, d_channels=32,
        g_context_size=16, d_context_size=16,
        g_ham=default_g_ham().replace(rank=8), d_ham=default_d_ham().replace(rank=8),
    )  # fmt: skip
    register_gan("hamgan_32", small)
    register_gan("sagan_32", small.replace(context="self_attention"))
    register_gan("sngan_32", small.replace(context="none"))
    # ImageNet 128x128 (1000 classes): the paper's networks, gf = df = 64, z 128, context at 32x32 in G (256
    # channels, ham d = 256, r = 32) and D (128 channels, d = 128, r = 16). Baby and strong share the
    # architecture; they differ in batch size (256 / 1024) and steps (2M / 1M), which are training settings.
    imagenet = GANConfig(image_size=128, num_classes=1000)
    register_gan("hamgan_baby_128", imagenet)
    register_gan("hamgan_strong_128", imagenet)
    register_gan("sagan_128", imagenet.replace(context="self_attention"))
    register_gan("sngan_128", imagenet.replace(context="none"))


_register_defaults()
