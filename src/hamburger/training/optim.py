"""Optimisers and learning-rate schedules of the recipes.

Two recipes are covered:

* HamNet (paper): SGD, momentum 0.9, weight decay on conv/linear weights only (norm weights, biases and the
  Hamburger gates get none), poly schedule ``lr = base * (1 - t/T) ** 0.9``.
* Light-Ham / SegNeXt: AdamW, weight decay 0.01 without decay on norms, head LR multiplier 10, linear warmup
  (1500 iterations, start ratio 1e-6) then poly with power 1.0.

Which parameters get no weight decay (:func:`param_groups`): every parameter with ``ndim <= 1`` (norm weights,
biases, scalar gates) and every parameter that a module declares in a ``no_weight_decay()`` method, the timm
contract: the method returns parameter names relative to that module (e.g. ``{"coef_ham", "coef_shortcut"}``
for :class:`~hamburger.blocks.Hamburger`, ``{"pos_embed"}`` for a timm ViT), and :func:`no_weight_decay_names`
collects them over all submodules with their prefixes. Names may be ``fnmatch`` patterns (``"rel_pos*"``).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import cast

import torch
from torch import nn

__all__ = ["WarmupPoly", "build_optimizer", "build_scheduler", "no_weight_decay_names", "param_groups"]

OPTIMIZERS = ("sgd", "adamw")


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Full names (or ``fnmatch`` patterns) of the parameters that the modules of ``model`` declare in
    ``no_weight_decay()``; each module's names are prefixed with its path in ``model``."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        declare = getattr(module, "no_weight_decay", None)
        if not callable(declare):
            continue
        declared = declare()
        if isinstance(declared, str) or not isinstance(declared, Collection):
            raise TypeError(
                f"{type(module).__name__}.no_weight_decay() must return a collection of parameter names, "
                f"got {declared!r}"
            )
        names.update(f"{prefix}.{name}" if prefix else str(name) for name in declared)
    return names


def _matches(name: str, patterns: Collection[str]) -> bool:
    return name in patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns if any(c in p for c in "*?["))


def param_groups(
    model: nn.Module,
    *,
    weight_decay: float,
    head_lr_mult: float = 1.0,
    backbone_prefixes: Sequence[str] = ("backbone.",),
    no_weight_decay: Iterable[str] = (),
) -> list[dict]:
    """Split trainable parameters into (backbone | head) x (decay | no decay) groups.

    Parameters whose name starts with one of ``backbone_prefixes`` are backbone parameters; all others are
    head parameters and get ``lr_mult = head_lr_mult``. Parameters with ``ndim <= 1`` (norm weights, biases),
    those declared by a module's ``no_weight_decay()`` (see :func:`no_weight_decay_names`) and those named in
    ``no_weight_decay`` (full names or patterns) get no weight decay. Each group carries ``lr_mult`` for the
    scheduler and ``names`` (the parameter names, removed by :func:`build_optimizer`).
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if head_lr_mult <= 0:
        raise ValueError(f"head_lr_mult must be > 0, got {head_lr_mult}")
    exempt = no_weight_decay_names(model) | set(no_weight_decay)
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    names: dict[tuple[bool, bool], list[str]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = (name.startswith(tuple(backbone_prefixes)), param.ndim <= 1 or _matches(name, exempt))
        buckets.setdefault(key, []).append(param)
        names.setdefault(key, []).append(name)
    groups = []
    for (is_backbone, no_decay), params in sorted(buckets.items()):
        groups.append(
            {
                "params": params,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_mult": 1.0 if is_backbone else head_lr_mult,
                "names": names[(is_backbone, no_decay)],
            }
        )
    return groups


def build_optimizer(
    groups: Iterable[dict],
    name: str,
    *,
    lr: float,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """Create ``"sgd"`` (momentum) or ``"adamw"``; per-group LR is ``lr * group["lr_mult"]``."""
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    groups = [dict(g, lr=lr * g.get("lr_mult", 1.0)) for g in groups]
    for g in groups:
        g.pop("names", None)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=cast(tuple[float, float], tuple(betas)))
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


class WarmupPoly:
    """LR factor at step ``t``: linear warmup then polynomial decay to ``min_ratio``.

    ``f(t) = warmup_ratio + (1 - warmup_ratio) * t / warmup_steps`` for ``t < warmup_steps``, then
    ``f(t) = (1 - min_ratio) * (1 - t / total_steps) ** power + min_ratio`` (mmseg's ``PolyLR`` with ``min_lr``).
    A plain object (not a lambda) so that ``LambdaLR.state_dict`` saves and restores it.
    """

    def __init__(
        self,
        total_steps: int,
        *,
        power: float = 0.9,
        warmup_steps: int = 0,
        warmup_ratio: float = 1e-6,
        min_ratio: float = 0.0,
    ) -> None:
        if total_steps <= 0:
            raise ValueError(f"total_steps must be > 0, got {total_steps}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.total_steps = int(total_steps)
        self.power = float(power)
        self.warmup_steps = int(warmup_steps)
        self.warmup_ratio = float(warmup_ratio)
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        poly = (1.0 - self.min_ratio) * max(0.0, 1.0 - step / self.total_steps) ** self.power + self.min_ratio
        if step < self.warmup_steps:
            # mmcv's linear warmup: k = (1 - t/W) * (1 - ratio); lr = regular_lr * (1 - k)
            return poly * (1.0 - (1.0 - step / self.warmup_steps) * (1.0 - self.warmup_ratio))
        return poly

    def __repr__(self) -> str:
        return (
            f"WarmupPoly(total_steps={self.total_steps}, power={self.power}, warmup_steps={self.warmup_steps}, "
            f"warmup_ratio={self.warmup_ratio}, min_ratio={self.min_ratio})"
        )


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    power: float = 0.9,
    warmup_steps: int = 0,
    warmup_ratio: float = 1e-6,
    min_lr: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step ``LambdaLR`` with one :class:`WarmupPoly` per group; ``min_lr`` is absolute (mmseg ``PolyLR``),
    so each group decays from its own base LR to ``min_lr``."""
    factors: list[Callable[[int], float]] = []
    for group in optimizer.param_groups:
        base = group.get("initial_lr", group["lr"])
        min_ratio = min_lr / base if base > 0 else 0.0
        if not math.isfinite(min_ratio) or not 0.0 <= min_ratio < 1.0:
            raise ValueError(f"min_lr must be in [0, lr) for every parameter group, got {min_lr} with lr {base}")
        factors.append(
            WarmupPoly(
                total_steps, power=power, warmup_steps=warmup_steps, warmup_ratio=warmup_ratio, min_ratio=min_ratio
            )
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
