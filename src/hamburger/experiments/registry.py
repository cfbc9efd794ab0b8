"""The experiments of issue 13: one factor varied at a fixed budget, everything else equal.

An :class:`Experiment` names a base seg config (by default ``fashion_scenes_context`` with the tiny models), a
fixed :class:`Budget` (training steps, validation scenes, batch), its *arms* (name -> config overrides: the only
thing that differs between runs), the seeds, the *evaluations* made on every trained model (e.g. eval ``K`` values
different from the training ``K``, or repeated evaluations with a random dictionary), what to measure per run
and the paper's numbers where the paper has one. :data:`EXPERIMENTS` is the registry used by
``hamburger experiments list | run NAME`` (:mod:`hamburger.experiments.runner` runs one).

Overrides are dotted config keys (``"model.model_kwargs.grad_mode": "bptt"``), merged into the base config;
Hamburger options (``ham``, ``rank``, ``steps``, ``grad_mode``, ...) go to ``model.model_kwargs`` and reach the
block through :class:`~hamburger.models.ModelConfig`'s routing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..blocks import CONTEXT_BLOCKS
from ..solvers.base import GRAD_MODES

__all__ = [
    "EXPERIMENTS",
    "MEASURES",
    "Budget",
    "Evaluation",
    "Experiment",
    "get_experiment",
    "list_experiments",
    "register_experiment",
]

#: what a run can measure besides its evaluations (see :mod:`hamburger.experiments.runner`)
MEASURES = (
    "cost",  # FLOPs, latency, parameters and peak memory of the context block at the head's feature size
    "train_memory",  # peak memory of one training step of the whole model (forward + backward)
    "gradient",  # off-token share of the gradient and gradient norms through the block (diagnostics)
    "ablation",  # mIoU with the Hamburger branch zeroed / replaced by its spatial mean (diagnostics)
    "branch_stats",  # gate value and branch / shortcut RMS over training (diagnostics, a callback)
    "spectrum",  # cumulative singular-value energy before / after the block (spectrum)
    "code_maps",  # input / output / code maps of a few validation images (spectrum)
)
KWARGS = "model.model_kwargs"


@dataclass(frozen=True)
class Budget:
    """The fixed training budget of every run of an experiment.

    Attributes:
        steps: optimiser steps of each training run.
        val_scenes: validation scenes every trained model is evaluated on.
        batch_size: training batch size.
    """

    steps: int = 600
    val_scenes: int = 200
    batch_size: int = 16


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of every trained model of an experiment.

    Attributes:
        name: the row label's suffix (``""`` for the plain evaluation).
        solver: attributes set on every solver of the trained model before evaluating (``eval_steps``,
            ``eval_init``), restored afterwards.
        repeats: evaluations, each after ``torch.manual_seed(repeat)``; with ``repeats > 1`` the spread
            (standard deviation over repeats) of mIoU is reported as ``mIoU_spread``.
        arms: only these arms (``None``: every arm).
    """

    name: str = ""
    solver: Mapping[str, Any] = field(default_factory=dict)
    repeats: int = 1
    arms: tuple[str, ...] | None = None

    def applies_to(self, arm: str) -> bool:
        return self.arms is None or arm in self.arms


@dataclass(frozen=True)
class Experiment:
    """A study of one factor (see the module docstring).

    Attributes:
        name: the experiment's name (``hamburger experiments run NAME``).
        description: one line.
        base_config: a packaged seg config name or a YAML path.
        budget: the fixed :class:`Budget`.
        arms: arm name -> dotted config overrides (the factor studied).
        seeds: training seeds per arm (seed ``s`` adds ``s`` to the config's seeds).
        evaluations: evaluations of every trained model (default: one plain evaluation).
        measures: extra per-run measurements, names from :data:`MEASURES`.
        columns: extra metric columns of the table (keys of a run's metrics), besides mIoU, aAcc and ctx acc.
        paper: arm (or ``"arm/evaluation"``) -> the paper's number, shown beside ours.
        paper_source: what the paper's numbers are (metric, dataset, table).
        plots: plot names (``"bars"``, ``"cost"``, ``"branch_stats"``, ``"spectrum"``, ``"code_maps"``,
            ``"eval_k"``; see :mod:`hamburger.experiments.plots`).
    """

    name: str
    description: str
    arms: Mapping[str, Mapping[str, Any]]
    base_config: str = "fashion_scenes_context"
    budget: Budget = field(default_factory=Budget)
    seeds: int = 3
    evaluations: tuple[Evaluation, ...] = (Evaluation(),)
    measures: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    paper: Mapping[str, float] = field(default_factory=dict)
    paper_source: str = ""
    plots: tuple[str, ...] = ("bars",)

    def __post_init__(self) -> None:
        if not self.arms:
            raise ValueError(f"experiment {self.name!r} has no arms")
        unknown = sorted(set(self.measures) - set(MEASURES))
        if unknown:
            raise ValueError(f"experiment {self.name!r}: unknown measure(s) {unknown}; choose from {list(MEASURES)}")
        names = [e.name for e in self.evaluations]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.name!r}: evaluation names repeat: {names}")

    def missing_block(self, arm: str) -> str | None:
        """The context block ``arm`` needs that is not registered (``None``: it can run)."""
        block = self.arms[arm].get(f"{KWARGS}.context")
        return block if isinstance(block, str) and block not in CONTEXT_BLOCKS else None

    def row_names(self) -> list[tuple[str, str]]:
        """The table's rows: ``(arm, evaluation)`` pairs, arms first."""
        return [(arm, e.name) for arm in self.arms for e in self.evaluations if e.applies_to(arm)]


EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to :data:`EXPERIMENTS` (its name must be new)."""
    if experiment.name in EXPERIMENTS:
        raise ValueError(f"experiment {experiment.name!r} is already registered")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def list_experiments() -> list[str]:
    return list(EXPERIMENTS)


def get_experiment(name: str) -> Experiment:
    """The registered experiment ``name``; ``ValueError`` naming the choices otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"experiment name must be a str, got {type(name).__name__} {name!r}")
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {list(EXPERIMENTS)} (hamburger experiments list)")
    return EXPERIMENTS[name]


def ham_arm(**options: Any) -> dict[str, Any]:
    """Overrides of Hamburger / model options (``ham="vq"``, ``grad_mode="bptt"``) under ``model.model_kwargs``."""
    return {f"{KWARGS}.{key}": value for key, value in options.items()}


HAMS = ("nmf", "vq", "cd")
TRUNCATED_STEPS = 3  # differentiable steps of "truncated" (and Neumann terms of any other multi-step mode)


def _gradient_arms() -> dict[str, dict[str, Any]]:
    arms: dict[str, dict[str, Any]] = {}
    for ham in HAMS:
        for mode in GRAD_MODES:  # read at import: a mode added to the solvers is studied too
            if mode in ("one_step", "bptt"):
                arms[f"{ham}-{mode}"] = ham_arm(ham=ham, grad_mode=mode)
            else:
                arms[f"{ham}-{mode}{TRUNCATED_STEPS}"] = ham_arm(ham=ham, grad_mode=mode, grad_steps=TRUNCATED_STEPS)
    return arms


register_experiment(
    Experiment(
        name="gradient",
        description="gradient mode (one_step, bptt, truncated, ...) for NMF, VQ and CD",
        arms=_gradient_arms(),
        measures=("gradient", "train_memory"),
        columns=("off_token_share", "step_ms", "train_memory_mb"),
        paper={
            "nmf-one_step": 78.3,
            "nmf-bptt": 77.4,
            "cd-one_step": 78.1,
            "cd-bptt": 75.0,
            "vq-one_step": 77.7,
            "vq-bptt": 76.6,
        },  # fmt: skip
        paper_source="PASCAL VOC val mIoU % (Table 1 of Geng et al. 2021)",
    )
)
TRAIN_K = (1, 3, 6, 12)
EVAL_K = (1, 3, 6, 7, 12, 20)
register_experiment(
    Experiment(
        name="steps",
        description="solver steps K: trained with K, each model evaluated with every eval K",
        # the implicit default refuses K=1 (no steps without gradient to start its series from): that arm uses BPTT
        arms={
            "K1-bptt": ham_arm(steps=1, eval_steps=1, grad_mode="bptt"),
            **{f"K{k}": ham_arm(steps=k, eval_steps=k) for k in TRAIN_K if k > 1},
        },
        evaluations=tuple(Evaluation(name=f"evalK{k}", solver={"eval_steps": k}) for k in EVAL_K),
        plots=("eval_k",),
    )
)
register_experiment(
    Experiment(
        name="rank",
        description="dictionary rank r of the NMF Hamburger",
        arms={f"r{r}": ham_arm(rank=r) for r in (1, 4, 8, 16, 32, 64)},
    )
)
register_experiment(
    Experiment(
        name="inv_temp",
        description="inverse temperature 1/T of the VQ and CD assignment softmax",
        arms={f"{ham}-t{t:g}": ham_arm(ham=ham, inv_temp=float(t)) for ham in ("vq", "cd") for t in (1, 10, 100, 1000)},
    )
)
CONTEXT_ARMS = {
    "ham-nmf": {f"{KWARGS}.context": "hamburger", **ham_arm(ham="nmf")},
    "ham-vq": {f"{KWARGS}.context": "hamburger", **ham_arm(ham="vq")},
    "ham-cd": {f"{KWARGS}.context": "hamburger", **ham_arm(ham="cd")},
    **{
        name: {f"{KWARGS}.context": name}
        for name in ("none", "identity_ham", "gap", "self_attention", "sdpa", "em", "linear")
    },
}
register_experiment(
    Experiment(
        name="context",
        description="context modules of equal width in the head: Hamburger vs none / identity-ham / GAP / attention",
        arms=CONTEXT_ARMS,
        measures=("cost",),
        columns=("context_mflops", "context_latency_ms", "context_params"),
        plots=("bars", "cost"),
    )
)
register_experiment(
    Experiment(
        name="diagnostics",
        description="does the model use its Hamburger: branch zeroed / mean, gate and RMS over training",
        arms={ham: ham_arm(ham=ham) for ham in HAMS},
        measures=("ablation", "branch_stats", "gradient"),
        columns=("mIoU_zero", "mIoU_mean", "gate", "off_token_share"),
        plots=("bars", "branch_stats"),
    )
)
register_experiment(
    Experiment(
        name="spectrum",
        description="cumulative singular-value energy before and after the Hamburger; code maps",
        arms={ham: ham_arm(ham=ham) for ham in HAMS},
        measures=("spectrum", "code_maps"),
        columns=("energy_before", "energy_after"),
        paper={"nmf": 0.70},
        paper_source="rank-1 singular-value energy after the Hamburger (paper's figure: about 0.53 before -> 0.70)",
        plots=("spectrum", "code_maps"),
    )
)
EVAL_REPEATS = 5
register_experiment(
    Experiment(
        name="eval_dictionary",
        description="eval dictionary: random (official) vs fixed eval init, online and learned dictionaries",
        arms={
            "random": ham_arm(init="random"),
            "online": ham_arm(init="online"),
            "learned": ham_arm(init="learned", grad_mode="bptt"),
        },
        evaluations=(
            Evaluation(name="fixed", solver={"eval_init": "fixed"}, repeats=EVAL_REPEATS, arms=("random",)),
            Evaluation(name="random", solver={"eval_init": "random"}, repeats=EVAL_REPEATS, arms=("random",)),
            Evaluation(name="", repeats=EVAL_REPEATS, arms=("online", "learned")),
        ),
        columns=("mIoU_spread",),
    )
)
