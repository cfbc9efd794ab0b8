"""Stateless kernels of the three hams: one home for the math.

Every function works on the matrix form of the paper (Sec. 2): ``x`` is the data matrix
``X`` of shape ``(b, d, n)`` (``b`` = batch x groups, ``d`` = feature dimension, ``n`` =
number of tokens), ``bases`` is the dictionary ``D`` of shape ``(b, d, r)`` and ``coef``
holds the codes transposed, ``C^T``, of shape ``(b, n, r)``. The reconstruction is
``D C = bases @ coef^T``. Update orders, normalisations and epsilons are those of the
official segmentation code (Enjoy-Hamburger ``seg/HamNet/hamburger/ham.py``), so that the
same initial bases give the same output up to float rounding.

When autograd is off (the K no-gradient steps of the one-step gradient), the updates
run in place on freshly allocated temporaries. The arithmetic order is the official one,
so the in-place and out-of-place paths give bit-identical results.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _xt_bases(x: Tensor, bases: Tensor) -> Tensor:
    # (b, d, n)^T @ (b, d, r) -> (b, n, r)
    return torch.bmm(x.transpose(1, 2), bases)


def _mu(value: Tensor, numerator: Tensor, denominator: Tensor, eps: float | Tensor) -> Tensor:
    """Multiplicative update ``value * numerator / (denominator + eps)`` (official order)."""
    if torch.is_grad_enabled():
        return value * numerator / (denominator + eps)
    return numerator.mul_(value).div_(denominator.add_(eps))


def softmax_coef(x: Tensor, bases: Tensor, inv_temp: float) -> Tensor:
    """Initial codes ``softmax(inv_temp * X^T D)`` over the rank dimension, ``(b, n, r)``."""
    return F.softmax(inv_temp * _xt_bases(x, bases), dim=-1)


def nmf_coef_step(
    x: Tensor, bases: Tensor, coef: Tensor, eps: float | Tensor = 1e-6, *, numerator: Tensor | None = None
) -> Tensor:
    """Lee-Seung update of the codes: ``C <- C * (D^T X) / (D^T D C + eps)``.

    ``numerator`` may pass in ``X^T D`` when it was already computed for these bases (it is then
    consumed: overwritten in place when autograd is off). ``eps`` may be a ``(b, 1, 1)`` tensor.
    """
    numerator = _xt_bases(x, bases) if numerator is None else numerator  # (b, n, r)
    denominator = torch.bmm(coef, torch.bmm(bases.transpose(1, 2), bases))  # (b, n, r)
    return _mu(coef, numerator, denominator, eps)


def nmf_bases_step(
    x: Tensor, bases: Tensor, coef: Tensor, eps: float | Tensor = 1e-6, *, numerator: Tensor | None = None
) -> Tensor:
    """Lee-Seung update of the dictionary: ``D <- D * (X C^T) / (D C C^T + eps)``.

    ``numerator`` may pass in ``X C^T`` (consumed like ``nmf_coef_step``'s).
    """
    numerator = torch.bmm(x, coef) if numerator is None else numerator  # (b, d, n) @ (b, n, r) -> (b, d, r)
    denominator = torch.bmm(bases, torch.bmm(coef.transpose(1, 2), coef))  # (b, d, r)
    return _mu(bases, numerator, denominator, eps)


def nmf_step(
    x: Tensor, bases: Tensor, coef: Tensor, eps: float = 1e-6, *, numerator: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """One NMF iteration: codes first, then the dictionary with the new codes."""
    coef = nmf_coef_step(x, bases, coef, eps, numerator=numerator)
    bases = nmf_bases_step(x, bases, coef, eps)
    return bases, coef


def power_of_two_scale(magnitude: Tensor) -> Tensor:
    """``2^ceil(log2 m)`` elementwise: the power of two at or above ``m > 0``.

    The exponent is clamped so that the scale and its inverse are normal numbers of the dtype (``m = 0``
    gets the smallest, harmless since ``0 / s = 0``). Dividing or multiplying by it is exact in floating
    point (barring underflow to subnormals), which is what lets the solvers work on ``X / s`` and reproduce
    the unscaled arithmetic bit for bit. Four elementwise ops: it runs on small tensors in the inner loop.
    """
    limit = float(math.floor(math.log2(torch.finfo(magnitude.dtype).max)) - 1)  # 126 for float32
    return torch.exp2(torch.log2(magnitude).ceil_().clamp_(-limit, limit))


def column_norm(v: Tensor) -> Tensor:
    """L2 norms of the columns (over dim 1), ``(b, 1, m)``, for any finite scale of ``v``.

    ``v.norm(dim=1)`` squares the entries and overflows from about 1e19 in float32. Here each column is
    first divided by the power of two at or above its largest entry (exact), so the result equals
    ``v.norm(dim=1, keepdim=True)`` bit for bit wherever that does not overflow. For small tensors (bases).
    """
    with torch.no_grad():
        scale = power_of_two_scale(v.abs().amax(dim=1, keepdim=True))  # (b, 1, m)
    return torch.linalg.vector_norm(v / scale, dim=1, keepdim=True) * scale


def normalize(v: Tensor, eps: float = 1e-12) -> Tensor:
    """``F.normalize(v, dim=1, eps=eps)`` with the overflow-safe :func:`column_norm`."""
    return v / column_norm(v).clamp_min(eps)


def normalize_tokens(x: Tensor) -> tuple[Tensor, Tensor]:
    """Unit tokens ``X / max(||X||, 1e-12)`` and the token norms ``||X||``: ``(b, d, n)`` and ``(b, 1, n)``.

    The same values as ``F.normalize(x, dim=1)`` and ``x.norm(dim=1, keepdim=True)`` wherever the squares
    do not overflow, for any finite scale: each matrix is divided by the power of two at or above its
    largest magnitude first (exact), at the cost of one elementwise pass.
    """
    with torch.no_grad():
        magnitude = torch.maximum(x.amax(dim=(1, 2), keepdim=True), -x.amin(dim=(1, 2), keepdim=True))
        inv_scale = 1.0 / power_of_two_scale(magnitude)  # (b, 1, 1)
        floor = (1e-12 * inv_scale).clamp_min(torch.finfo(x.dtype).tiny)  # F.normalize's eps, scaled
    scaled = x * inv_scale
    norm = torch.linalg.vector_norm(scaled, dim=1, keepdim=True)  # ||X|| / s
    if torch.is_grad_enabled():
        return scaled / norm.clamp_min(floor), norm / inv_scale
    return scaled.div_(norm.clamp_min(floor)), norm.div_(inv_scale)


def _assign(std_x: Tensor, std_bases: Tensor, inv_temp: float, eps: float, weight: Tensor | None = None) -> Tensor:
    """Soft assignment ``softmax(inv_temp * cos)`` over r, then normalised over n.

    ``weight`` ``(b, n, 1)`` (1 real, 0 padding) zeroes the padded tokens' codes before the normalisation.
    """
    coef = F.softmax(inv_temp * _xt_bases(std_x, std_bases), dim=-1)
    if weight is not None:
        coef = coef * weight
    denominator = coef.sum(dim=1, keepdim=True)
    if torch.is_grad_enabled():
        return coef / (eps + denominator)
    return coef.div_(denominator.add_(eps))


def vq_step(
    x: Tensor,
    bases: Tensor,
    inv_temp: float = 100.0,
    eps: float = 1e-6,
    *,
    std_x: Tensor | None = None,
    weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One soft k-means iteration: cosine assignment, then ``D <- X C^T diag(C 1)^-1``.

    ``std_x = normalize(x, dim=1)`` may be passed in when it is reused across steps; ``weight`` ``(b, n, 1)``
    leaves padded tokens (weight 0) out of the means.
    """
    std_x = normalize_tokens(x)[0] if std_x is None else std_x
    coef = _assign(std_x, normalize(bases, eps), inv_temp, eps, weight)
    return torch.bmm(x, coef), coef


def vq_coef(
    x: Tensor, bases: Tensor, inv_temp: float = 100.0, eps: float = 1e-6, *, norm: Tensor | None = None
) -> Tensor:
    """VQ's differentiable code step: ``softmax(inv_temp * cos(X, D))`` over r.

    As in the official code the column norms of ``x`` are treated as constants; ``norm``
    (``(b, 1, n)``, e.g. from :func:`normalize_tokens`) may pass them in.
    """
    if norm is None:
        with torch.no_grad():
            norm = normalize_tokens(x)[1]
    std_x = x / (eps + norm.detach())
    return F.softmax(inv_temp * _xt_bases(std_x, normalize(bases, eps)), dim=-1)


def cd_step(
    x: Tensor,
    bases: Tensor,
    inv_temp: float = 100.0,
    eps: float = 1e-6,
    *,
    std_x: Tensor | None = None,
    weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One concept-decomposition (spherical k-means) iteration; bases stay unit-norm.

    ``std_x = normalize(x, dim=1)`` may be passed in when it is reused across steps; ``weight`` ``(b, n, 1)``
    leaves padded tokens (weight 0) out of the means.
    """
    std_x = normalize_tokens(x)[0] if std_x is None else std_x
    coef = _assign(std_x, bases, inv_temp, eps, weight)
    return normalize(torch.bmm(x, coef), eps), coef


def ridge_coef(x: Tensor, bases: Tensor, ridge: float = 0.1, *, method: str = "solve", iters: int = 30) -> Tensor:
    """CD's code step, the ridge least-squares solution ``C^T = X^T D (D^T D + ridge I)^-1``.

    ``method="solve"`` uses ``torch.linalg.solve`` on the r x r system (no explicit inverse).
    ``method="newton_schulz"`` inverts the small symmetric positive definite system with a
    fixed number of Newton-Schulz iterations ``Y <- Y (2I - A Y)``: matmuls only, so it exports
    to ONNX and runs in any dtype. With the start ``Y_0 = I / ||A||_inf`` the error
    ``I - A Y_k`` has eigenvalues ``(1 - lambda / ||A||_inf)^(2^k)``, so it converges for any SPD
    ``A``; 30 iterations reach the accuracy of a float32 solve while ``||A||_inf / lambda_min``
    stays below about 5e7. For unit-norm bases that ratio is at most ``1 + r / ridge``.
    """
    gram = torch.bmm(bases.transpose(1, 2), bases)  # (b, r, r)
    eye = torch.eye(gram.shape[-1], device=gram.device, dtype=gram.dtype)
    system = gram + ridge * eye
    rhs = _xt_bases(x, bases)  # (b, n, r)
    if method == "solve":
        # C^T A = X^T D with A symmetric  <=>  A C = D^T X
        return torch.linalg.solve(system, rhs.transpose(1, 2)).transpose(1, 2)
    if method == "newton_schulz":
        return torch.bmm(rhs, spd_inverse(system, iters=iters))
    raise ValueError(f"method must be 'solve' or 'newton_schulz', got {method!r}")


def spd_inverse(system: Tensor, iters: int = 30) -> Tensor:
    """Inverse of a batch of symmetric positive definite matrices by Newton-Schulz iteration."""
    # Y_0 = I / ||A||_inf: ||A||_inf >= lambda_max, so every eigenvalue of I - A Y_0 lies in [0, 1)
    # (the start A / (||A||_1 ||A||_inf) squares the condition number and stalls for large r / ridge)
    norm_inf = system.abs().sum(dim=-1).amax(dim=-1, keepdim=True).unsqueeze(-1)  # (b, 1, 1)
    eye = torch.eye(system.shape[-1], device=system.device, dtype=system.dtype)
    inverse = eye / norm_inf
    two_eye = 2 * eye
    for _ in range(iters):
        inverse = torch.bmm(inverse, two_eye - torch.bmm(system, inverse))
    return inverse
