"""Hinge losses of SAGAN / BigGAN / HamGAN (Lim & Ye 2017; Miyato et al. 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["hinge_d_loss", "hinge_g_loss"]


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss ``mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))`` (computed in float32)."""
    return F.relu(1.0 - real_logits.float()).mean() + F.relu(1.0 + fake_logits.float()).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss ``-mean(D(G(z)))`` (computed in float32)."""
    return -fake_logits.float().mean()
