"""Exponential moving average of the generator's weights (the "EMA G" used for sampling and evaluation).

As in BigGAN / PyTorch-StudioGAN: after generator step ``t`` every parameter of the copy is updated as

    theta_ema <- d * theta_ema + (1 - d) * theta          with d = decay if t >= start_step else 0,

so before ``start_step`` the copy simply follows the generator (it is a plain copy), and from ``start_step`` on
it averages. After ``k`` averaging updates from ``theta_ema_0`` with weights ``theta_1..theta_k``:
``theta_ema_k = d^k theta_ema_0 + (1 - d) * sum_j d^(k - j) theta_j``.

Buffers (the running mean / variance of batch norms, NMF bases kept as buffers) are **copied** from the
generator at every update rather than averaged or recomputed: they are running statistics already, and copying
keeps the EMA generator usable at any step without an extra pass over data (StudioGAN's default; its optional
"standing statistics" recomputation is not implemented here).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...utils import check_float, check_int

__all__ = ["EMA", "make_ema_copy"]


def make_ema_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` in eval mode whose parameters do not require gradients."""
    ema = copy.deepcopy(module)
    ema.eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


class EMA:
    """Update ``ema`` towards ``source`` (same architecture) with ``decay`` from ``start_step`` on.

    Args:
        source: the trained generator.
        ema: its copy (see :func:`make_ema_copy`).
        decay: ``d`` in ``[0, 1)``.
        start_step: generator step from which the copy averages (before it, it copies).
    """

    def __init__(self, source: nn.Module, ema: nn.Module, *, decay: float, start_step: int) -> None:
        self.source, self.ema = source, ema
        self.decay = check_float("decay", decay, low=0.0, high=1.0, high_open=True)
        self.start_step = check_int("start_step", start_step, 0)
        src, dst = dict(source.named_parameters()), dict(ema.named_parameters())
        if src.keys() != dst.keys():
            raise ValueError("ema must have the same parameters as source (a copy of it)")

    def decay_at(self, step: int) -> float:
        """The decay used by the update after generator step ``step`` (0 before ``start_step``)."""
        return self.decay if step >= self.start_step else 0.0

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Update after generator step ``step`` (the number of generator updates done, this one included)."""
        d = self.decay_at(step)
        src = dict(self.source.named_parameters())
        for name, p_ema in self.ema.named_parameters():
            p = src[name].detach()
            if d == 0.0:
                p_ema.copy_(p)
            else:
                p_ema.lerp_(p.to(p_ema.dtype), 1.0 - d)  # d * p_ema + (1 - d) * p
        src_buffers = dict(self.source.named_buffers())
        for name, b_ema in self.ema.named_buffers():
            if name in src_buffers:
                b_ema.copy_(src_buffers[name])
