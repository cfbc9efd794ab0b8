"""Diagnostics of Hamburger blocks inside a model: is the context branch used, and can its gradient carry context?

Torch-level functions on a built :class:`~hamburger.models.SegmentationModel` or on any module that contains
:class:`~hamburger.blocks.Hamburger` blocks (issue 13):

* :func:`find_hamburgers`: the blocks, by name;
* :func:`branch_ablation`: a context manager that replaces every block's ham branch by zeros or by its
  spatial mean (does the model use the branch at all, and more than its image-wide average?);
* :class:`BranchStatsCallback`: a Lightning callback recording the gates and the branch / shortcut RMS over
  training;
* :func:`off_token_gradient_share` and :func:`receptive_field_share`: how much of a block's (a model's)
  gradient leaves the token (the window) it starts from;
* :func:`block_gradient_norms`: the loss gradient at each block's input through the shortcut and through the
  branch, and at the gates.

None of them changes the model: gradients are taken with :func:`torch.autograd.grad` (no ``.grad`` is
written), BatchNorm statistics and other buffers are restored, and the global RNG is left as it was.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from ..blocks import Hamburger, HamburgerTokens
from ..utils import atomic_write_text, check_choice, check_int, check_positive_int

__all__ = [
    "ABLATION_MODES",
    "BranchStatsCallback",
    "block_gradient_norms",
    "branch_ablation",
    "find_hamburgers",
    "off_token_gradient_share",
    "receptive_field_share",
]

ABLATION_MODES = ("zero", "mean")


# ---------------------------------------------------------------------------------------------- finding blocks
def find_hamburgers(model: nn.Module) -> list[tuple[str, Hamburger]]:
    """Every :class:`~hamburger.blocks.Hamburger` in ``model`` (``model`` itself included), as ``(name, block)``
    in ``named_modules`` order; the block of a :class:`~hamburger.blocks.HamburgerTokens` is ``"<name>.block"``.
    Identity-ham blocks (``ham="identity"``) are Hamburgers too."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return [(name, module) for name, module in model.named_modules() if isinstance(module, Hamburger)]


def _require_hamburgers(model: nn.Module) -> list[tuple[str, Hamburger]]:
    blocks = find_hamburgers(model)
    if not blocks:
        raise ValueError(f"model ({type(model).__name__}) contains no Hamburger block")
    return blocks


@contextlib.contextmanager
def _patched_branch(block: Hamburger, wrap: Callable[[Callable[..., Tensor]], Callable[..., Tensor]]) -> Iterator[None]:
    """Replace ``block._branch`` (the gated branch, what is added to the shortcut) by ``wrap(original)``."""
    previous = block.__dict__.get("_branch")  # an enclosing patch, restored afterwards
    block._branch = wrap(block._branch)  # type: ignore[method-assign]
    try:
        yield
    finally:
        if previous is None:
            del block._branch
        else:
            block._branch = previous  # type: ignore[method-assign]


@contextlib.contextmanager
def _untouched(model: nn.Module, device: torch.device | None = None) -> Iterator[None]:
    """Run a diagnostic without side effects: buffers (BatchNorm statistics, online dictionaries) are restored
    and the global RNG (CPU, and the CUDA device of ``device``) is left as it was."""
    saved = {name: buf.detach().clone() for name, buf in model.named_buffers()}
    devices = [device.index or 0] if device is not None and device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        with torch.no_grad():
            for name, buf in model.named_buffers():
                if name in saved:
                    buf.copy_(saved[name])


# ---------------------------------------------------------------------------------------------- ablation
def _spatial_mean(branch: Tensor, mask: Tensor | None) -> Tensor:
    dims = tuple(range(2, branch.dim()))
    if mask is None:
        return branch.mean(dim=dims, keepdim=True).expand_as(branch)
    weight = mask.to(branch.dtype).reshape(branch.shape[0], 1, *branch.shape[2:])  # tokens: (B, 1, N)
    mean = (branch * weight).sum(dim=dims, keepdim=True) / weight.sum(dim=dims, keepdim=True).clamp_min(1)
    return mean.expand_as(branch)


@contextlib.contextmanager
def branch_ablation(model: nn.Module, mode: str = "zero") -> Iterator[list[str]]:
    """Replace the ham branch of every Hamburger in ``model`` while the context is open; yields the block names.

    The branch is the tensor the block adds to its shortcut, after the upper bread, the norm (V1) and the gate
    ``g_ham`` (V2+): ``out = out_act(g_x x + branch)``. ``mode="zero"`` replaces it by zeros (the block becomes
    ``out_act(g_x x)``, the same function as the block with ``g_ham = 0``); ``mode="mean"`` by its per-channel
    mean over the positions of each sample (over the real tokens for a padded
    :class:`~hamburger.blocks.HamburgerTokens`): only the image-wide average of the context survives.

    The branch is still computed, so training-mode side effects (BatchNorm statistics, online dictionaries, the
    random draws of the dictionary) are those of the intact model; the blocks are restored exactly on exit.

    Example:
        >>> from hamburger.models import create_model
        >>> model = create_model("tiny_ham").eval()
        >>> with branch_ablation(model, "zero") as names:
        ...     names
        ['head.context']
    """
    check_choice("mode", mode, ABLATION_MODES)
    blocks = _require_hamburgers(model)

    def wrap(original: Callable[..., Tensor]) -> Callable[..., Tensor]:
        def branch(x: Tensor, mask: Tensor | None = None) -> Tensor:
            out = original(x, mask)
            return torch.zeros_like(out) if mode == "zero" else _spatial_mean(out, mask)

        return branch

    with contextlib.ExitStack() as stack:
        for _, block in blocks:
            stack.enter_context(_patched_branch(block, wrap))
        yield [name for name, _ in blocks]


# ---------------------------------------------------------------------------------------------- training statistics
def _rms(x: Tensor) -> float:
    return float(x.detach().float().square().mean().sqrt())


def _scalar(p: Tensor | None) -> float | None:
    return None if p is None else float(p.detach().float().reshape(-1)[0])


class BranchStatsCallback(pl.Callback):
    """Record, every ``every_n_steps`` optimizer steps, per Hamburger: the gates and how large the branch is.

    On a recorded step the training batch's forward is observed (nothing is changed) and one row per block is
    appended to :attr:`rows`: ``step`` (``trainer.global_step`` before the update), ``block`` (its name in the
    LightningModule), ``gate`` (``g_ham`` in that step's forward, None without one), ``shortcut_gate`` (``g_x``),
    ``branch_rms`` (RMS of the gated branch, what is added to the shortcut), ``shortcut_rms`` (RMS of ``g_x x``)
    and ``ratio = branch_rms / shortcut_rms`` (NaN for a zero shortcut). A block called several times in a step
    reports the RMS over all its calls. The rows travel in the trainer's checkpoints, so a resumed run keeps
    them; :meth:`write_csv` writes them out atomically.

    Args:
        every_n_steps: record at steps 0, ``N``, ``2N``, ... (a positive int).
        path: if given, the CSV file :meth:`write_csv` (re)writes after every recorded step, so a killed run
            keeps what it recorded (relative paths are taken from the working directory). From the CLI:
            ``--trainer.callbacks+={"class_path": "hamburger.experiments.diagnostics.BranchStatsCallback",
            "init_args": {"every_n_steps": 10, "path": "branch_stats.csv"}}``.
    """

    COLUMNS = ("step", "block", "gate", "shortcut_gate", "branch_rms", "shortcut_rms", "ratio")

    def __init__(self, every_n_steps: int = 50, path: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.every_n_steps = check_positive_int("every_n_steps", every_n_steps)
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str, a path or None, got {type(path).__name__} {path!r}")
        self.path = None if path is None else Path(path)
        self.rows: list[dict[str, Any]] = []
        self._stack: contextlib.ExitStack | None = None
        self._sums: dict[str, list[float]] = {}
        self._recorded_step: int | None = None
        self._gates: dict[str, tuple[float | None, float | None]] = {}

    def _recorder(self, name: str, block: Hamburger) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
        def wrap(original: Callable[..., Tensor]) -> Callable[..., Tensor]:
            def branch(x: Tensor, mask: Tensor | None = None) -> Tensor:
                out = original(x, mask)
                with torch.no_grad():
                    shortcut = x if block.coef_shortcut is None else block.coef_shortcut * x
                    sums = self._sums.setdefault(name, [0.0, 0.0, 0.0])
                    sums[0] += float(out.detach().float().square().sum())
                    sums[1] += float(shortcut.detach().float().square().sum())
                    sums[2] += out.numel()
                return out

            return branch

        return wrap

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step % self.every_n_steps or step == self._recorded_step or self._stack is not None:
            return
        self._sums = {}
        self._recorded_step = step
        # the gates of the forward that is observed (on_train_batch_end comes after the optimizer step)
        self._gates = {
            name: (_scalar(block.coef_ham), _scalar(block.coef_shortcut)) for name, block in find_hamburgers(pl_module)
        }
        self._stack = contextlib.ExitStack()
        for name, block in find_hamburgers(pl_module):
            self._stack.enter_context(_patched_branch(block, self._recorder(name, block)))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._stack is None:
            return
        self._stack.close()
        self._stack = None
        step = self._recorded_step
        for name, _ in find_hamburgers(pl_module):
            if name not in self._sums:
                continue
            gate, shortcut_gate = self._gates.get(name, (None, None))
            branch_sq, shortcut_sq, count = self._sums[name]
            branch_rms, shortcut_rms = math.sqrt(branch_sq / count), math.sqrt(shortcut_sq / count)
            self.rows.append({
                "step": step, "block": name, "gate": gate, "shortcut_gate": shortcut_gate, "branch_rms": branch_rms,
                "shortcut_rms": shortcut_rms, "ratio": branch_rms / shortcut_rms if shortcut_rms > 0 else math.nan,
            })  # fmt: skip
        if self.path is not None and trainer.is_global_zero:
            self.write_csv(self.path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(row) for row in self.rows], "recorded_step": self._recorded_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(row) for row in state_dict.get("rows", [])]
        self._recorded_step = state_dict.get("recorded_step")

    def write_csv(self, path: str | os.PathLike) -> None:
        """Write :attr:`rows` as CSV (columns :attr:`COLUMNS`; None as an empty cell) to ``path``, atomically."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in self.COLUMNS})
        atomic_write_text(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------------- gradient locality
class _Captured(Exception):
    """Raised by a forward pre-hook to stop a forward once the block's input is captured."""


def _resolve_block(model_or_block: nn.Module, block: str | nn.Module | None) -> tuple[str, nn.Module]:
    """The context block to probe and its name (``""`` when it is ``model_or_block`` itself)."""
    if not isinstance(model_or_block, nn.Module):
        raise TypeError(f"model_or_block must be an nn.Module, got {type(model_or_block).__name__}")
    modules = dict(model_or_block.named_modules())
    if isinstance(block, nn.Module):
        for name, module in modules.items():
            if module is block:
                return name, module
        raise ValueError(f"block ({type(block).__name__}) is not a submodule of model_or_block")
    if isinstance(block, str):
        if block not in modules:
            names = [n for n, _ in find_hamburgers(model_or_block)] or ["head.context"]
            raise ValueError(f"block {block!r} is not a submodule name of the model; e.g. {names}")
        return block, modules[block]
    if block is not None:
        raise TypeError(f"block must be a submodule name, an nn.Module or None, got {type(block).__name__}")
    if isinstance(model_or_block, (Hamburger, HamburgerTokens)):
        return "", model_or_block
    hamburgers = find_hamburgers(model_or_block)
    if len(hamburgers) == 1:
        return hamburgers[0]
    if len(hamburgers) > 1:
        raise ValueError(f"the model has {len(hamburgers)} Hamburger blocks; pass block= one of "
                         f"{[n for n, _ in hamburgers]}")  # fmt: skip
    if "head.context" in modules:
        return "head.context", modules["head.context"]
    return "", model_or_block


def _block_input(model: nn.Module, name: str, block: nn.Module, inputs: Tensor) -> Tensor:
    """The input ``block`` receives when ``model`` runs on ``inputs`` (no gradient, no side effects)."""
    captured: list[Tensor] = []

    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        captured.append(args[0].detach())
        raise _Captured

    handle = block.register_forward_pre_hook(hook)
    try:
        with torch.no_grad(), _untouched(model, inputs.device):
            model(inputs)
    except _Captured:
        pass
    finally:
        handle.remove()
    if not captured:
        raise ValueError(f"block {name!r} was not called by the model's forward")
    return captured[0]


def _unit_vector(size: int, generator: torch.Generator) -> Tensor:
    v = torch.randn(size, generator=generator, dtype=torch.float64)
    return v / v.norm()


def off_token_gradient_share(
    model_or_block: nn.Module,
    inputs: Tensor,
    *,
    num_points: int = 16,
    seed: int = 0,
    block: str | nn.Module | None = None,
) -> float:
    """Share of a context block's input gradient that lies off the token it is taken at.

    Definition: for a block ``f`` mapping ``x`` ``(B, C, *spatial)`` to ``y`` of the same shape, draw a sample
    ``b``, an output position ``p`` and a unit vector ``v`` in ``R^C`` (``num_points`` times, from ``seed``);
    let ``g = d <v, y[b, :, p]> / d x`` (the whole batch, ``(B, C, *spatial)``) and ``g_q`` its ``C`` entries at
    token ``q = (b', p')``. The point's share is ``sum_{q != (b, p)} ||g_q||^2 / ||g||^2``; the result is the mean
    over the points (points with ``g = 0`` are skipped; NaN if all are). 0 means the gradient that reaches the
    block's input carries no information about other tokens: a 1x1 convolution, a one-step Hamburger with a
    per-token (or eval-mode) norm; an attention block, or a Hamburger under BPTT, gives > 0. Tokens of other
    samples count as "off" (BatchNorm in training mixes them).

    Args:
        model_or_block: the context block itself (then ``inputs`` is its input), or a model containing it (then
            ``inputs`` is the model's input, and the block is probed at the input the model gives it).
        inputs: the block's (or the model's) input.
        num_points: how many ``(b, p, v)`` draws to average over.
        seed: seed of those draws (a private generator; the global RNG is left as it was).
        block: in a model, which block: a submodule name or module. Default: the model's only Hamburger, else
            its ``head.context``, else ``model_or_block`` itself.

    The block runs in its current mode (train or eval) on a copy, so nothing of the model changes.
    """
    check_positive_int("num_points", num_points)
    check_int("seed", seed)
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    name, target = _resolve_block(model_or_block, block)
    x = _block_input(model_or_block, name, target, inputs) if target is not model_or_block else inputs.detach()
    if x.dim() < 3:
        raise ValueError(f"the block input must have shape (B, C, *spatial), got {tuple(x.shape)}")
    probe = copy.deepcopy(target)
    generator = torch.Generator().manual_seed(seed)
    shares = []
    with _untouched(probe, x.device), torch.enable_grad():
        x = x.clone().requires_grad_(True)
        y = probe(x)
        if not isinstance(y, Tensor) or y.shape != x.shape:
            raise ValueError(f"the block must map (B, C, *spatial) to the same shape, got {tuple(x.shape)} -> "
                             f"{tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__}")  # fmt: skip
        b_size, channels = x.shape[:2]
        n = math.prod(x.shape[2:])
        flat = y.reshape(b_size, channels, n)
        for _ in range(num_points):
            b = int(torch.randint(b_size, (1,), generator=generator))
            p = int(torch.randint(n, (1,), generator=generator))
            v = _unit_vector(channels, generator).to(device=y.device, dtype=y.dtype)
            (g,) = torch.autograd.grad((flat[b, :, p] * v).sum(), x, retain_graph=True)
            energy = g.detach().double().square().sum(dim=1).reshape(b_size, n)
            total = float(energy.sum())
            if total == 0.0:
                continue
            energy[b, p] = 0.0
            shares.append(float(energy.sum()) / total)
    return sum(shares) / len(shares) if shares else math.nan


def _logits(output: Any) -> Tensor:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping) and isinstance(output.get("out"), Tensor):
        return output["out"]
    raise TypeError(f"the model must return a tensor or a mapping with an 'out' tensor, got {type(output).__name__}")


def receptive_field_share(
    model: nn.Module, images: Tensor, *, radius: int, num_points: int = 16, seed: int = 0
) -> float:
    """Share of a logit's image gradient that lies outside a ``(2 radius + 1)^2`` window around its pixel.

    For ``num_points`` draws (from ``seed``) of a sample ``b``, an output pixel ``p`` and a unit vector ``v`` over
    the classes, ``g = d <v, logits[b, :, p]> / d images`` (the whole batch); the point's share is the part of
    ``||g||^2`` (summed over the colour channels) outside the window of pixels within ``radius`` (Chebyshev
    distance) of ``p`` in sample ``b``, pixels of other samples included. The result is the mean over the points
    (points with ``g = 0`` skipped; NaN if all are). A model whose every output pixel sees at most ``radius``
    pixels around it gives exactly 0: an FCN with BatchNorm in eval mode and a receptive field of that radius;
    a GroupNorm head (its statistics pool the whole map, in train and eval mode), BatchNorm in training (batch
    statistics) or a global context block give > 0 at any radius below the image size.

    The model runs in its current mode; buffers and the global RNG are restored afterwards. ``images`` is
    ``(B, C, H, W)``; logits at another resolution than the images map ``p`` to the nearest image pixel.
    """
    check_int("radius", radius, 0)
    check_positive_int("num_points", num_points)
    check_int("seed", seed)
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a (B, C, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    generator = torch.Generator().manual_seed(seed)
    shares = []
    with _untouched(model, images.device), torch.enable_grad():
        x = images.detach().clone().requires_grad_(True)
        logits = _logits(model(x))
        b_size, classes, h, w = logits.shape
        height, width = x.shape[-2:]
        for _ in range(num_points):
            b = int(torch.randint(b_size, (1,), generator=generator))
            i = int(torch.randint(h, (1,), generator=generator))
            j = int(torch.randint(w, (1,), generator=generator))
            v = _unit_vector(classes, generator).to(device=logits.device, dtype=logits.dtype)
            (g,) = torch.autograd.grad((logits[b, :, i, j] * v).sum(), x, retain_graph=True)
            energy = g.detach().double().square().sum(dim=1)  # (B, H, W)
            total = float(energy.sum())
            if total == 0.0:
                continue
            ci = min(height - 1, max(0, round((i + 0.5) * height / h - 0.5)))
            cj = min(width - 1, max(0, round((j + 0.5) * width / w - 0.5)))
            energy[b, max(0, ci - radius) : ci + radius + 1, max(0, cj - radius) : cj + radius + 1] = 0.0
            shares.append(float(energy.sum()) / total)
    return sum(shares) / len(shares) if shares else math.nan


# ---------------------------------------------------------------------------------------------- gradient norms
def _split_batch(batch: Any) -> tuple[Tensor, Any]:
    if isinstance(batch, Mapping):
        if "image" not in batch or "mask" not in batch:
            raise ValueError(f"a batch mapping needs 'image' and 'mask' entries, got keys {sorted(batch)}")
        return batch["image"], batch["mask"]
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(f"batch must be (inputs, targets) or a mapping with 'image' and 'mask', got {type(batch).__name__}")


def _tap(x: Tensor) -> Tensor:
    """A new node of the graph equal to ``x``, to take the gradient at (a leaf when ``x`` has no gradient)."""
    return x.view_as(x) if x.requires_grad else x.detach().requires_grad_(True)


def _norm(grads: list[Tensor | None], like: list[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, like, strict=True)]


def block_gradient_norms(
    model: nn.Module, batch: Any, loss_fn: Callable[[Tensor, Any], Tensor]
) -> dict[str, dict[str, float | None]]:
    """Per Hamburger, how the loss gradient reaches the block: through the shortcut, through the branch, the gates.

    Runs ``loss = loss_fn(logits, targets)`` once, where ``batch`` is ``(inputs, targets)`` or the recipe's
    mapping with ``"image"`` and ``"mask"``, and ``logits`` the model's output (its ``"out"`` entry for a
    mapping). For each block with input ``x`` and ``out = out_act(g_x x + branch(x))``, returns a dict of
    ``"input"``: ``||dL/dx||``; ``"branch"``: the norm of the part of it that flows through the branch (the
    breads and the ham); ``"shortcut"``: the part through ``g_x x`` (the difference of the two, to float
    rounding); ``"gate"``: ``|dL/dg_ham|`` and ``"shortcut_gate"``: ``|dL/dg_x|`` (None without the gate); and
    ``"loss"``. A block called several times sums its calls' gradients per call into one norm.

    Gradients come from :func:`torch.autograd.grad`: no ``.grad`` of the model is written; the model runs in its
    current mode and its buffers and the global RNG are restored afterwards.
    """
    inputs, targets = _split_batch(batch)
    blocks = _require_hamburgers(model)
    owners = {id(m.block): m for _, m in model.named_modules() if isinstance(m, HamburgerTokens)}
    taps: dict[str, dict[str, list[Tensor]]] = {name: {"input": [], "branch": []} for name, _ in blocks}

    def input_hook(name: str) -> Callable[..., tuple[Any, ...]]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            tapped = _tap(args[0])
            taps[name]["input"].append(tapped)
            return (tapped, *args[1:])

        return hook

    def branch_tap(name: str) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
        def wrap(original: Callable[..., Tensor]) -> Callable[..., Tensor]:
            def branch(x: Tensor, mask: Tensor | None = None) -> Tensor:
                tapped = _tap(x)
                taps[name]["branch"].append(tapped)
                return original(tapped, mask)

            return branch

        return wrap

    with contextlib.ExitStack() as stack:
        stack.enter_context(_untouched(model, inputs.device))
        stack.enter_context(torch.enable_grad())
        for name, block in blocks:
            caller = owners.get(id(block), block)
            stack.callback(caller.register_forward_pre_hook(input_hook(name)).remove)
            stack.enter_context(_patched_branch(block, branch_tap(name)))
        loss = loss_fn(_logits(model(inputs)), targets)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError(f"loss_fn must return a scalar tensor, got {getattr(loss, 'shape', type(loss))}")
        gates = {
            (name, kind): param
            for name, block in blocks
            for kind, param in (("gate", block.coef_ham), ("shortcut_gate", block.coef_shortcut))
            if param is not None and param.requires_grad
        }
        flat = [t for name, _ in blocks for kind in ("input", "branch") for t in taps[name][kind]]
        wrt = flat + list(gates.values())
        grads = _norm(list(torch.autograd.grad(loss, wrt, allow_unused=True)), wrt) if wrt else []
    by_tensor = {id(t): g for t, g in zip(wrt, grads, strict=True)}
    result: dict[str, dict[str, float | None]] = {}
    for name, _ in blocks:
        ins, brs = taps[name]["input"], taps[name]["branch"]
        g_in = [by_tensor[id(t)] for t in ins]
        g_br = [by_tensor[id(t)] for t in brs]
        g_short = []
        for gi, gb in zip(g_in, g_br, strict=False):
            gi = gi if gi.shape == gb.shape else gi.transpose(1, 2)  # HamburgerTokens: (B, N, C) in, (B, C, N) branch
            g_short.append(gi - gb)
        sq = lambda gs: math.sqrt(sum(float(g.double().square().sum()) for g in gs))  # noqa: E731
        entry: dict[str, float | None] = {"input": sq(g_in), "branch": sq(g_br), "shortcut": sq(g_short)}
        for kind in ("gate", "shortcut_gate"):
            param = gates.get((name, kind))
            entry[kind] = None if param is None else float(by_tensor[id(param)].abs().sum())
        entry["loss"] = float(loss.detach())
        result[name] = entry
    return result
