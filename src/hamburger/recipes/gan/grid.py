"""Sample grids: one row per class, one column per noise vector, written as PNG (atomically)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ...training.rng import capture_rng_state, restore_rng_state
from ...utils import atomic_write, check_int, check_positive_int

__all__ = ["fixed_noise", "grid_size", "make_grid", "sample_grid", "to_uint8", "write_png"]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] to ``uint8`` in [0, 255] (rounded, clamped)."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def grid_size(rows: int, columns: int, image_size: int, padding: int = 2) -> tuple[int, int]:
    """``(height, width)`` of a grid: ``rows * (S + padding) + padding`` by ``columns * (S + padding) + padding``."""
    return rows * (image_size + padding) + padding, columns * (image_size + padding) + padding


def make_grid(images: torch.Tensor, *, rows: int, padding: int = 2, pad_value: int = 255) -> torch.Tensor:
    """``uint8 (rows * cols, C, S, S)`` in row-major order -> one ``uint8 (C, H, W)`` image (see :func:`grid_size`)."""
    n, c, h, w = images.shape
    if n % rows:
        raise ValueError(f"{n} images do not fill {rows} rows")
    cols = n // rows
    grid = torch.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value,
                      dtype=images.dtype)  # fmt: skip
    for k in range(n):
        r, q = divmod(k, cols)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, top : top + h, left : left + w] = images[k]
    return grid


def write_png(image: torch.Tensor, path: str | os.PathLike) -> None:
    """Write a ``uint8 (C, H, W)`` image (C = 1 or 3) as a PNG, atomically (temp file + rename)."""
    from PIL import Image

    array = image.permute(1, 2, 0).numpy()
    array = array[:, :, 0] if array.shape[2] == 1 else array
    picture = Image.fromarray(np.ascontiguousarray(array))
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))


def fixed_noise(classes: Sequence[int], columns: int, z_dim: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, y)`` for a grid: ``columns`` noise vectors (the same for every row) times ``classes`` (one row each)."""
    check_positive_int("columns", columns)
    g = torch.Generator().manual_seed(check_int("seed", seed))
    z = torch.randn(columns, z_dim, generator=g)
    z = z.repeat(len(classes), 1)
    y = torch.tensor([c for c in classes for _ in range(columns)], dtype=torch.int64)
    return z, y


def sample_grid(
    generate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    classes: Sequence[int],
    columns: int,
    z_dim: int,
    num_classes: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> torch.Tensor:
    """The ``uint8 (C, H, W)`` grid of ``generate(z, y)`` for ``classes`` (rows) x ``columns``.

    The global RNG states are restored afterwards (a generator may draw random bases), so sampling during
    training does not change the training stream. Unknown class ids are a ``ValueError``.
    """
    classes = [int(c) for c in classes]
    if not classes:
        raise ValueError("classes: give at least one class id")
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"classes: class id {bad[0]} is not in [0, {num_classes}) (the model has {num_classes} "
                         "classes)")  # fmt: skip
    z, y = fixed_noise(classes, columns, z_dim, seed=seed)
    state = capture_rng_state()
    try:
        with torch.no_grad():
            parts = [
                generate(zb.to(device), yb.to(device))
                for zb, yb in zip(z.split(batch_size), y.split(batch_size), strict=True)
            ]
    finally:
        restore_rng_state(state)
    return make_grid(to_uint8(torch.cat(parts)), rows=len(classes))
