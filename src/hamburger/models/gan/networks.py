"""The class-conditional generator and the projection discriminator (SAGAN / HamGAN architecture)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...blocks import Hamburger, HamOptions
from ...blocks.options import INHERIT
from ...layers import ConditionalBatchNorm
from .config import D_DOWN, GANConfig, d_sizes, g_sizes
from .layers import DiscBlock, GenBlock, SNSelfAttention2d, sn_conv2d, sn_embedding, sn_linear


def _check_config(config: object) -> GANConfig:
    if not isinstance(config, GANConfig):
        raise TypeError(f"config must be a GANConfig, got {type(config).__name__}")
    return config


def check_labels(y: object, *, num_classes: int, batch: int | None = None, name: str = "y") -> Tensor:
    """Validate class labels: an int64 (or int32) tensor of shape ``(B,)`` with values in ``[0, num_classes)``."""
    if not isinstance(y, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices (B,), got {type(y).__name__}")
    if y.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an int64 tensor of class indices, got dtype {y.dtype}")
    if y.dim() != 1 or (batch is not None and y.shape[0] != batch):
        expected = "(B,)" if batch is None else f"({batch},)"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(y.shape)}")
    if y.numel() and y.device.type != "meta" and not torch.compiler.is_compiling():
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(f"{name} must hold class indices in [0, {num_classes}), got {bad}")
    return y


def _ham_block(config: GANConfig, channels: int, *, generator: bool) -> Hamburger:
    """The HamGAN block: SN breads, the ham, (G) class-conditional BN, ``x + sigma * branch``."""
    opts: HamOptions = config.g_ham if generator else config.d_ham
    norm = opts.norm_layer
    if norm == INHERIT:  # official: conditional BN after the upper bread (cheese in v2) in G, no norm in D
        norm = functools.partial(ConditionalBatchNorm, num_classes=config.num_classes, eps=config.bn_eps)
        norm = norm if generator else "none"
    conv = sn_conv2d if opts.conv_layer == "spectral" else opts.conv_layer
    ham_channels = config.g_ham_channels if generator else config.d_ham_channels
    return Hamburger(channels, ham=opts.replace(norm_layer=norm, conv_layer=conv), ham_channels=ham_channels)


def _context_block(config: GANConfig, channels: int, *, generator: bool) -> nn.Module | None:
    if config.context == "hamburger":
        return _ham_block(config, channels, generator=generator)
    if config.context == "self_attention":
        return SNSelfAttention2d(channels)
    return None


class Generator(nn.Module):
    """``G(z, y)``: SN linear ``z -> 4 x 4 x C_0``, residual up-blocks with class-conditional BatchNorm, the
    context block (Hamburger / SAGAN attention / none) after the up-block whose output side is
    ``config.g_context_size``, then ``BN -> ReLU -> SN conv3x3 -> tanh``.

    128x128 widths (``gf = g_channels``): ``16gf`` at 4x4, up-blocks to ``16, 8, 4, 2, 1 x gf`` (the official
    HamGAN / SAGAN generator); 32x32: ``4gf`` throughout, three up-blocks.

    Shape: ``z`` ``(B, z_dim)`` float, ``y`` ``(B,)`` int64 in ``[0, num_classes)`` -> ``(B, out_channels, S, S)``
    in ``[-1, 1]``.
    """

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = _check_config(config)
        self.z_dim, self.num_classes = config.z_dim, config.num_classes
        self.image_size, self.out_channels = config.image_size, config.out_channels
        widths = config.g_widths
        self.linear = sn_linear(config.z_dim, widths[0] * 16)
        self.blocks = nn.ModuleList(
            GenBlock(widths[i], widths[i + 1], config.num_classes, bn_eps=config.bn_eps) for i in range(len(widths) - 1)
        )
        self.context_index = g_sizes(config.image_size).index(config.g_context_size)
        self.context = _context_block(config, widths[self.context_index + 1], generator=True)
        self.bn = nn.BatchNorm2d(widths[-1], eps=config.bn_eps)
        self.conv_out = sn_conv2d(widths[-1], config.out_channels, 3)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        if not isinstance(z, Tensor) or not z.is_floating_point():
            raise TypeError(f"z must be a floating-point torch.Tensor (B, {self.z_dim}), got {_describe(z)}")
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        check_labels(y, num_classes=self.num_classes, batch=z.shape[0])
        h = self.linear(z).reshape(z.shape[0], -1, 4, 4)
        for i, block in enumerate(self.blocks):
            h = block(h, y)
            if i == self.context_index and self.context is not None:
                takes_cond = isinstance(self.context, Hamburger) and self.context.takes_cond
                h = self.context(h, cond=y) if takes_cond else self.context(h)
        return torch.tanh(self.conv_out(F.relu(self.bn(h))))


class Discriminator(nn.Module):
    """``D(x, y)``: SNGAN's optimised first block, residual down-blocks, the context block after the block whose
    output side is ``config.d_context_size`` (no norm in it), ReLU, global sum pooling ``h``, then the projection
    logit ``w^T h + b + <embed(y), h>`` (Miyato & Koyama 2018) with SN linear and SN embedding.

    128x128 widths (``df = d_channels``): ``1, 2, 4, 8, 16, 16 x df``, the last block without downsampling;
    32x32: ``2df`` throughout, the first two blocks downsample.

    Shape: ``x`` ``(B, out_channels, S, S)`` float, ``y`` ``(B,)`` int64 -> logits ``(B,)``.
    """

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = _check_config(config)
        self.num_classes, self.image_size, self.in_channels = config.num_classes, config.image_size, config.out_channels
        widths, down = config.d_widths, D_DOWN[config.image_size]
        blocks = [DiscBlock(config.out_channels, widths[0], optimized=True)]
        blocks += [DiscBlock(widths[i - 1], widths[i], downsample=down[i]) for i in range(1, len(widths))]
        self.blocks = nn.ModuleList(blocks)
        self.context_index = d_sizes(config.image_size).index(config.d_context_size)
        self.context = _context_block(config, widths[self.context_index], generator=False)
        self.linear = sn_linear(widths[-1], 1)
        self.embedding = sn_embedding(config.num_classes, widths[-1])

    def features(self, x: Tensor) -> Tensor:
        """The pooled features ``h = sum_{H, W} ReLU(blocks(x))``, ``(B, C_last)``."""
        s, c = self.image_size, self.in_channels
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point torch.Tensor (B, {c}, {s}, {s}), got {_describe(x)}")
        if x.dim() != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"x must have shape (B, {c}, {s}, {s}), got {tuple(x.shape)}")
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.context_index and self.context is not None:
                h = self.context(h)
        return F.relu(h).sum(dim=(2, 3))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.features(x)
        check_labels(y, num_classes=self.num_classes, batch=x.shape[0])
        return self.linear(h).squeeze(1) + (self.embedding(y) * h).sum(dim=1)


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of dtype {value.dtype} and shape {tuple(value.shape)}"
    return f"{type(value).__name__}"
