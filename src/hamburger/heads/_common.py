"""What the heads share: building their context block, and helpers (channel lists, feature selection, init).

A head's global-context block is chosen by ``context``:

* ``"hamburger"``: a :class:`~hamburger.blocks.Hamburger` built from the head's
  :class:`~hamburger.blocks.HamOptions` (the block's norm is the head's unless the options set their own);
* any other name registered in :data:`hamburger.blocks.CONTEXT_BLOCKS` (``"none"``, and the
  attention baselines): built with ``create_context_block(name, channels)``, its own defaults and
  the head's ``norm_layer`` (when it takes one), so baseline heads differ from the Hamburger head
  only in this block;
* ``"identity_ham"``: the same Hamburger with ``ham="identity"`` (no decomposition), so the ablation keeps
  every other option of the head's block;
* a callable ``channels -> nn.Module`` (for a block configured by the caller).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

from torch import Tensor, nn

from ..blocks import CONTEXT_BLOCKS, Hamburger, HamOptions, create_context_block
from ..blocks.options import INHERIT
from ..layers import LayerType

ContextType = str | Callable[[int], nn.Module]


def build_context(
    context: ContextType,
    channels: int,
    *,
    ham: HamOptions,
    norm_layer: LayerType,
) -> nn.Module:
    """Build the context block of a head working at ``channels`` channels.

    For ``context="hamburger"`` the block gets the options ``ham`` unchanged; a block norm left at
    ``"inherit"`` becomes the head's ``norm_layer``.
    """
    if context in ("hamburger", "identity_ham"):
        if context == "identity_ham":
            ham = ham.replace(ham="identity")
        if ham.norm_layer == INHERIT:
            ham = ham.replace(norm_layer=norm_layer)
        return Hamburger(channels, ham=ham)
    if isinstance(context, str):
        return create_context_block(context, channels, **_norm_kwarg(context, norm_layer))
    if callable(context):
        block = context(channels)
        if not isinstance(block, nn.Module):
            raise TypeError(f"context callable must return an nn.Module, got {type(block).__name__}")
        return block
    raise TypeError(f"context must be a block name or a callable channels -> nn.Module, got {type(context).__name__}")


def _norm_kwarg(name: str, norm_layer: LayerType) -> dict:
    """``{"norm_layer": ...}`` when the named block takes one, so baselines use the head's norm."""
    factory = CONTEXT_BLOCKS.get(name)
    try:
        params = inspect.signature(factory).parameters.values() if factory is not None else ()
    except (TypeError, ValueError):
        return {}
    if any(p.name == "norm_layer" for p in params):
        return {"norm_layer": norm_layer}
    return {}


def as_channel_list(in_channels: int | Sequence[int]) -> list[int]:
    """``in_channels`` as a list of positive ints (one entry per backbone feature)."""
    values = [in_channels] if isinstance(in_channels, int) else list(in_channels)
    if not values or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in values):
        raise ValueError(f"in_channels must be a positive int or a non-empty sequence of them, got {in_channels!r}")
    return values


def check_index(name: str, index: int, num_features: int) -> int:
    """Normalise a (possibly negative) feature index, raising ``ValueError`` when out of range."""
    if isinstance(index, bool) or not isinstance(index, int) or not -num_features <= index < num_features:
        raise ValueError(f"{name} must be an int index into {num_features} feature maps, got {index!r}")
    return index % num_features


def select_features(
    features: Tensor | Sequence[Tensor], indices: Sequence[int], channels: Sequence[int]
) -> list[Tensor]:
    """Pick ``features[i]`` for ``i`` in ``indices`` and check their channel counts."""
    if isinstance(features, Tensor):
        features = [features]
    if len(features) != len(channels):
        raise ValueError(f"expected {len(channels)} feature maps with channels {list(channels)}, got {len(features)}")
    picked = []
    for i in indices:
        f = features[i]
        if f.dim() != 4 or f.shape[1] != channels[i]:
            raise ValueError(f"feature map {i} must have shape (B, {channels[i]}, H, W), got {tuple(f.shape)}")
        picked.append(f)
    return picked


def init_head_weights(module: nn.Module, classifier: nn.Conv2d) -> None:
    """mmseg-style init: convs Kaiming-normal (fan_out, ReLU), norms (1, 0), classifier N(0, 0.01)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            if m.bias is not None:  # affine norms have both
                nn.init.zeros_(m.bias)
    nn.init.normal_(classifier.weight, std=0.01)
    if classifier.bias is not None:
        nn.init.zeros_(classifier.bias)
