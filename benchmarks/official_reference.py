"""A straightforward re-statement of the official Hamburger solvers, the speed baseline.

Written from the update formulas (paper Algorithms 1-2, and the behaviour documented in
/work/shared/reference/paper-facts.md sec. 1.3) in the style of the official segmentation code
(Enjoy-Hamburger ``seg/HamNet/hamburger/ham.py``): one ``torch.bmm`` per product, a fresh tensor
for every update, the initial codes ``softmax(inv_t X^T D)`` computed for every ham (VQ and CD
then ignore them), the K steps under ``no_grad``, one differentiable code step, and CD's ridge
system inverted with ``torch.inverse``. It is not part of the library; ``solvers_vs_official.py``
times our solvers against it and the test ``tests/bench/test_official_reference.py`` checks that
both give the same output from the same initial bases.

Shapes: ``x`` is ``(B, C, H, W)``, the matrix ``X`` is ``(B, C, N)``, ``bases`` ``(B, C, r)``,
``coef`` is ``C^T`` ``(B, N, r)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _OfficialBase(nn.Module):
    inv_t = 1.0

    def __init__(self, rank: int = 64, steps: int = 6, eps: float = 1e-6) -> None:
        super().__init__()
        self.rank, self.steps, self.eps = rank, steps, eps

    def rand_bases(self, b: int, d: int, device, dtype) -> Tensor:
        raise NotImplementedError

    def local_step(self, x: Tensor, bases: Tensor, coef: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def compute_coef(self, x: Tensor, bases: Tensor, coef: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def local_inference(self, x: Tensor, bases: Tensor) -> tuple[Tensor, Tensor]:
        coef = torch.bmm(x.transpose(1, 2), bases)
        coef = F.softmax(self.inv_t * coef, dim=-1)
        for _ in range(self.steps):
            bases, coef = self.local_step(x, bases, coef)
        return bases, coef

    def forward(self, x: Tensor, bases: Tensor | None = None) -> Tensor:
        b, c, h, w = x.shape
        x = x.view(b, c, h * w)
        if bases is None:
            bases = self.rand_bases(b, c, x.device, x.dtype)
        bases, coef = self.local_inference(x, bases)
        coef = self.compute_coef(x, bases, coef)
        x = torch.bmm(bases, coef.transpose(1, 2))
        return x.view(b, c, h, w)


class OfficialNMF(_OfficialBase):
    """Lee-Seung multiplicative updates, codes first; U[0, 1) bases with unit columns."""

    inv_t = 1.0

    def rand_bases(self, b, d, device, dtype):
        return F.normalize(torch.rand((b, d, self.rank), device=device, dtype=dtype), dim=1)

    def local_step(self, x, bases, coef):
        numerator = torch.bmm(x.transpose(1, 2), bases)  # (B, N, r)
        denominator = coef.bmm(bases.transpose(1, 2).bmm(bases))
        coef = coef * numerator / (denominator + self.eps)
        numerator = torch.bmm(x, coef)  # (B, C, r)
        denominator = bases.bmm(coef.transpose(1, 2).bmm(coef))
        bases = bases * numerator / (denominator + self.eps)
        return bases, coef

    def compute_coef(self, x, bases, coef):
        numerator = torch.bmm(x.transpose(1, 2), bases)
        denominator = coef.bmm(bases.transpose(1, 2).bmm(bases))
        return coef * numerator / (denominator + self.eps)


class OfficialVQ(_OfficialBase):
    """Soft k-means with cosine similarity at inverse temperature ``inv_t``."""

    def __init__(self, rank: int = 64, steps: int = 6, inv_t: float = 100.0, eps: float = 1e-6) -> None:
        super().__init__(rank, steps, eps)
        self.inv_t = inv_t

    def rand_bases(self, b, d, device, dtype):
        return F.normalize(torch.randn((b, d, self.rank), device=device, dtype=dtype), dim=1)

    def local_step(self, x, bases, _):
        std_x = F.normalize(x, dim=1)
        std_bases = F.normalize(bases, dim=1, eps=self.eps)
        coef = torch.bmm(std_x.transpose(1, 2), std_bases)
        coef = F.softmax(self.inv_t * coef, dim=-1)
        coef = coef / (self.eps + coef.sum(dim=1, keepdim=True))
        bases = torch.bmm(x, coef)
        return bases, coef

    def compute_coef(self, x, bases, _):
        with torch.no_grad():
            x_norm = x.norm(dim=1, keepdim=True)
        std_x = x / (self.eps + x_norm)
        std_bases = F.normalize(bases, dim=1, eps=self.eps)
        coef = torch.bmm(std_x.transpose(1, 2), std_bases)
        return F.softmax(self.inv_t * coef, dim=-1)


class OfficialCD(OfficialVQ):
    """Spherical k-means concepts, then ridge codes ``X^T D (D^T D + beta I)^-1``."""

    def __init__(self, rank: int = 64, steps: int = 6, inv_t: float = 100.0, beta: float = 0.1, eps: float = 1e-6):
        super().__init__(rank, steps, inv_t, eps)
        self.beta = beta

    def local_step(self, x, bases, _):
        std_x = F.normalize(x, dim=1)
        coef = torch.bmm(std_x.transpose(1, 2), bases)
        coef = F.softmax(self.inv_t * coef, dim=-1)
        coef = coef / (self.eps + coef.sum(dim=1, keepdim=True))
        bases = torch.bmm(x, coef)
        bases = F.normalize(bases, dim=1, eps=self.eps)
        return bases, coef

    def compute_coef(self, x, bases, _):
        xtd = torch.bmm(x.transpose(1, 2), bases)  # (B, N, r)
        dtd = torch.bmm(bases.transpose(1, 2), bases)  # (B, r, r)
        eye = torch.eye(self.rank, device=x.device, dtype=x.dtype)
        return torch.bmm(xtd, torch.inverse(dtd + self.beta * eye))


OFFICIAL = {"nmf": OfficialNMF, "vq": OfficialVQ, "cd": OfficialCD}
