"""Expectation-maximisation attention (EMANet): attention over ``k`` bases found by EM.

Paper: Li et al., "Expectation-Maximization Attention Networks for Semantic Segmentation",
ICCV 2019, Sec. 3.2-3.3 (E-step, M-step, moving-average update of the initial bases).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import LayerType, get_act_layer, get_norm_layer
from ..solvers.base import average_across_ranks
from ..utils import check_float, check_positive_int
from ._context import check_feature_map


class EMAttention2d(nn.Module):
    """EM attention unit: ``Y = act(X + norm(W_o relu(mu Z^T)))`` with bases ``mu`` from EM.

    ``X' = W_i X`` (1x1 conv with bias) is a ``(C, n)`` matrix. Starting from the buffer
    ``mu_0`` (``C x k``, unit columns), each of the ``stages`` EM iterations runs an E-step
    ``Z = softmax_k(X'^T mu)`` (``n x k``) and an M-step ``mu = normalise_C(X' Z diag(1^T Z)^-1)``.
    The iterations run without gradient; a final differentiable E-step gives ``Z`` and the
    reconstruction ``mu Z^T`` carries gradient to ``W_i`` (the one-step gradient of Hamburger;
    the original stops gradients at ``W_i``). In training the buffer moves towards the batch
    mean of the final bases, ``mu_0 <- normalise((1 - m) mu_0 + m mean_B(mu))``, with the batch mean
    averaged over the DDP ranks (an all-reduce, as the solvers' online dictionary), so every rank keeps
    the same buffer; in eval it is fixed, so the block is deterministic.

    Args:
        channels: ``C``, input and output channels.
        bases: ``k``, number of bases (64 in the paper).
        stages: EM iterations ``T`` (3 in the paper).
        momentum: ``m``, the fraction of the new value in the moving average of ``mu_0`` (the
            PyTorch BatchNorm convention, as the solvers' ``momentum``). The default 0.1 is the
            paper's moving average (which keeps 0.9 of the old value).
        norm_layer: norm after ``W_o``.
        out_act: activation after the residual sum (ReLU in the paper).

    Shape:
        ``(B, C, H, W)`` -> same shape.
    """

    mu: Tensor  # buffer (1, C, k), registered in __init__

    def __init__(
        self,
        channels: int,
        *,
        bases: int = 64,
        stages: int = 3,
        momentum: float = 0.1,
        norm_layer: LayerType = "batch",
        out_act: LayerType = "relu",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.num_bases = check_positive_int("bases", bases)
        self.stages = check_positive_int("stages", stages)
        self.momentum = check_float("momentum", momentum, low=0, high=1)
        dd = {"device": device, "dtype": dtype}
        self.conv_in = nn.Conv2d(channels, channels, 1, bias=True, **dd)
        self.conv_out = nn.Conv2d(channels, channels, 1, bias=False, **dd)
        self.norm = get_norm_layer(norm_layer, 2)(channels, **dd)
        self.out_act = get_act_layer(out_act)()
        self.register_buffer("mu", torch.empty(1, channels, bases, **dd))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Bases ``N(0, 2 / k)`` with unit columns; convolutions ``N(0, sqrt(2 / C_out))``."""
        with torch.no_grad():
            self.mu.normal_(0.0, math.sqrt(2.0 / self.num_bases))
            self.mu.copy_(F.normalize(self.mu, dim=1))
        for conv in (self.conv_in, self.conv_out):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        assert self.conv_in.bias is not None  # built with bias=True
        nn.init.zeros_(self.conv_in.bias)

    @staticmethod
    def _e_step(x: Tensor, mu: Tensor) -> Tensor:
        return torch.bmm(x.transpose(1, 2), mu).softmax(dim=-1)  # (B, n, k)

    def forward(self, x: Tensor) -> Tensor:
        b, n = check_feature_map(x, self.channels)
        feats = self.conv_in(x).reshape(b, self.channels, n)  # (B, C, n)
        mu = self.mu.to(feats.dtype).expand(b, -1, -1)
        with torch.no_grad():
            for _ in range(self.stages):
                z = self._e_step(feats, mu)
                z = z / (1e-6 + z.sum(dim=1, keepdim=True))  # responsibilities, normalised over n
                mu = F.normalize(torch.bmm(feats, z), dim=1)  # (B, C, k)
        if self.training:
            with torch.no_grad():
                update = average_across_ranks(mu.mean(dim=0, keepdim=True).to(self.mu.dtype))
                self.mu.mul_(1.0 - self.momentum).add_(update, alpha=self.momentum)
                self.mu.copy_(F.normalize(self.mu, dim=1))
        z = self._e_step(feats, mu)
        recon = F.relu(torch.bmm(mu, z.transpose(1, 2))).reshape(x.shape)  # (B, C, n)
        return self.out_act(x + self.norm(self.conv_out(recon)))

    def extra_repr(self) -> str:
        return f"{self.channels}, bases={self.num_bases}, stages={self.stages}, momentum={self.momentum}"
