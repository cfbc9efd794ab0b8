"""``HamOptions``: the one typed description of a ham (solver) and of the Hamburger block around it.

The same object travels unchanged from a YAML config or ``create_model(..., ham="vq", inv_temp=10)`` through the
model config, the head and the block to the solver, and back out through ``save_pretrained`` and the checkpoint
converter. Its fields are the solvers' keyword options (see :class:`~hamburger.solvers.base.MatrixDecomposition`)
plus the block's own options; nothing else in the package re-lists them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..layers import LayerType
from ..solvers import SOLVERS, MatrixDecomposition
from ..utils import check_choice, check_float
from .identity_ham import IDENTITY_HAM, IdentityHam

VERSIONS = ("v1", "v2", "v2+")
INHERIT = "inherit"
"""``norm_layer`` value meaning: the builder's default (BatchNorm for a bare block, the head's norm in a head)."""

# solver-specific options: which solvers take them (None in HamOptions = the solver's own default)
_SPECIFIC = {"inv_temp": ("vq", "cd"), "ridge": ("cd",), "solve": ("cd",)}


@dataclass(frozen=True, kw_only=True)
class HamOptions:
    """Every option of a ham and of its Hamburger block, typed and validated once.

    Solver (the ham ``M``, paper Sec. 2.2; official config keys in brackets):
        ham: ``"nmf"``, ``"vq"`` or ``"cd"`` (``HAM_TYPE``); ``"identity"``: no decomposition (``M(X) = X``,
            :class:`~hamburger.blocks.identity_ham.IdentityHam`, the "identity-ham" ablation; the solver options
            are validated but unused).
        rank: ``r``, dictionary atoms (``MD_R``).
        steps: ``K`` in training (``TRAIN_STEPS``); eval_steps: ``K`` in eval (``EVAL_STEPS``, None = ``steps``).
        groups: ``S``, channel groups decomposed independently (``MD_S``).
        grad_mode: ``"one_step"``, ``"bptt"`` or ``"truncated"`` (with ``grad_steps`` differentiable steps).
        init: ``"random"``, ``"online"`` or ``"learned"`` dictionary (``RAND_INIT``); eval_init: ``"fixed"`` or
            ``"random"`` for ``init="random"`` in eval.
        momentum: ``eta``, fraction of the new value in the online dictionary's moving average (``ETA``).
        eps: added to denominators.
        inv_temp: ``1/T`` of the assignment softmax, VQ and CD only (``INV_T``; None = 100).
        ridge: ``beta`` of CD's ridge solve (``BETA``; None = 0.1); solve: CD's ``"solve"`` or ``"newton_schulz"``.
        check_input: validate finiteness (and non-negativity for NMF) on every call.

    Block (:class:`~hamburger.blocks.Hamburger`):
        version: ``"v1"``, ``"v2"`` (cheese) or ``"v2+"`` (gates); dual: V2+ channel branch.
        gate_init: initial value of the learnable scalar on the ham branch (None: none for v1/v2, 0 for v2+).
        norm_layer: the block's own norm (after the upper bread in v1, in the cheese in v2/v2+): ``"batch"``,
            ``"group"``, ``"layer"`` (per-token LayerNorm, for sequences), ``"none"`` / None (no norm) or a
            callable. The default ``"inherit"`` means "the default of whoever builds the block":
            BatchNorm for a bare ``Hamburger``, the head's norm in a segmentation head. Any other value
            makes the block's norm independent of the head's.
        act_layer: activation of the cheese; out_act: activation after the residual sum (official ReLU);
        conv_layer: 1x1 convolution factory of the breads (``"conv"`` or ``"spectral"``; None = ``"conv"``).

    Options a solver does not take (``inv_temp`` for NMF, ``ridge`` for VQ) are an error, not ignored.

    Example:
        >>> opts = HamOptions(ham="vq", rank=16, inv_temp=10.0)
        >>> opts.replace(grad_mode="bptt").grad_mode
        'bptt'
    """

    # solver
    ham: str = "nmf"
    rank: int = 64
    steps: int = 6
    eval_steps: int | None = 7
    groups: int = 1
    grad_mode: str = "one_step"
    grad_steps: int = 1
    init: str = "random"
    eval_init: str = "fixed"
    momentum: float = 0.9
    eps: float = 1e-6
    inv_temp: float | None = None
    ridge: float | None = None
    solve: str | None = None
    check_input: bool = True
    # block
    version: str = "v1"
    dual: bool = False
    gate_init: float | None = None
    norm_layer: LayerType = "inherit"
    act_layer: LayerType = "relu"
    out_act: LayerType = "relu"
    conv_layer: LayerType = None

    SOLVER_FIELDS: ClassVar[tuple[str, ...]] = (
        "rank", "steps", "eval_steps", "groups", "grad_mode", "grad_steps", "init", "eval_init",
        "momentum", "eps", "inv_temp", "ridge", "solve", "check_input",
    )  # fmt: skip
    BLOCK_FIELDS: ClassVar[tuple[str, ...]] = (
        "version", "dual", "gate_init", "norm_layer", "act_layer", "out_act", "conv_layer",
    )  # fmt: skip

    def __post_init__(self) -> None:
        if not isinstance(self.ham, str):
            raise TypeError(f"ham must be one of {sorted(SOLVERS)}, got {type(self.ham).__name__} {self.ham!r}")
        if self.ham.lower() != self.ham:
            object.__setattr__(self, "ham", self.ham.lower())
        if self.ham not in SOLVERS and self.ham != IDENTITY_HAM:
            raise ValueError(
                f"unknown ham {self.ham!r}; choose from {sorted(SOLVERS)} (or {IDENTITY_HAM!r} for no decomposition) "
                "or pass a solver instance"
            )
        for name, owners in _SPECIFIC.items():
            if getattr(self, name) is not None and self.ham not in owners:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} does not apply to ham={self.ham!r} (only to {list(owners)}); "
                    f"remove it or choose ham from {list(owners)}"
                )
        check_choice("version", self.version, VERSIONS)
        if not isinstance(self.dual, bool):
            raise TypeError(f"dual must be a bool, got {type(self.dual).__name__} {self.dual!r}")
        if self.dual and self.version != "v2+":
            raise ValueError(f"dual=True needs version='v2+', got version={self.version!r}")
        if self.gate_init is not None:
            check_float("gate_init", self.gate_init)
        # every solver option is validated by the solver itself (one source of truth): build a throwaway one
        self.build_solver(channels=self.groups if self.init != "random" else None)
        if self.dual and self.init != "random":
            raise ValueError(
                f"dual=True needs init='random', got init={self.init!r}: the channel branch's dictionary size "
                "depends on the resolution"
            )

    # ------------------------------------------------------------------ construction
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def coerce(cls, ham: str | HamOptions | Mapping[str, Any] | None = None, **overrides: Any) -> HamOptions:
        """``ham`` (a solver name, a ``HamOptions`` or a mapping of fields) with ``overrides`` applied.

        Unknown option names raise ``TypeError`` listing the valid ones.
        """
        cls._check_names(overrides)
        if ham is None:
            return cls(**overrides)
        if isinstance(ham, HamOptions):
            return ham.replace(**overrides)
        if isinstance(ham, str):
            return cls(ham=ham, **overrides)
        if isinstance(ham, Mapping):
            cls._check_names(ham)
            return cls(**{**ham, **overrides})
        raise TypeError(
            f"ham must be a solver name {sorted(SOLVERS)}, a HamOptions or a mapping of its fields, "
            f"got {type(ham).__name__}"
        )

    @classmethod
    def from_solver(cls, solver: MatrixDecomposition, **block: Any) -> HamOptions:
        """The options that describe ``solver`` (a registered solver type) plus block options ``block``."""
        names = [name for name, kind in {**SOLVERS, IDENTITY_HAM: IdentityHam}.items() if type(solver) is kind]
        if not names:
            raise TypeError(f"{type(solver).__name__} is not a registered solver type {sorted(SOLVERS)}")
        values: dict[str, Any] = {name: getattr(solver, name) for name in cls.SOLVER_FIELDS if hasattr(solver, name)}
        return cls(ham=names[0], **values, **block)

    @classmethod
    def _check_names(cls, names: Mapping[str, Any]) -> None:
        unknown = sorted(set(names) - set(cls.field_names()))
        if unknown:
            raise TypeError(f"unknown ham option(s) {unknown}; valid options are {sorted(cls.field_names())}")

    def replace(self, **overrides: Any) -> HamOptions:
        """A copy with ``overrides``; changing ``ham`` drops solver-specific options the new solver lacks."""
        self._check_names(overrides)
        new_ham = overrides.get("ham", self.ham)
        if isinstance(new_ham, str) and new_ham.lower() != self.ham:
            for name, owners in _SPECIFIC.items():
                if name not in overrides and new_ham.lower() not in owners:
                    overrides[name] = None
        return dataclasses.replace(self, **overrides)

    def solver_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the solver class (options left at None take the solver's default)."""
        kwargs = {name: getattr(self, name) for name in self.SOLVER_FIELDS}
        return {k: v for k, v in kwargs.items() if not (k in _SPECIFIC and v is None)}

    def build_solver(self, *, channels: int | None = None) -> MatrixDecomposition:
        """The solver (``M``) these options describe; ``channels`` sizes an online / learned dictionary."""
        if self.ham == IDENTITY_HAM:
            return IdentityHam(**self.solver_kwargs(), channels=channels)
        return SOLVERS[self.ham](**self.solver_kwargs(), channels=channels)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HamOptions:
        cls._check_names(data)
        return cls(**data)
