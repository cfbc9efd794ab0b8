"""``hamburger experiments``: the issue-13 studies, each at a fixed budget over several seeds.

    hamburger experiments list
    hamburger experiments run NAME [--quick] [--seeds N] [--steps N] [--val_scenes N] [--jobs N]
        [--output DIR] [--set key=value ...] [--arms ARM ...]
    hamburger experiments report [--results runs/experiments] [--out docs/results.md]

``run`` trains every (arm, seed) through the seg recipe (:mod:`hamburger.experiments.runner`), prints the table and
the paths it wrote (default ``runs/experiments/NAME``); a rerun skips the finished runs. ``--quick`` (3 steps, one
seed unless ``--seeds``, 4 validation scenes) checks the outputs' structure only. User errors are one line on
stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ..utils.cli import ArgumentParser
from .registry import EXPERIMENTS, get_experiment

__all__ = ["main"]

PROG = "hamburger experiments"


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description="Issue-13 experiments: one factor at a fixed budget, >= 3 seeds.")
    sub = parser.add_subparsers(dest="action", metavar="{list,run,report}", parser_class=ArgumentParser)
    sub.add_parser("list", help="name, description, arms, seeds and budget of every experiment")
    run = sub.add_parser("run", help="train, evaluate and measure every (arm, seed) of an experiment")
    run.add_argument("name", help=f"experiment name: {', '.join(EXPERIMENTS)}")
    run.add_argument("--quick", action="store_true", help="3 steps, 1 seed, 4 val scenes: checks the outputs only")
    run.add_argument(
        "--seeds", type=_positive, default=None, metavar="N", help="seeds per arm (default: the experiment's)"
    )
    run.add_argument("--steps", type=_positive, default=None, metavar="N", help="training steps per run")
    run.add_argument("--val_scenes", type=_positive, default=None, metavar="N", help="validation scenes")
    run.add_argument("--batch_size", type=_positive, default=None, metavar="N", help="training batch size")
    run.add_argument("--jobs", type=_positive, default=1, metavar="N", help="worker processes (default 1)")
    run.add_argument("--output", default=None, metavar="DIR", help="results folder (default runs/experiments/NAME)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                     help="seg config override for every run, e.g. --set data.num_workers=2")  # fmt: skip
    run.add_argument("--arms", nargs="+", default=None, metavar="ARM", help="run only these arms")
    report = sub.add_parser("report", help="assemble docs/results.md from the results folders")
    report.add_argument("--results", default="runs/experiments", help="folder of the experiments' results folders")
    report.add_argument("--out", default="docs/results.md", help="the markdown file to write")
    report.add_argument("--notes", default=None, help="folder of the verdicts NAME.md (default: OUT's results_notes/)")
    return parser


def _list() -> str:
    lines = []
    for exp in EXPERIMENTS.values():
        b = exp.budget
        lines.append(f"{exp.name}: {exp.description}")
        lines.append(f"  base {exp.base_config}; {exp.seeds} seeds; budget {b.steps} steps x {b.batch_size} scenes, "
                     f"{b.val_scenes} val scenes")  # fmt: skip
        lines.append(f"  arms ({len(exp.arms)}): {', '.join(exp.arms)}")
        evaluations = [e.name for e in exp.evaluations if e.name]
        if evaluations:
            lines.append(f"  evaluations: {', '.join(evaluations)}")
        if exp.measures:
            lines.append(f"  measures: {', '.join(exp.measures)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``hamburger experiments ...``; returns the exit code."""
    from dataclasses import replace

    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    if args.action is None:
        parser.print_help()
        return 0
    if args.action == "list":
        print(_list())
        return 0
    if args.action == "report":
        from .report import write_report

        path = write_report(args.results, args.out, notes=args.notes)
        print(f"wrote {path}")
        return 0
    from .runner import QUICK_BUDGET, RunSettings, format_table, parse_sets, run_experiment

    try:
        experiment = get_experiment(args.name)
        sets = parse_sets(args.sets)
        budget = QUICK_BUDGET if args.quick else experiment.budget
        changes = {k: getattr(args, k) for k in ("steps", "val_scenes", "batch_size") if getattr(args, k) is not None}
        settings = RunSettings(
            output=args.output or os.path.join("runs", "experiments", experiment.name),
            seeds=args.seeds, budget=replace(budget, **changes) if changes else None, sets=sets, jobs=args.jobs,
            quick=args.quick, arms=tuple(args.arms) if args.arms else None,
        )  # fmt: skip
        report = run_experiment(experiment, settings)
    except NotImplementedError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as err:
        print(f"{PROG}: error: {' '.join(str(err).split()) or type(err).__name__}", file=sys.stderr)
        return 2
    print(format_table(experiment, report), end="")
    out = settings.output
    written = ["results.json", "results.csv", "table.md"]
    written += sorted(f for f in os.listdir(out) if f.endswith(".png"))
    print(f"wrote {', '.join(os.path.join(out, f) for f in written)} (runs in {os.path.join(out, 'runs')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
