"""The Hamburger block: lower bread -> ham -> (cheese) -> upper bread -> residual.

Paper: Geng et al., ICLR 2021, Sec. 2 / Fig. 1: ``Y = Z + BN(W_u M(W_l Z))``.
Reference code consulted: Enjoy-Hamburger ``seg/HamNet/hamburger/burger.py`` (V1, V2, V2+)
and ``gan/HamGAN/ops.py`` (spectral-norm breads, zero-initialised residual scale).
"""

from __future__ import annotations

import copy
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd
from torch.nn.utils import parametrize

from ..layers import ConvNormAct, get_act_layer, get_conv_layer, get_norm_layer, is_conditional
from ..solvers import MatrixDecomposition
from ..utils import check_positive_int
from .options import INHERIT, HamOptions

Version = Literal["v1", "v2", "v2+"]


def _conv_input(x: Tensor) -> Tensor:
    """The ham's output as a convolution input; under ``torch.compile`` a channels-last copy for 2D maps.

    Inductor with dynamic shapes fails to lower a convolution whose input is a view of a ``bmm`` output
    (the ham's ``D C`` reshaped to ``(B, C, H, W)``) that is also saved for backward: sorting its symbolic
    channels-last strides raises ``cannot determine truth value of Relational`` (pytorch/pytorch#185510).
    A channels-last copy is not a view, and it is the layout inductor gives the convolution anyway; eager
    mode is left as it is.
    """
    if x.dim() == 4 and torch.compiler.is_compiling():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _apply(module: nn.Module, x: Tensor, cond: Tensor | None) -> Tensor:
    """``module(x)``, passing ``cond`` to conditional layers (``module(x, cond)``), also inside a Sequential."""
    if isinstance(module, nn.Sequential):
        for layer in module:
            x = _apply(layer, x, cond)
        return x
    return module(x, cond) if is_conditional(module) else module(x)


class Hamburger(nn.Module):
    """Global context by low-rank recovery, a drop-in residual block.

    * ``version="v1"`` (the paper): ``out = act(x + norm(W_u M(act_l(W_l x))))``.
    * ``version="v2"`` (official VOC default, "cheese"): ``W_l -> M -> conv-norm-ReLU ->
      W_u``, no norm after ``W_u``.
    * ``version="v2+"``: V2 plus learnable scalars ``out = act(g_ham * branch + g_x * x)``
      with ``g_ham`` initialised to ``gate_init`` (0, the official ``ZERO_HAM``) and ``g_x`` to
      1; with ``dual=True`` the lower bread doubles its width and one half is decomposed over
      positions, the other over channels.

    ``act_l`` is ReLU when the ham needs non-negative input (NMF), identity otherwise.

    Conditioning: a conditional ``norm_layer`` (a callable building a module with ``conditional = True`` that is
    called as ``norm(x, cond)``, e.g. ``functools.partial(ConditionalBatchNorm, num_classes=K)``) makes the block
    take ``forward(x, cond=labels)``; the HamGAN generator puts class-conditional BatchNorm after the upper bread
    (v1) or in the cheese (v2) this way.

    Args:
        channels: ``C``, input and output channels.
        ham: ``"nmf"``, ``"vq"``, ``"cd"``, a :class:`~hamburger.blocks.HamOptions`, or a solver instance
            (used as given; solver options may then not be passed as well).
        ham_channels: ``MD_D`` times ``MD_S``, the width the ham works on (default ``C``).
        spatial_dims: 1 (sequences, ``(B, C, N)``), 2 (images) or 3 (volumes).
        **options: any :class:`~hamburger.blocks.HamOptions` field: the solver options (``rank``, ``steps``,
            ``eval_steps``, ``groups``, ``grad_mode``, ``grad_steps``, ``init``, ``eval_init``, ``momentum``,
            ``eps``, ``inv_temp``, ``ridge``, ``solve``, ``check_input``) and the block's (``version``, ``dual``,
            ``gate_init``, ``norm_layer`` (``"inherit"``: BatchNorm), ``act_layer``, ``out_act``, ``conv_layer``).
            The HamGAN block uses ``gate_init=0.0``, ``norm_layer="none"``, ``conv_layer="spectral"`` and
            ``out_act=None``. The resolved options are kept in ``self.options``.

    Shape:
        ``(B, C, *spatial)`` -> same shape.
    """

    def __init__(
        self,
        channels: int,
        *,
        ham: str | HamOptions | MatrixDecomposition = "nmf",
        ham_channels: int | None = None,
        spatial_dims: int = 2,
        device=None,
        dtype=None,
        **options: Any,
    ) -> None:
        super().__init__()
        check_positive_int("channels", channels)
        ham_channels = channels if ham_channels is None else check_positive_int("ham_channels", ham_channels)
        dd = {"device": device, "dtype": dtype}

        if isinstance(ham, MatrixDecomposition):
            given = sorted(set(options) & set(HamOptions.SOLVER_FIELDS))
            if given:
                raise ValueError(
                    f"solver option(s) {given} conflict with the given solver instance "
                    f"{type(ham).__name__}; set them on the solver (or pass ham as a name)"
                )
            solver = ham
            try:
                opts: HamOptions | None = HamOptions.from_solver(solver, **options)
            except TypeError:  # a user-defined solver type: block options only
                HamOptions._check_names(options)
                opts = None
                block = {k: options.get(k, getattr(HamOptions, k)) for k in HamOptions.BLOCK_FIELDS}
        else:
            opts = HamOptions.coerce(ham, **options)
            solver = opts.build_solver(channels=None if opts.init == "random" else ham_channels)
            if device is not None or dtype is not None:  # the online / learned dictionary follows the block
                solver.to(device=device, dtype=dtype)
        if opts is not None:
            block = {k: getattr(opts, k) for k in HamOptions.BLOCK_FIELDS}
        version, dual, gate_init = block["version"], block["dual"], block["gate_init"]
        norm_layer = "batch" if block["norm_layer"] == INHERIT else block["norm_layer"]
        act_layer, out_act, conv_layer = block["act_layer"], block["out_act"], block["conv_layer"]
        if opts is None:  # validate the block options of a custom solver the same way
            HamOptions(**{k: v for k, v in block.items()})
        if ham_channels % solver.groups:
            raise ValueError(f"ham_channels ({ham_channels}) must be divisible by groups ({solver.groups})")
        if dual and solver.init != "random":
            raise ValueError(
                f"dual=True needs init='random', got init={solver.init!r}: the channel branch's "
                "dictionary size depends on the resolution"
            )
        self.options = opts
        self.channels, self.ham_channels, self.version, self.dual = channels, ham_channels, version, dual

        conv = get_conv_layer(conv_layer, spatial_dims)
        width = 2 * ham_channels if dual else ham_channels
        self.lower_bread = conv(channels, width, 1, bias=True, **dd)
        self.lower_act = nn.ReLU() if solver.needs_nonnegative else nn.Identity()
        self.ham = solver
        if dual:
            self.ham_channel: MatrixDecomposition | None = copy.deepcopy(solver)
            self.ham_channel.spatial = False
        else:
            self.ham_channel = None

        if version == "v1":
            self.cheese: nn.Module = nn.Identity()
            upper_in = width
            self.upper_norm = get_norm_layer(norm_layer, spatial_dims)(channels, **dd)
        else:
            factor = solver.groups * (2 if dual else 1)
            upper_in = max(width // factor, 1)
            self.cheese = ConvNormAct(
                width, upper_in, 1, norm_layer=norm_layer, act_layer=act_layer,
                conv_layer=conv_layer, spatial_dims=spatial_dims, **dd,
            )  # fmt: skip
            self.upper_norm = nn.Identity()
        self.upper_bread = conv(upper_in, channels, 1, bias=False, **dd)

        if version == "v2+" and gate_init is None:
            gate_init = 0.0
        self.gate_init = gate_init
        self.coef_ham = None if gate_init is None else nn.Parameter(torch.full((1,), float(gate_init), **dd))
        self.coef_shortcut = nn.Parameter(torch.ones(1, **dd)) if version == "v2+" else None
        self.out_act = get_act_layer(out_act)()
        # V1 ends in W_u (D C): computing (W_u D) C instead replaces the n*d*C bread and the n*d*r
        # reconstruction by one n*C*r product (the same function, about a quarter fewer FLOPs).
        self.fold_upper = (
            version == "v1"
            and not dual
            and solver.spatial
            and isinstance(self.upper_bread, _ConvNd)
            and self.upper_bread.groups == 1
            and all(k == 1 for k in self.upper_bread.kernel_size)
            and all(st == 1 for st in self.upper_bread.stride)
            and all(p == 0 for p in self.upper_bread.padding)
            and self.upper_bread.bias is None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official init: conv weights N(0, sqrt(2 / (k^2 C_out))), norms weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, _ConvNd) and not parametrize.is_parametrized(m):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _ham(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.ham_channel is None:
            return self.ham(x) if mask is None else self.ham(x, mask=mask)
        spatial_half, channel_half = x.chunk(2, dim=1)
        return torch.cat([self.ham(spatial_half), self.ham_channel(channel_half)], dim=1)

    def _folded_upper(self, branch: Tensor, mask: Tensor | None = None) -> Tensor:
        """``upper_bread(ham(branch))`` computed as ``(W_u D) C`` from the ham's factors."""
        bases, coef = self.ham.factors(branch, mask=mask)  # (B*S, d, r), (B*S, n, r), float32 for half input
        weight = cast(Tensor, self.upper_bread.weight)  # fold_upper: a plain 1x1 convolution
        bases, coef = bases.to(weight.dtype), coef.to(weight.dtype)  # what the conv would see
        b, s = branch.shape[0], self.ham.groups
        d, r, n = bases.shape[1], bases.shape[2], coef.shape[1]
        weight = weight.reshape(self.channels, s, d)  # W_u split by group: (C, S, d)
        if s == 1:
            w_d = torch.matmul(weight[:, 0], bases)  # (C, d) @ (B, d, r) -> (B, C, r)
            codes = coef.transpose(1, 2)  # (B, r, n)
        else:
            w_d = torch.einsum("csd,bsdr->bcsr", weight, bases.reshape(b, s, d, r)).reshape(b, self.channels, s * r)
            codes = coef.reshape(b, s, n, r).permute(0, 1, 3, 2).reshape(b, s * r, n)  # (B, S*r, n)
        out = torch.matmul(w_d, codes)  # (B, C, S*r) @ (B, S*r, n) -> (B, C, n)
        return out.reshape(b, self.channels, *branch.shape[2:])

    def _check(self, x: Tensor) -> None:
        if x.dim() < 3 or x.shape[1] != self.channels:
            raise ValueError(f"x must have shape (B, {self.channels}, *spatial), got {tuple(x.shape)}")

    @property
    def takes_cond(self) -> bool:
        """Whether the block's norm is conditional, so that ``forward`` needs ``cond``."""
        return any(is_conditional(m) for m in (self.upper_norm, *self.cheese.modules()))

    def _branch(self, x: Tensor, mask: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        """The gated context branch ``g_ham * norm(W_u M(act_l(W_l x)))``; ``mask`` marks the ham's padding,
        ``cond`` is passed to a conditional norm."""
        if cond is not None and not self.takes_cond:
            raise ValueError("cond was given but the block's norm_layer is not conditional (it takes no cond)")
        if cond is None and self.takes_cond:
            raise ValueError("the block's norm_layer is conditional: pass cond (e.g. class labels of shape (B,))")
        branch = self.lower_act(self.lower_bread(x))
        if self.fold_upper:
            branch = self._folded_upper(branch, mask)
        else:
            branch = self.upper_bread(_apply(self.cheese, _conv_input(self._ham(branch, mask)), cond))
        branch = _apply(self.upper_norm, branch, cond)
        if self.coef_ham is not None:
            branch = self.coef_ham * branch
        return branch

    def forward(self, x: Tensor, *, cond: Tensor | None = None) -> Tensor:
        """``x`` ``(B, C, *spatial)``; ``cond`` the conditioning of a conditional norm (e.g. labels ``(B,)``)."""
        self._check(x)
        branch = self._branch(x, cond=cond)
        shortcut = x if self.coef_shortcut is None else self.coef_shortcut * x
        return self.out_act(shortcut + branch)

    def extra_repr(self) -> str:
        parts = [f"{self.channels}", f"ham_channels={self.ham_channels}", f"version={self.version!r}"]
        if self.dual:
            parts.append("dual=True")
        if self.gate_init is not None:
            parts.append(f"gate_init={self.gate_init}")
        return ", ".join(parts)

    def no_weight_decay(self) -> set[str]:
        """Parameters that weight decay must not pull to zero: the gates ``g_ham`` (``coef_ham``) and ``g_x``
        (``coef_shortcut``), where present (the timm ``no_weight_decay`` contract, read by
        :func:`hamburger.training.optim.param_groups`)."""
        return {name for name in ("coef_ham", "coef_shortcut") if getattr(self, name, None) is not None}


class HamburgerTokens(nn.Module):
    """Token form of :class:`Hamburger` for sequences: ``(B, N, C)`` in and out.

    Takes the same keyword options as :class:`Hamburger` (``spatial_dims`` is fixed to 1). For tokens,
    ``norm_layer="layer"`` (a per-token LayerNorm over the channels) is usually the right norm: it shares no
    statistic between tokens or sequences, as BatchNorm does in training.

    Args:
        channels: ``C``.
        branch_only: return the context branch ``g_ham * norm(W_u M(act_l(W_l x)))`` alone, without the residual
            and the output activation, for use inside a transformer block that adds its own residual
            (``x = x + tokens(norm(x))``). With ``version="v2+"`` (gate ``g_ham = 0`` at init) the branch is zero
            at step 0.
        **kwargs: :class:`Hamburger`'s options (a :class:`~hamburger.blocks.HamOptions` or its fields).

    Padding: ``forward(x, mask)`` with ``mask`` ``(B, N)``, True for real tokens, decomposes each sequence over
    its real tokens only: padded tokens are zeroed before the ham and left out of the solver's sums, so the
    outputs at real tokens equal those of the unpadded sequence run alone (to float rounding; in eval mode, or
    in training with a per-token norm such as ``"layer"``: BatchNorm's training statistics and a random
    training dictionary are per batch). Outputs at padded tokens are unspecified. Not with ``dual=True``.
    """

    def __init__(self, channels: int, *, branch_only: bool = False, **kwargs) -> None:
        super().__init__()
        if "spatial_dims" in kwargs:
            raise ValueError("HamburgerTokens works on (B, N, C) sequences; spatial_dims is fixed to 1")
        if not isinstance(branch_only, bool):
            raise TypeError(f"branch_only must be a bool, got {type(branch_only).__name__} {branch_only!r}")
        self.branch_only = branch_only
        self.block = Hamburger(channels, spatial_dims=1, **kwargs)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if x.dim() != 3:
            raise ValueError(f"x must have shape (B, N, C), got {tuple(x.shape)}")
        if mask is not None:
            if not isinstance(mask, Tensor):
                raise TypeError(f"mask must be a torch.Tensor of shape (B, N), got {type(mask).__name__}")
            if tuple(mask.shape) != tuple(x.shape[:2]):
                raise ValueError(f"mask must have shape (B, N) = {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
            if mask.dtype != torch.bool:
                raise TypeError(f"mask must be a bool tensor (True for real tokens), got dtype {mask.dtype}")
            if self.block.dual:
                raise ValueError("mask is not supported with dual=True: the channel branch mixes all tokens")
        seq = x.transpose(1, 2)  # (B, C, N)
        self.block._check(seq)
        branch = self.block._branch(seq, mask)
        if self.branch_only:
            return branch.transpose(1, 2)
        shortcut = seq if self.block.coef_shortcut is None else self.block.coef_shortcut * seq
        return self.block.out_act(shortcut + branch).transpose(1, 2)

    def extra_repr(self) -> str:
        return "branch_only=True" if self.branch_only else ""
