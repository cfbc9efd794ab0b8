"""``hamburger`` command line: a thin dispatcher; each subcommand lives with its code.

    hamburger demo                     # run a Hamburger block and print its cost against attention
    hamburger bench [options]          # benchmark suite (hamburger.bench)
    hamburger seg {fit,validate,test,predict,compare} ...   # segmentation recipe (hamburger.recipes.seg)
    hamburger convert ...              # official checkpoint conversion (hamburger.models.convert)

Subcommand modules are imported only when called, so ``hamburger demo`` needs no extras. A user error
(``ValueError``, ``TypeError``, ``OSError``) is one line on stderr, ``hamburger COMMAND: error: ...``, and exit
code 2; other exceptions keep their traceback.
"""

from __future__ import annotations

import importlib
import sys

EXTRAS = {"bench": "bench", "seg": "seg", "convert": "seg"}  # the pip extra each command's imports need
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
        print(f"hamburger: error: unknown command {name!r}; choose from {sorted(COMMANDS)} (hamburger --help)",
              file=sys.stderr)  # fmt: skip
        return 2
    prog = f"hamburger {name}"
    try:
        module = importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as err:  # an optional dependency of this command is missing
        if not (err.name or "").startswith("hamburger"):
            extra = f" (pip install 'hamburger[{EXTRAS[name]}]')" if name in EXTRAS else ""
            print(f"{prog}: error: this command needs the package {err.name!r}{extra}", file=sys.stderr)
            return 2
        raise
    try:
        result = module.main(rest)
    except USER_ERRORS as err:  # a bad value, file or folder: one line, no traceback
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    return int(result or 0)


#: what counts as a user's mistake in a command (other exceptions keep their traceback)
USER_ERRORS = (ValueError, TypeError, OSError)


def _one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


if __name__ == "__main__":
    raise SystemExit(main())
