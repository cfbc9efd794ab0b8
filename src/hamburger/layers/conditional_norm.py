"""Class-conditional batch normalisation: BatchNorm without affine, then a per-class gain and bias.

De Vries et al. 2017 / Dumoulin et al. 2017 (conditional instance norm); used in the SAGAN / BigGAN / HamGAN
generators (TF-GAN ``tfgan.tpu.batch_norm(..., conditional_class_labels=...)``: one ``gamma`` and ``beta`` per
class, initialised to 1 and 0).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from ..utils import check_float, check_positive_int

_BATCH_NORMS = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def is_conditional(module: nn.Module) -> bool:
    """Whether ``module`` takes a conditioning tensor, ``module(x, cond)`` (a ``conditional = True`` attribute)."""
    return bool(getattr(module, "conditional", False))


class ConditionalBatchNorm(nn.Module):
    """``y = gamma[c] * BN(x) + beta[c]``: BatchNorm with no affine of its own and per-class ``gamma``, ``beta``.

    ``gamma`` (``gain``) and ``beta`` (``bias``) are embedding tables of shape ``(num_classes, C)``, initialised to
    1 and 0, so at init the layer is a plain BatchNorm. The conditioning ``cond`` is either class indices
    ``(B,)`` (int64, a table lookup) or class weights ``(B, num_classes)`` (float, e.g. one-hot or soft labels:
    ``gamma = cond @ gain``).

    Args:
        num_features: ``C``.
        num_classes: number of classes (rows of the tables).
        spatial_dims: 1, 2 or 3 (the BatchNorm's dimension).
        eps, momentum: of the BatchNorm.

    Shape:
        ``x``: ``(B, C, *spatial)``; ``cond``: ``(B,)`` or ``(B, num_classes)``; output like ``x``.
    """

    conditional: ClassVar[bool] = True

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        *,
        spatial_dims: int = 2,
        eps: float = 1e-5,
        momentum: float = 0.1,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.num_features = check_positive_int("num_features", num_features)
        self.num_classes = check_positive_int("num_classes", num_classes)
        if spatial_dims not in _BATCH_NORMS:
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
        eps = check_float("eps", eps, low=0, low_open=True)
        momentum = check_float("momentum", momentum, low=0, high=1)
        dd = {"device": device, "dtype": dtype}
        self.norm = _BATCH_NORMS[spatial_dims](num_features, eps=eps, momentum=momentum, affine=False, **dd)
        self.gain = nn.Embedding(num_classes, num_features, **dd)
        self.bias = nn.Embedding(num_classes, num_features, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Gains 1 and biases 0 for every class (the layer starts as a plain BatchNorm)."""
        self.norm.reset_running_stats()
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def _affine(self, table: nn.Embedding, cond: Tensor) -> Tensor:
        if cond.is_floating_point():
            return cond.to(table.weight.dtype) @ table.weight
        return table(cond)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        if not isinstance(cond, Tensor):
            raise TypeError(f"cond must be a torch.Tensor of class indices (B,) or weights (B, K), got {cond!r}")
        b = x.shape[0]
        if cond.is_floating_point():
            if tuple(cond.shape) != (b, self.num_classes):
                raise ValueError(
                    f"float cond must have shape (B, num_classes) = {(b, self.num_classes)}, got {tuple(cond.shape)}"
                )
        elif cond.dtype in (torch.int64, torch.int32):
            if tuple(cond.shape) != (b,):
                raise ValueError(f"cond must have shape (B,) = ({b},) for x of shape {tuple(x.shape)}, "
                                 f"got {tuple(cond.shape)}")  # fmt: skip
        else:
            raise TypeError(f"cond must be int64 class indices or float class weights, got dtype {cond.dtype}")
        shape = (b, self.num_features) + (1,) * (x.dim() - 2)
        gain = self._affine(self.gain, cond).reshape(shape)
        bias = self._affine(self.bias, cond).reshape(shape)
        return self.norm(x) * gain + bias

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_classes={self.num_classes}"
