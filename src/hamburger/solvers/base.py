"""The shared matrix-decomposition algorithm (the "ham"), written once for NMF, VQ and CD.

Paper: Geng et al., "Is Attention Better Than Matrix Decomposition?", ICLR 2021, Sec. 2-3.
Reference code consulted: Enjoy-Hamburger ``seg/HamNet/hamburger/ham.py``.

Einstein legend used in shape comments: ``B`` batch, ``S`` groups (paper/official ``MD_S``),
``d`` channels per group (``MD_D`` / S), ``n`` tokens (H*W, or T*H*W), ``r`` rank (``MD_R``).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, ClassVar, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils import check_choice, check_float, check_int
from ._init import draw_bases

GradMode = Literal["one_step", "bptt", "truncated", "implicit"]
InitMode = Literal["random", "online", "learned"]
EvalInit = Literal["fixed", "random"]

GRAD_MODES = ("one_step", "bptt", "truncated", "implicit")
INIT_MODES = ("random", "online", "learned")
EVAL_INITS = ("fixed", "random")


def average_across_ranks(tensor: Tensor) -> Tensor:
    """Replace ``tensor`` in place by its mean over the DDP ranks (all-reduce); unchanged outside DDP."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
        tensor /= dist.get_world_size()
    return tensor


class NonFiniteError(ValueError, FloatingPointError):
    """A solver's input or dictionary holds NaN or inf.

    A ``ValueError`` (bad input) and a ``FloatingPointError`` (in training it is how a diverged run shows up when
    the weights became non-finite before the loss did), so callers that stop on divergence catch either."""


class _FixedPointGradient(torch.autograd.Function):
    """Identity on the solver state ``z_K = F(z_{K-1})``; its backward turns the incoming gradient ``g`` into the
    truncated Neumann series ``sum_{j=0}^{m} (J^T)^j g`` with ``J = dF/dz`` at ``z_{K-1}``.

    ``(I - J^T)^{-1} g`` is the gradient through the fixed point ``z* = F(z*, X)`` (implicit function theorem, the
    paper's Prop. 2); the series approximates it with ``m`` vector-Jacobian products on the graph of the single
    differentiable step, so no earlier step is stored. ``state_in`` are the detached leaves ``z_{K-1}``,
    ``state_out`` the step's outputs (graph through ``z_{K-1}`` and ``X``).
    """

    @staticmethod
    def forward(ctx: Any, terms: int, state_in: tuple[Tensor, ...], *state_out: Tensor) -> tuple[Tensor, ...]:
        ctx.terms, ctx.state_in, ctx.state_out = terms, state_in, state_out
        return tuple(t.clone() for t in state_out)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        total = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, ctx.state_out, strict=True)]
        term = total
        for _ in range(ctx.terms):  # term <- J^T term, total += term
            vjp = torch.autograd.grad(ctx.state_out, ctx.state_in, term, retain_graph=True, allow_unused=True)
            term = [torch.zeros_like(z) if v is None else v for v, z in zip(vjp, ctx.state_in, strict=True)]
            total = [a + b for a, b in zip(total, term, strict=True)]
        return (None, None, *total)  # state_in/out stay on ctx: a retain_graph=True backward may run again


def _is_tracing() -> bool:
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and compiler.is_compiling():
        return True
    return torch.jit.is_tracing()


class MatrixDecomposition(nn.Module):
    """Base class of the hams: ``K`` solver steps on the d x n matrix, then one code step.

    Subclasses define the initial-dictionary distribution and three kernels: ``init_coef``,
    ``step`` (one iteration, returns new bases and codes) and ``final_coef`` (the single code
    step that carries the one-step gradient). The forward pass is

    1. reshape ``(B, C, *spatial)`` to ``X`` of shape ``(B*S, d, n)`` (``spatial=True``) or
       ``(B*S, n, d)`` (``spatial=False``, the V2+ "dual" channel branch);
    2. initial dictionary ``D_0`` (see ``init``), initial codes ``C_0``;
    3. ``K`` = ``steps`` (training) or ``eval_steps`` (eval) iterations;
    4. the code step ``C* = final_coef(X, D_K, C_K)`` and the low-rank output ``D_K C*``.

    Args:
        rank: ``r``, number of dictionary atoms (official ``MD_R``).
        steps: ``K`` in training mode (``TRAIN_STEPS``).
        eval_steps: ``K`` in eval mode (``EVAL_STEPS``); defaults to ``steps``.
        groups: ``S``; channels are split into S groups decomposed independently (``MD_S``).
        spatial: decompose over positions (d x n, the default) or over channels (n x d).
        grad_mode: ``"one_step"`` (the paper: all K steps without gradient, then the
            differentiable code step and reconstruction), ``"bptt"`` (differentiate through every
            step, what the mmseg / SegNeXt heads do), ``"truncated"`` (through the last
            ``grad_steps`` steps and the code step) or ``"implicit"`` (the gradient through the fixed point
            ``z* = F(z*, X)`` of the step map, paper Prop. 2: the first ``K - 1`` steps run without gradient,
            the last step is differentiable and its backward applies ``grad_steps`` Neumann terms,
            ``g -> sum_{j<=grad_steps} (J^T)^j g`` with ``J = dF/dz`` there; memory of one step whatever
            ``K``, time of about ``1 + grad_steps`` step backwards; ``grad_steps`` terms = 0 is
            ``"truncated"`` with one step). Unlike one-step, the gradient reaches the dictionary
            through the tokens, so it has a cross-token part.
        grad_steps: number of differentiable steps for ``grad_mode="truncated"``; number of Neumann terms
            for ``grad_mode="implicit"`` (0 allowed there).
        init: ``"random"``: a fresh random dictionary per sample and forward in training (the
            paper, ``RAND_INIT=True``); ``"online"``: a buffer of shape (S, d, r) used for
            every sample and moved towards the batch's final dictionary by an exponential
            moving average in training, all-reduced across DDP ranks (``RAND_INIT=False`` plus
            ``online_update``); ``"learned"``: a parameter of shape (S, d, r) trained by
            backprop (needs ``grad_mode="bptt"``).
        eval_init: for ``init="random"`` in eval mode: ``"fixed"`` (default) uses one
            dictionary drawn once from the training distribution by an RNG-free hash, so the
            same input gives the same output on every call and batch position, and the global
            RNG is untouched; ``"random"`` redraws as the official code does.
        channels: ``C``, required for ``init="online"`` and ``"learned"`` (the buffer shape).
        momentum: ``eta``, the fraction of the new value in the moving average of the online dictionary,
            ``D <- normalize(D + eta (mean_B(D_K) - D))`` (the PyTorch BatchNorm convention; official ``ETA``).
        eps: added to denominators (official 1e-6).
        check_input: validate the values of ``x`` and of a given ``bases`` (finite; non-negative for
            NMF); a bool. Costs one reduction per forward; skipped automatically under
            ``torch.compile`` / ``torch.export``.

    Shape:
        ``x``: ``(B, C, *spatial)`` with 1 to 3 spatial dims; output has the same shape and
        dtype. Half-precision inputs and autocast regions are computed in float32.
    """

    distribution: ClassVar[str] = "uniform"
    needs_nonnegative: ClassVar[bool] = False

    def __init__(
        self,
        rank: int = 64,
        *,
        steps: int = 6,
        eval_steps: int | None = 7,
        groups: int = 1,
        spatial: bool = True,
        grad_mode: GradMode = "one_step",
        grad_steps: int = 1,
        init: InitMode = "random",
        eval_init: EvalInit = "fixed",
        channels: int | None = None,
        momentum: float = 0.9,
        eps: float = 1e-6,
        check_input: bool = True,
    ) -> None:
        super().__init__()
        self.rank = check_int("rank", rank, 1)
        self.steps = check_int("steps", steps, 0)
        self.eval_steps = self.steps if eval_steps is None else check_int("eval_steps", eval_steps, 0)
        self.groups = check_int("groups", groups, 1)
        self.grad_mode = check_choice("grad_mode", grad_mode, GRAD_MODES)
        self.grad_steps = check_int("grad_steps", grad_steps, 0 if grad_mode == "implicit" else 1)
        if self.grad_mode == "implicit" and self.grad_steps > 0 and self.steps == 1:
            raise ValueError(
                f"grad_mode='implicit' with grad_steps={self.grad_steps} needs steps >= 2, got steps=1: its Neumann "
                "series assumes the steps - 1 iterations without gradient have approached the fixed point, and from "
                "the initial dictionary it diverges (K=1 training went to NaN); for steps=1 use grad_mode='bptt' "
                "(the exact gradient of that one step) or grad_steps=0"
            )
        self.init = check_choice("init", init, INIT_MODES)
        self.eval_init = check_choice("eval_init", eval_init, EVAL_INITS)
        if not isinstance(spatial, bool):
            raise TypeError(f"spatial must be a bool, got {type(spatial).__name__} {spatial!r}")
        self.spatial = spatial
        self.momentum = check_float("momentum", momentum, low=0, high=1)
        self.eps = check_float("eps", eps, low=0, low_open=True)
        if not isinstance(check_input, bool):
            raise TypeError(f"check_input must be a bool, got {type(check_input).__name__} {check_input!r}")
        self.check_input = check_input
        self.channels = channels
        if init == "random":
            if channels is not None:
                check_int("channels", channels, 1)
            self.register_buffer("bases", None)
            return
        if not spatial:
            raise ValueError(
                f"init={init!r} stores a (groups, d, rank) dictionary, which needs spatial=True; "
                "with spatial=False the dictionary size depends on the resolution"
            )
        if channels is None:
            raise ValueError(f"init={init!r} needs channels=C to create its (groups, C // groups, rank) dictionary")
        check_int("channels", channels, 1)
        if channels % groups:
            raise ValueError(f"channels ({channels}) must be divisible by groups ({groups})")
        if init == "learned" and grad_mode != "bptt":
            raise ValueError(
                "init='learned' needs grad_mode='bptt': the one-step, truncated and implicit gradients "
                f"never reach the initial dictionary, got grad_mode={grad_mode!r}"
            )
        shape = (groups, channels // groups, rank)
        bases = draw_bases(shape, distribution=self.distribution, fixed=True)
        if init == "online":
            self.register_buffer("bases", bases)
        else:
            self.bases = nn.Parameter(bases)

    # ------------------------------------------------------------------ kernels (subclasses)
    # The protocol: ``data = prepare(x)`` once per forward, codes ``C_0 = init_coef(data, D_0)``,
    # ``(D_1, C_1) = start(data, D_0)``, then ``(D_k, C_k) = step(data, D_{k-1}, C_{k-1})`` and the code step
    # ``C* = final_coef(data, D_K, C_K)``. Codes are always a tensor ``(b, n, r)`` or ``None``; whatever a solver
    # computes once per forward (normalised tokens, scales) travels in ``data``.
    def prepare(self, x: Tensor) -> Any:
        """Per-forward constants of ``x`` (b, d, n) that ``step`` and ``final_coef`` receive as ``data``.

        Runs with autograd on only when some step is differentiable; ``final_coef`` may read from ``data``
        only ``x`` itself and values it treats as constants. The default is ``x``.
        """
        return x

    def init_coef(self, data: Any, bases: Tensor) -> Tensor | None:
        """Codes ``C_0`` before the first step, ``(b, n, r)``; ``None`` where the steps ignore them."""
        return None

    def start(self, data: Any, bases: Tensor) -> tuple[Tensor, Tensor]:
        """The initial codes and the first step, ``step(data, D_0, init_coef(data, D_0))``.

        Both always run in the same autograd mode, so a solver may share work between them here
        (NMF computes ``X^T D_0`` once for its initial codes and its first code update).
        """
        return self.step(data, bases, self.init_coef(data, bases))

    def step(self, data: Any, bases: Tensor, coef: Tensor | None) -> tuple[Tensor, Tensor]:
        """One solver iteration on ``data = prepare(x)``; returns the new bases and codes."""
        raise NotImplementedError

    def final_coef(self, data: Any, bases: Tensor, coef: Tensor | None) -> Tensor:
        """The code step that carries the one-step gradient: codes ``C^T`` of ``X`` for the final dictionary."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the algorithm
    def num_grad_steps(self, steps: int) -> int:
        """How many of the ``steps`` iterations carry gradient under ``grad_mode``."""
        if self.grad_mode == "one_step":
            return 0
        if self.grad_mode == "bptt":
            return steps
        if self.grad_mode == "implicit":  # compiled / exported graphs cannot re-enter autograd: see _implicit_step
            return min(self.grad_steps + 1 if _is_tracing() else 1, steps)
        return min(self.grad_steps, steps)

    def _implicit_step(self, data: Any, bases: Tensor, coef: Tensor | None, *, first: bool) -> tuple[Tensor, Tensor]:
        """The last step under ``grad_mode="implicit"``: differentiable in ``X`` from the detached state ``z_{K-1}``
        (bases, and the codes where the solver carries them), its gradient sent through the Neumann series.

        Under ``torch.compile`` / ``torch.export`` the series' vector-Jacobian products (a backward that re-enters
        autograd on a retained graph) cannot run inside the compiled backward, so there the mode differentiates
        through the last ``grad_steps + 1`` steps instead: the same truncated series when the iteration has
        converged (every step then has the same Jacobian), at the memory of ``grad_steps + 1`` steps."""
        if first:  # the state before the first step: D_0 and, for solvers with codes, C_0 = init_coef(D_0)
            with torch.no_grad():
                coef = self.init_coef(data, bases)
        state_in = tuple(t.detach().requires_grad_() for t in (bases, coef) if t is not None)
        with torch.enable_grad():
            new_bases, new_coef = self.step(data, state_in[0], state_in[1] if coef is not None else None)
            state_out = (new_bases, new_coef) if coef is not None else (new_bases,)
            fixed = _FixedPointGradient.apply(self.grad_steps, state_in, *state_out)
        return (fixed[0], fixed[1]) if coef is not None else (fixed[0], new_coef)

    def mask_data(self, data: Any, weight: Tensor) -> Any:
        """``data`` for matrices whose padded tokens (columns of ``x``, already zero) have ``weight`` 0.

        ``weight`` is ``(b, n, 1)``, 1 for real tokens and 0 for padding. The default returns ``data`` unchanged,
        which is exact for solvers on which zero columns have no influence (NMF: their codes vanish after the
        first code update, so they add nothing to the dictionary update). Solvers that normalise over the
        tokens (VQ, CD) keep ``weight`` in ``data`` and leave the padding out of those sums.
        """
        return data

    def decompose(self, x: Tensor, bases: Tensor, *, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run the solver on matrices ``x`` (b, d, n) from ``bases`` (b, d, r).

        Returns the final dictionary ``(b, d, r)`` and codes ``C^T`` ``(b, n, r)``; the
        low-rank reconstruction is ``bases @ coef.transpose(1, 2)``. ``mask`` (``(b, n, 1)``, 1 = real token,
        0 = padding whose column of ``x`` is zero) leaves the padding out (see :meth:`mask_data`).
        """
        steps = self.steps if self.training else self.eval_steps
        k = self.num_grad_steps(steps)
        grad = torch.is_grad_enabled()
        with torch.set_grad_enabled(grad and k > 0):
            data = self.prepare(x)
            if mask is not None:
                data = self.mask_data(data, mask)
        coef: Tensor | None = None
        if steps == 0:  # the code step alone; under the one-step gradient C_0 enters it as a constant
            with torch.set_grad_enabled(grad and self.grad_mode != "one_step"):
                coef = self.init_coef(data, bases)
        implicit = grad and k > 0 and self.grad_mode == "implicit" and not _is_tracing()
        for i in range(steps - 1 if implicit else steps):  # the first steps - k without gradient, the last k with it
            with torch.set_grad_enabled(grad and i >= steps - k):
                bases, coef = self.start(data, bases) if i == 0 else self.step(data, bases, coef)
        if implicit:
            bases, coef = self._implicit_step(data, bases, coef, first=steps == 1)
        if self.grad_mode == "one_step":  # the dictionary and codes enter the code step as constants
            bases = bases.detach()
            coef = None if coef is None else coef.detach()
        return bases, self.final_coef(data, bases, coef)

    # ------------------------------------------------------------------ plumbing
    def _matrix_shape(self, x: Tensor) -> tuple[int, int, int]:
        b, c = x.shape[:2]
        n = math.prod(x.shape[2:])
        d = c // self.groups
        return (b * self.groups, d, n) if self.spatial else (b * self.groups, n, d)

    def _validate(self, x: Tensor, bases: Tensor | None) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not 3 <= x.dim() <= 5:
            raise ValueError(f"x must have shape (B, C, N), (B, C, H, W) or (B, C, T, H, W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        if x.shape[1] % self.groups:
            raise ValueError(f"channels of x ({x.shape[1]}) must be divisible by groups ({self.groups})")
        if x.numel() == 0:
            raise ValueError(f"x must not be empty, got shape {tuple(x.shape)}")
        if self.bases is not None:
            expected = self.bases.shape[1] * self.groups
            if x.shape[1] != expected:
                raise ValueError(f"x must have {expected} channels (channels={self.channels}), got {x.shape[1]}")
        if bases is not None:
            if not isinstance(bases, Tensor):
                raise TypeError(f"bases must be a torch.Tensor, got {type(bases).__name__}")
            if not bases.is_floating_point():
                raise TypeError(f"bases must be a floating-point tensor, got dtype {bases.dtype}")
            b, d, _ = self._matrix_shape(x)
            expected_shape = (b, d, self.rank)
            if tuple(bases.shape) != expected_shape:
                raise ValueError(
                    f"bases must have shape (B * groups, {'C // groups' if self.spatial else 'N'}, rank) = "
                    f"{expected_shape} for x of shape {tuple(x.shape)}, got {tuple(bases.shape)}"
                )
        if self.check_input and x.device.type != "meta" and not _is_tracing():
            self._check_values("x", x, "apply ReLU first, as the Hamburger block does before NMF")
            if bases is not None:
                self._check_values("bases", bases, "the multiplicative updates keep the signs of the dictionary")

    def _check_values(self, name: str, value: Tensor, hint: str) -> None:
        with torch.no_grad():  # one pass: NaN propagates through min/max, inf shows in them
            low, high = torch.stack(torch.aminmax(value)).tolist()
        if not (math.isfinite(low) and math.isfinite(high)):
            raise NonFiniteError(f"{name} contains NaN or inf; the decomposition needs finite input")
        if self.needs_nonnegative and low < 0:
            raise ValueError(f"{type(self).__name__} needs non-negative {name} (got min {low:.3g}); {hint}")

    def _initial_bases(self, x: Tensor, batch: int, bases: Tensor | None) -> Tensor:
        b, d, _ = x.shape
        if bases is not None:
            return bases.to(device=x.device, dtype=x.dtype)
        if self.bases is not None:  # online buffer or learned parameter, (S, d, r)
            return self.bases.to(x.dtype).repeat(batch, 1, 1)
        if self.training or self.eval_init == "random":
            return draw_bases((b, d, self.rank), distribution=self.distribution, device=x.device, dtype=x.dtype)
        fixed = draw_bases(
            (self.groups, d, self.rank), distribution=self.distribution, device=x.device, dtype=x.dtype, fixed=True
        )
        return fixed.repeat(batch, 1, 1)

    @torch.no_grad()
    def online_update(self, bases: Tensor) -> None:
        """EMA step of the online dictionary towards the batch mean of ``bases`` (B*S, d, r)."""
        update = average_across_ranks(bases.reshape(-1, *self.bases.shape).mean(dim=0).to(self.bases.dtype))
        self.bases.add_(update - self.bases, alpha=self.momentum)
        self.bases.copy_(F.normalize(self.bases, dim=1))

    @staticmethod
    def _autocast_off(x: Tensor):
        if x.device.type != "meta" and torch.is_autocast_enabled(x.device.type):
            return torch.autocast(x.device.type, enabled=False)
        return contextlib.nullcontext()

    def _matrix(self, x: Tensor) -> Tensor:
        """``x`` as the matrices the solver works on: (B*S, d, n), or (B*S, n, d) over channels."""
        compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        b, c = x.shape[:2]
        xm = x.to(compute).reshape(b * self.groups, c // self.groups, -1)  # (B*S, d, n)
        return xm if self.spatial else xm.transpose(1, 2)

    def _token_weight(self, x: Tensor, mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
        """``mask`` (B, *spatial), True for real tokens, as the solver's (B*S, n, 1) weight of 1s and 0s."""
        if mask is None:
            return None
        if not isinstance(mask, Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        if tuple(mask.shape) != (x.shape[0], *x.shape[2:]):
            raise ValueError(
                f"mask must have shape (B, *spatial) = {(x.shape[0], *x.shape[2:])} for x of shape "
                f"{tuple(x.shape)}, got {tuple(mask.shape)}"
            )
        if not self.spatial:
            raise ValueError("mask needs spatial=True: over channels the tokens are the features of the matrix")
        weight = (mask != 0).to(device=x.device, dtype=dtype).reshape(x.shape[0], 1, -1, 1)
        return weight.expand(-1, self.groups, -1, -1).reshape(x.shape[0] * self.groups, -1, 1)

    def factors(self, x: Tensor, bases: Tensor | None = None, *, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Validate ``x`` and decompose it: the final dictionary ``D`` (B*S, d, r) and codes
        ``C^T`` (B*S, n, r), in the compute dtype (float32 for half-precision input).

        ``forward`` returns ``D C`` reshaped like ``x``; blocks use the factors directly to fold
        the following 1x1 convolution into the small dictionary (``W (D C) = (W D) C``).
        ``mask`` (``(B, *spatial)``, True for real tokens) treats the other tokens as padding: they are zeroed
        and have no influence on the factors, so each sample's real tokens decompose as if alone.
        """
        self._validate(x, bases)
        with self._autocast_off(x):
            xm = self._matrix(x)
            weight = self._token_weight(x, mask, xm.dtype)
            if weight is not None:
                xm = xm * weight.transpose(1, 2)  # padded columns of X are zero
            d_final, coef = self.decompose(xm, self._initial_bases(xm, x.shape[0], bases), mask=weight)
            if self.init == "online" and self.training:
                self.online_update(d_final)
        return d_final, coef

    def forward(self, x: Tensor, bases: Tensor | None = None, *, mask: Tensor | None = None) -> Tensor:
        """Low-rank reconstruction of ``x``; ``bases`` optionally gives the initial dictionary, ``mask``
        (``(B, *spatial)``, True for real tokens) marks padding (see :meth:`factors`)."""
        d_final, coef = self.factors(x, bases, mask=mask)
        with self._autocast_off(x):
            b, c = x.shape[:2]
            d_stride = x.reshape(b * self.groups, c // self.groups, -1).stride(1)  # a view: no dtype copy
            if self.spatial and d_stride == 1:  # channels-last input keeps its layout: (b, n, d)
                out = torch.bmm(coef, d_final.transpose(1, 2)).transpose(1, 2)
            else:
                out = torch.bmm(d_final, coef.transpose(1, 2))  # (b, d, r) @ (b, r, n) -> (b, d, n)
            if not self.spatial:
                out = out.transpose(1, 2)
        return out.reshape(x.shape).to(x.dtype)

    def extra_repr(self) -> str:
        parts = [
            f"rank={self.rank}",
            f"steps={self.steps}",
            f"eval_steps={self.eval_steps}",
            f"groups={self.groups}",
            f"grad_mode={self.grad_mode!r}",
        ]
        if self.grad_mode in ("truncated", "implicit"):
            parts.append(f"grad_steps={self.grad_steps}")
        parts.append(f"init={self.init!r}")
        if self.init == "random":
            parts.append(f"eval_init={self.eval_init!r}")
        else:
            parts.append(f"channels={self.channels}")
        if self.init == "online":
            parts.append(f"momentum={self.momentum}")
        if not self.spatial:
            parts.append("spatial=False")
        return ", ".join(parts + self._extra_options())

    def _extra_options(self) -> list[str]:
        return []
