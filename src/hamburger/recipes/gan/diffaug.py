"""DiffAugment (Zhao et al., NeurIPS 2020): differentiable augmentations applied to real *and* fake images
before the discriminator, so that a GAN trained on little data does not let D memorise the reals.

Policies (comma-separated, applied in this order): ``color`` (random brightness, saturation, contrast),
``translation`` (shift by up to 1/8 of the side, zero-filled) and ``cutout`` (one zeroed square of half the
side). Every operation is differentiable with respect to the images; the random parameters are drawn from the
``generator`` given (on the CPU), so the augmentation is reproducible and does not touch the global RNG.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["POLICIES", "diff_augment", "parse_policy"]

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"color,translation"`` (or a list, or ``None`` / ``""`` for none) as a tuple of known policy names."""
    if policy is None:
        return ()
    names = [p.strip() for p in policy.split(",")] if isinstance(policy, str) else [str(p).strip() for p in policy]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"diffaug: unknown policy {unknown[0]!r} in {policy!r}; choose from {', '.join(POLICIES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"diffaug: repeated policy in {policy!r}")
    return tuple(n for n in POLICIES if n in names)


def _uniform(n: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=generator).to(device=like.device, dtype=like.dtype)


def _color(x: torch.Tensor, *, generator: torch.Generator | None) -> torch.Tensor:
    b = x.shape[0]
    x = x + (_uniform(b, generator, x) - 0.5)  # brightness
    if x.shape[1] > 1:  # saturation (colour images only)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_uniform(b, generator, x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(b, generator, x) + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, *, ratio: float, generator: torch.Generator | None) -> torch.Tensor:
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b,), generator=generator).to(x.device)
    dx = torch.randint(-sx, sx + 1, (b,), generator=generator).to(x.device)
    padded = F.pad(x, (sx, sx, sy, sy))  # zeros around
    rows = torch.arange(h, device=x.device)[None, :] - dy[:, None] + sy  # (B, H): output row i reads i - dy
    cols = torch.arange(w, device=x.device)[None, :] - dx[:, None] + sx
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, *, ratio: float, generator: torch.Generator | None) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b,), generator=generator).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b,), generator=generator).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :] - (cy[:, None] - ch // 2)  # inside when 0 <= ys < ch
    xs = torch.arange(w, device=x.device)[None, :] - (cx[:, None] - cw // 2)
    inside = ((ys >= 0) & (ys < ch))[:, :, None] & ((xs >= 0) & (xs < cw))[:, None, :]  # (B, H, W)
    return x * (~inside)[:, None].to(x.dtype)


def diff_augment(
    x: torch.Tensor,
    policy: str | Sequence[str] | None,
    *,
    generator: torch.Generator | None = None,
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
) -> torch.Tensor:
    """Apply the DiffAugment ``policy`` to a batch ``x`` ``(B, C, H, W)`` in [-1, 1]; differentiable in ``x``.

    Each sample gets its own random parameters, drawn from ``generator`` (a CPU ``torch.Generator``; ``None``:
    the global RNG). An empty policy returns ``x`` itself.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be a batch (B, C, H, W), got shape {tuple(x.shape)}")
    for name in parse_policy(policy):
        if name == "color":
            x = _color(x, generator=generator)
        elif name == "translation":
            x = _translation(x, ratio=translation_ratio, generator=generator)
        else:
            x = _cutout(x, ratio=cutout_ratio, generator=generator)
    return x
