"""Spectral-norm layers with orthogonal init, the SAGAN self-attention block and the residual GAN blocks.

Conventions follow SAGAN (Zhang et al. 2019) as in TF-GAN / the official HamGAN code and PyTorch-StudioGAN:
spectral normalisation (Miyato et al. 2018) on every convolution, linear and embedding of G and D; orthogonal
initial weights (StudioGAN's ``ortho``; the official TF code uses Glorot-uniform); zero biases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ...layers import ConditionalBatchNorm
from ...utils import check_positive_int

SN_EPS = 1e-6  # StudioGAN's spectral-norm epsilon


def _spectral(module: nn.Module) -> nn.Module:
    """Orthogonal weight (before SN), zero bias, then the spectral-norm parametrisation."""
    weight = module.weight
    assert isinstance(weight, Tensor)
    nn.init.orthogonal_(weight)
    bias = getattr(module, "bias", None)
    if isinstance(bias, Tensor):
        nn.init.zeros_(bias)
    return spectral_norm(module, eps=SN_EPS)


def sn_conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    *,
    padding: int | None = None,
    bias: bool = True,
    device=None,
    dtype=None,
    **kwargs,
) -> nn.Module:
    """Spectral-norm ``Conv2d`` ('same' padding by default), orthogonally initialised.

    Also a ``conv_layer`` factory of :class:`~hamburger.blocks.Hamburger` (same call signature).
    """
    padding = kernel_size // 2 if padding is None else padding
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=bias, device=device, dtype=dtype,
                     **kwargs)  # fmt: skip
    return _spectral(conv)


def sn_linear(in_features: int, out_features: int, *, bias: bool = True) -> nn.Module:
    """Spectral-norm ``Linear``, orthogonally initialised."""
    return _spectral(nn.Linear(in_features, out_features, bias=bias))


def sn_embedding(num_embeddings: int, embedding_dim: int) -> nn.Module:
    """Spectral-norm ``Embedding`` (the projection discriminator's class embedding), orthogonally initialised."""
    return _spectral(nn.Embedding(num_embeddings, embedding_dim))


class SNSelfAttention2d(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019, TF-GAN ``sn_non_local_block_sim``): ``x + sigma * o``.

    ``theta = W_theta x`` (C/8 channels, every position), ``phi = maxpool(W_phi x)`` (C/8), ``g = maxpool(W_g x)``
    (C/2), ``A = softmax(theta^T phi)`` over the n/4 pooled positions, ``o = W_o (g A^T)`` (C/2 -> C). All four
    1x1 convolutions are spectral-norm and bias-free; ``sigma`` is a learnable scalar initialised to 0, so the
    block is the identity at init. Needs ``C >= 8`` and even ``H``, ``W``.

    Shape: ``(B, C, H, W)`` -> same.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        if channels < 8:
            raise ValueError(f"SAGAN attention needs channels >= 8 (query width C/8), got {channels}")
        self.theta = sn_conv2d(channels, channels // 8, 1, bias=False)
        self.phi = sn_conv2d(channels, channels // 8, 1, bias=False)
        self.g = sn_conv2d(channels, channels // 2, 1, bias=False)
        self.out = sn_conv2d(channels // 2, channels, 1, bias=False)
        self.sigma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        theta = self.theta(x).flatten(2)  # (B, C/8, n)
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)  # (B, C/8, n/4)
        g = F.max_pool2d(self.g(x), 2).flatten(2)  # (B, C/2, n/4)
        attn = torch.bmm(theta.transpose(1, 2), phi).softmax(dim=-1)  # (B, n, n/4)
        o = torch.bmm(g, attn.transpose(1, 2)).reshape(b, c // 2, h, w)
        return x + self.sigma * self.out(o)

    def no_weight_decay(self) -> set[str]:
        return {"sigma"}

    def extra_repr(self) -> str:
        return f"{self.channels}"


class GenBlock(nn.Module):
    """Generator up-block: ``cBN -> ReLU -> up x2 -> SN conv3x3 -> cBN -> ReLU -> SN conv3x3``, plus the
    shortcut ``SN conv1x1(up x2 (x))`` (nearest-neighbour upsampling)."""

    def __init__(self, in_channels: int, out_channels: int, num_classes: int, *, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm(in_channels, num_classes, eps=bn_eps)
        self.conv1 = sn_conv2d(in_channels, out_channels, 3)
        self.bn2 = ConditionalBatchNorm(out_channels, num_classes, eps=bn_eps)
        self.conv2 = sn_conv2d(out_channels, out_channels, 3)
        self.shortcut = sn_conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DiscBlock(nn.Module):
    """Discriminator block: ``ReLU -> SN conv3x3 -> ReLU -> SN conv3x3 (-> avgpool 2)`` plus the shortcut
    ``SN conv1x1 (-> avgpool 2)`` when the block downsamples or changes the width (identity otherwise).

    ``optimized=True`` is SNGAN's first block (on the image): no leading ReLU, and the shortcut pools before
    its 1x1 convolution; it always downsamples.
    """

    def __init__(self, in_channels: int, out_channels: int, *, downsample: bool = True, optimized: bool = False):
        super().__init__()
        self.downsample, self.optimized = downsample or optimized, optimized
        self.conv1 = sn_conv2d(in_channels, out_channels, 3)
        self.conv2 = sn_conv2d(out_channels, out_channels, 3)
        learnable = self.downsample or in_channels != out_channels
        self.shortcut = sn_conv2d(in_channels, out_channels, 1) if learnable else None

    def forward(self, x: Tensor) -> Tensor:
        h = x if self.optimized else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.optimized:
            s = self.shortcut(F.avg_pool2d(x, 2))  # type: ignore[misc]
        elif self.shortcut is not None:
            s = self.shortcut(x)
            if self.downsample:
                s = F.avg_pool2d(s, 2)
        return h + s
