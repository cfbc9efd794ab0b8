"""``hamburger`` command line: a thin dispatcher; each subcommand lives with its code.

    hamburger demo                     # run a Hamburger block and print its cost against attention
    hamburger bench [options]          # benchmark suite (hamburger.bench)
    hamburger seg {fit,validate,predict} ...   # segmentation recipe (hamburger.recipes.seg)
    hamburger convert ...              # official checkpoint conversion (hamburger.models.convert)

Subcommand modules are imported only when called, so ``hamburger demo`` needs no extras.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "demo": ("hamburger.demo", "run a Hamburger block and print its cost against attention"),
    "bench": ("hamburger.bench.cli", "benchmark Hamburger against attention and other context modules"),
    "seg": ("hamburger.recipes.seg.cli", "train / validate / predict segmentation models"),
    "convert": ("hamburger.models.convert", "convert official HamNet / Light-Ham checkpoints"),
}


def _usage() -> str:
    lines = ["usage: hamburger COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'hamburger COMMAND --help' for the options of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"hamburger: unknown command {name!r}; choose from {sorted(COMMANDS)}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    result = module.main(rest)
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
