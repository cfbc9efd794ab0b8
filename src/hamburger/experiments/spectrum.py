"""Spectrum of the features around a Hamburger: does the block concentrate the singular-value energy?

The paper's poster ("A Close Look at Hamburger", figure "Accumulative Ratio") plots the cumulative singular-value
energy of the features before and after the block against the rank ``r``: about 0.53 -> 0.70 at ``r = 1`` and
0.93 -> 0.96 at ``r = 20``. Its exact normalisation is not given (docs/reference: paper facts, Sec. 3.2).

Definition used here. Each sample's feature map is the ``d x n`` matrix ``X`` the ham decomposes (``d = C``
channels, ``n = H W`` positions); with singular values ``s_1 >= s_2 >= ...``, the energy at rank ``r`` is
``E_r = sum_{i <= r} s_i^2 / sum_i s_i^2 = ||X_r||_F^2 / ||X||_F^2`` (``X_r`` the best rank-``r`` approximation,
Eckart-Young), and a batch reports the mean of ``E_r`` over its samples. ``X`` is **not centred** by default:
the Hamburger approximates ``X`` itself by ``D C`` (no mean is removed; NMF works on non-negative features), so
the uncentred energy is the fraction of ``X`` a rank-``r`` ham can keep, and it is what the paper's cumulative
ratio of "features" most plausibly plots. ``center=True`` removes each channel's spatial mean first: then the
image-wide average (what a global-average-pool block broadcasts) no longer counts as rank-one structure.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..blocks import Hamburger
from ..utils import atomic_write, check_int, check_positive_int
from .diagnostics import _resolve_block, _untouched, find_hamburgers

__all__ = ["block_spectrum", "save_code_maps", "singular_value_energy", "singular_value_energies"]


def _matrices(features: Tensor, center: bool) -> Tensor:
    """``features`` as float64 ``(B, d, n)`` matrices (a ``(d, n)`` matrix is one sample)."""
    if not isinstance(features, Tensor):
        raise TypeError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.dim() < 2 or features.numel() == 0:
        raise ValueError(f"features must be (d, n), (B, C, N) or (B, C, *spatial) and non-empty, got "
                         f"{tuple(features.shape)}")  # fmt: skip
    if not (features.is_floating_point() or features.is_complex()):
        raise TypeError(f"features must be a floating-point tensor, got dtype {features.dtype}")
    x = features.detach()
    x = x[None] if x.dim() == 2 else x.reshape(x.shape[0], x.shape[1], -1)
    x = x.to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError("features contain NaN or inf")
    return x - x.mean(dim=2, keepdim=True) if center else x


def singular_value_energies(features: Tensor, ranks: Sequence[int], *, center: bool = False) -> list[float]:
    """:func:`singular_value_energy` at each of ``ranks``, from one SVD per sample."""
    ranks = [check_positive_int("rank", r) for r in ranks]
    x = _matrices(features, center)
    squares = torch.linalg.svdvals(x).square()  # (B, min(d, n)), descending
    total = squares.sum(dim=1)
    cumulative = squares.cumsum(dim=1)
    out = []
    for r in ranks:
        kept = cumulative[:, min(r, squares.shape[1]) - 1]
        # a zero matrix has rank 0 <= r: all of its (no) energy is in the top r
        energy = torch.where(total > 0, kept / total.clamp_min(torch.finfo(torch.float64).tiny), 1.0)
        out.append(float(energy.clamp(0, 1).mean()))
    return out


def singular_value_energy(features: Tensor, rank: int, *, center: bool = False) -> float:
    """Fraction of the squared singular values in the top ``rank``, per sample, averaged over the batch.

    ``features``: ``(B, C, H, W)`` (any number of spatial dims; each sample is the ``C x HW`` matrix), or one
    ``(d, n)`` matrix. Computed in float64. ``rank`` >= the matrix rank gives 1; a zero matrix counts as 1.
    ``center=True`` subtracts each row's (channel's) mean over the positions first (see the module docstring for
    why the default is uncentred).
    """
    return singular_value_energies(features, [rank], center=center)[0]


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.train(mode)


def _check_images(images: Any) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a (B, C, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    return images


def block_spectrum(
    model: nn.Module, images: Tensor, *, ranks: Sequence[int] = (1, 2, 4, 8, 16), center: bool = False
) -> dict[str, dict[str, list[float] | list[int]]]:
    """Singular-value energy of every Hamburger's input and output when ``model`` runs on ``images``.

    Returns ``{block name: {"ranks": [...], "input": [E_r...], "output": [E_r...]}}`` with ``E_r`` as in
    :func:`singular_value_energy` (mean over the images). The model runs in eval mode under ``torch.no_grad``
    (its modes, buffers and the global RNG are restored); blocks are observed through forward hooks, so a
    :class:`~hamburger.blocks.HamburgerTokens` (whose inner block's forward is not called) is not reported.
    """
    images = _check_images(images)
    ranks = [check_positive_int("rank", r) for r in ranks]
    if not ranks:
        raise ValueError("ranks must not be empty")
    blocks = find_hamburgers(model)
    if not blocks:
        raise ValueError(f"model ({type(model).__name__}) contains no Hamburger block")
    seen: dict[str, tuple[Tensor, Tensor]] = {}

    def hook(name: str):
        def record(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
            seen[name] = (args[0].detach(), output.detach())

        return record

    with contextlib.ExitStack() as stack:
        stack.enter_context(_untouched(model, images.device))
        stack.enter_context(_eval_mode(model))
        stack.enter_context(torch.no_grad())
        for name, block in blocks:
            stack.callback(block.register_forward_hook(hook(name)).remove)
        model(images)
    return {
        name: {
            "ranks": list(ranks),
            "input": singular_value_energies(seen[name][0], ranks, center=center),
            "output": singular_value_energies(seen[name][1], ranks, center=center),
        }
        for name, _ in blocks
        if name in seen
    }


def _first_component(x: Tensor, size: tuple[int, ...]) -> Tensor:
    """The first principal component over the channels of ``x`` ``(C, n)``, as an ``H x W`` map (float64).

    Its sign is chosen so that it correlates positively with the channel mean."""
    x = x.to(torch.float64)
    centred = x - x.mean(dim=1, keepdim=True)
    if float(centred.abs().max()) == 0:
        return torch.zeros(size, dtype=torch.float64)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    component = vh[0]
    mean_map = x.mean(dim=0)
    if float((component * (mean_map - mean_map.mean())).sum()) < 0:
        component = -component
    return component.reshape(size)


def _display_image(image: Tensor) -> Tensor:
    """``(C, H, W)`` as an ``(H, W, 3)`` or ``(H, W)`` float array in [0, 1] (min-max per image)."""
    img = image.detach().to(torch.float64).cpu()
    low, high = float(img.min()), float(img.max())
    img = (img - low) / (high - low) if high > low else torch.zeros_like(img)
    return img[0] if img.shape[0] != 3 else img.permute(1, 2, 0)


def save_code_maps(
    model: nn.Module,
    images: Tensor,
    path: str | os.PathLike,
    *,
    block: str | nn.Module | None = None,
    max_images: int = 4,
    max_codes: int = 8,
) -> dict[str, Any]:
    """Draw, per image, the input, the block's input and output and its code maps; write a PNG atomically.

    One row per image (at most ``max_images``): the image (min-max scaled), the Hamburger's input and output
    feature maps (each as its first principal component over the channels, sign-aligned with the channel mean),
    and the first ``max_codes`` of the ``r`` code maps, the columns of the codes ``C`` (``n x r``, of channel
    group 0) reshaped to ``H x W``. The identity ham has no codes (no code columns then). The model runs in eval
    mode under ``torch.no_grad`` (modes, buffers and the global RNG restored). ``block`` picks the Hamburger
    (a name or module; default the model's only one). Returns ``{"block", "images", "codes", "path"}``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    images = _check_images(images)
    check_positive_int("max_images", max_images)
    check_int("max_codes", max_codes, 0)
    name, target = _resolve_block(model, block)
    if not isinstance(target, Hamburger):
        raise ValueError(f"block {name!r} is a {type(target).__name__}, not a Hamburger")
    images = images[:max_images]
    seen: dict[str, Tensor] = {}

    def record(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
        seen["input"], seen["output"] = args[0].detach(), output.detach()

    original_factors = target.ham.factors

    def factors(*args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
        bases, coef = original_factors(*args, **kwargs)
        seen["codes"] = coef.detach()
        return bases, coef

    with contextlib.ExitStack() as stack:
        stack.enter_context(_untouched(model, images.device))
        stack.enter_context(_eval_mode(model))
        stack.enter_context(torch.no_grad())
        stack.callback(target.register_forward_hook(record).remove)
        target.ham.factors = factors  # type: ignore[method-assign]
        stack.callback(lambda: target.ham.__dict__.pop("factors", None))
        model(images)
    if "input" not in seen:
        raise ValueError(f"block {name!r} was not called by the model's forward")
    x_in, x_out = seen["input"], seen["output"]
    size = tuple(x_in.shape[2:])
    b = x_in.shape[0]
    codes = None
    if "codes" in seen and target.ham.spatial:
        coef = seen["codes"]  # (B*S, n, r)
        groups = coef.shape[0] // b
        codes = coef.reshape(b, groups, *coef.shape[1:])[:, 0]  # (B, n, r), group 0
    num_codes = 0 if codes is None else min(max_codes, codes.shape[-1])
    cols = 3 + num_codes
    fig = Figure(figsize=(1.6 * cols, 1.6 * b + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    titles = ["image", "block input (PC1)", "block output (PC1)"] + [f"code {k + 1}" for k in range(num_codes)]
    for i in range(b):
        panels = [_display_image(images[i]), _first_component(x_in[i].reshape(x_in.shape[1], -1), size),
                  _first_component(x_out[i].reshape(x_out.shape[1], -1), size)]  # fmt: skip
        for k in range(num_codes):
            assert codes is not None
            panels.append(codes[i, :, k].to(torch.float64).reshape(size))
        for j, panel in enumerate(panels):
            ax = fig.add_subplot(b, cols, i * cols + j + 1)
            array = panel.cpu().numpy()
            cmap = None if array.ndim == 3 else ("gray" if j == 0 else "viridis")
            ax.imshow(array, cmap=cmap, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    data = buffer.getvalue()
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return {"block": name, "images": b, "codes": num_codes, "path": str(path)}
