"""Shared plumbing of the context-module zoo: argument checks and the token view of a feature map."""

from __future__ import annotations

from torch import Tensor


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive ``int`` (not a bool), else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def check_feature_map(x: object, channels: int) -> tuple[int, int]:
    """Validate a ``(B, C, H, W)`` input; return ``(B, n)`` with ``n = H W`` the number of positions."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"x must have shape (B, {channels}, H, W), got {tuple(x.shape)}")
    return x.shape[0], x.shape[2] * x.shape[3]
