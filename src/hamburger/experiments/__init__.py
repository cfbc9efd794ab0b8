"""Issue-13 experiments: each studies one factor at a fixed budget over several seeds (``hamburger experiments``).

:mod:`.registry` defines the experiments, :mod:`.runner` trains and measures them through the seg recipe and
writes the results, :mod:`.report` assembles ``docs/results.md`` from the results folders.
"""

from __future__ import annotations

from .registry import EXPERIMENTS, Budget, Evaluation, Experiment, get_experiment, list_experiments

__all__ = ["EXPERIMENTS", "Budget", "Evaluation", "Experiment", "get_experiment", "list_experiments"]
