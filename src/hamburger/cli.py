"""``hamburger`` command line: a thin dispatcher; each subcommand lives with its code.

    hamburger demo                     # run a Hamburger block and print its cost against attention
    hamburger bench [options]          # benchmark suite (hamburger.bench)
    hamburger seg {fit,validate,test,predict,compare} ...   # segmentation recipe (hamburger.recipes.seg)
    hamburger gan {fit,sample,evaluate} ...             # GAN recipe (hamburger.recipes.gan)
    hamburger convert ...              # official checkpoint conversion (hamburger.models.convert)
    hamburger configs {list,show,copy} # the YAML configs shipped in the package (hamburger.utils.configs)
    hamburger export SRC --format onnx|torch_export --output FILE   # hamburger.recipes.seg.export
    hamburger experiments {list,run,report} ...   # issue-13 experiments (hamburger.experiments)
    hamburger --version

Subcommand modules are imported only when called, so ``hamburger demo`` needs no extras. A user error
(``ValueError``, ``TypeError``, ``OSError``) is one line on stderr, ``hamburger COMMAND: error: ...``, and exit
code 2; other exceptions keep their traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

EXTRAS = {
    "bench": "bench",
    "seg": "seg",
    "gan": "gan",
    "convert": "seg",
    "export": "export",
    "experiments": "seg",
}  # the pip extra of each command
COMMANDS = {
    "demo": ("hamburger.demo", "run a Hamburger block and print its cost against attention"),
    "bench": ("hamburger.bench.cli", "benchmark Hamburger against attention and other context modules"),
    "seg": ("hamburger.recipes.seg.cli", "train / validate / predict segmentation models"),
    "gan": ("hamburger.recipes.gan.cli", "train / sample / evaluate class-conditional GANs (HamGAN)"),
    "convert": ("hamburger.models.convert", "convert official HamNet / Light-Ham checkpoints"),
    "configs": ("hamburger.cli:configs_main", "list, show or copy the YAML configs shipped in the package"),
    "export": ("hamburger.recipes.seg.export", "export a checkpoint or saved model to ONNX or torch.export"),
    "experiments": ("hamburger.experiments.cli", "re-measure the paper's claims: list, run NAME, report"),
}


def _usage() -> str:
    lines = ["usage: hamburger [--version] COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'hamburger COMMAND --help' for the options of a command."]
    return "\n".join(lines)


def _version() -> str:
    from . import __version__

    return f"hamburger {__version__}"


def configs_main(argv: list[str] | None = None) -> int:
    """``hamburger configs list | show NAME | copy NAME DEST``: the configs shipped in the package."""
    import argparse
    import os
    import shutil
    import tempfile

    from .utils.configs import find_config, list_configs

    class Parser(argparse.ArgumentParser):  # one-line errors, as every hamburger command
        def error(self, message: str) -> NoReturn:
            self.exit(2, f"{self.prog}: error: {message}\n")

    parser = Parser(
        prog="hamburger configs",
        description="The YAML configs shipped in the package; pass a name to 'hamburger seg fit --config NAME'.",
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="action", metavar="{list,show,copy}", parser_class=Parser)
    sub.add_parser("list", help="name, task and description of every packaged config")
    show = sub.add_parser("show", help="print a config")
    show.add_argument("name", help="a config name from 'hamburger configs list' (e.g. fashion_scenes)")
    copy = sub.add_parser("copy", help="write a copy to edit (an existing file is never overwritten)")
    copy.add_argument("name", help="a config name from 'hamburger configs list'")
    copy.add_argument("dest", help="the new file, or an existing folder (the copy is DEST/NAME.yaml)")
    args = parser.parse_args(argv)
    if args.action is None:
        parser.print_help()
        return 0
    if args.action == "list":
        infos = list_configs()
        width = max((len(c.name) for c in infos), default=4)
        print(f"{'name':<{width}}  task  description")
        for c in infos:
            print(f"{c.name:<{width}}  {c.task:<4}  {c.description}")
        return 0
    source = find_config(args.name)
    if args.action == "show":
        print(source.read_text(encoding="utf-8"), end="")
        return 0
    dest = os.path.join(args.dest, source.name) if os.path.isdir(args.dest) else args.dest
    if os.path.lexists(dest):
        raise FileExistsError(f"{dest} exists; not overwriting it (give a new file name or remove it first)")
    folder = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder {folder} of {dest} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(dest)}.", suffix=".tmp")
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is owner-only; the copy should look like any new file
        shutil.copyfile(source, tmp)
        try:
            os.link(tmp, dest)  # atomic, and never replaces a file that appeared meanwhile (FileExistsError)
        except FileExistsError:
            raise
        except OSError:  # no hard links on this file system: exclusive create (still never overwrites)
            with open(dest, "xb") as f:
                f.write(source.read_bytes())
    finally:
        os.remove(tmp)
    print(f"wrote {dest} (from {args.name}); run: hamburger seg fit --config {dest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(_version())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"hamburger: error: unknown command {name!r}; choose from {sorted(COMMANDS)} (hamburger --help)",
              file=sys.stderr)  # fmt: skip
        return 2
    prog = f"hamburger {name}"
    module_name, _, function = COMMANDS[name][0].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:  # an optional dependency of this command is missing
        if not (err.name or "").startswith("hamburger"):
            extra = f" (pip install 'hamburger[{EXTRAS[name]}]')" if name in EXTRAS else ""
            print(f"{prog}: error: this command needs the package {err.name!r}{extra}", file=sys.stderr)
            return 2
        raise
    try:
        result = getattr(module, function or "main")(rest)
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
