"""``hamburger convert CKPT OUT_DIR ...``: the command line of the converter (user errors: one line, exit 2)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from ...utils.cli import ArgumentParser
from .mapping import convert_state_dict
from .options import SOURCES, read_mmseg_config
from .read import read_checkpoint
from .write import check_out_dir, write_conversion

DESCRIPTION = "Convert official Light-Ham / SegNeXt / HamNet checkpoints to this library's heads."


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="hamburger convert", description=DESCRIPTION)
    parser.add_argument("checkpoint", help="official checkpoint (.pth) or state_dict file (read safely)")
    parser.add_argument("out_dir", help="output directory (new, empty, or a previous conversion's)")
    parser.add_argument("--source", default="auto", choices=("auto", *SOURCES))
    parser.add_argument("--ham-kwargs", default=None, help="official ham_kwargs as JSON, e.g. '{\"MD_R\": 16}'")
    parser.add_argument(
        "--mmseg-config", default=None, metavar="FILE.py", help="mmseg config to read ham_kwargs from (never executed)"
    )
    parser.add_argument("--in-channels", default=None, help="comma-separated channels of the head's input levels")
    parser.add_argument("--model", default=None, help="registered model to load everything into (save_pretrained)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=JSON", help="extra --model option, e.g. output_stride=16"
    )
    return parser


def _one_line(err: BaseException) -> str:
    return "; ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


class _Buffer(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname.lower()}: {record.getMessage()}")


def _run(args: argparse.Namespace) -> str:
    ham_kwargs: dict[str, Any] = {}
    head_check: dict[str, Any] = {}
    if args.mmseg_config is not None:
        config = read_mmseg_config(args.mmseg_config)
        ham_kwargs.update(config.ham_kwargs)
        head_check = config.head
    if args.ham_kwargs is not None:
        try:
            given = json.loads(args.ham_kwargs)
        except json.JSONDecodeError as err:
            raise ValueError(f"--ham-kwargs is not JSON ({err}): {args.ham_kwargs!r}") from None
        if not isinstance(given, dict):
            raise ValueError(f"--ham-kwargs must be a JSON object, got {args.ham_kwargs!r}")
        ham_kwargs.update(given)
    in_channels = head_check.get("in_channels")
    if args.in_channels is not None:
        try:
            in_channels = [int(c) for c in args.in_channels.split(",")]
        except ValueError:
            raise ValueError(f"--in-channels expects comma-separated ints, got {args.in_channels!r}") from None
    elif isinstance(in_channels, int):
        in_channels = [in_channels]
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=JSON, got {item!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"--set {key}: {value!r} is not JSON (strings need quotes: {key}='\"...\"')") from None
    check_out_dir(args.out_dir)  # before the (slow) reading
    conversion = convert_state_dict(
        read_checkpoint(args.checkpoint), source=args.source, ham_kwargs=ham_kwargs, in_channels=in_channels
    )
    for key in ("channels", "ham_channels", "num_classes"):
        if key in head_check and head_check[key] != conversion.head_kwargs[key]:
            raise ValueError(
                f"--mmseg-config says {key}={head_check[key]!r} but the checkpoint has {conversion.head_kwargs[key]}"
                " (a config of another model?)"
            )
    write_conversion(conversion, args.out_dir, model=args.model, overrides=overrides)
    return conversion.report()


def main(argv: list[str] | None = None) -> int:
    """``hamburger convert``: convert a checkpoint and write our files to OUT_DIR."""
    args = _parser().parse_args(argv)
    log = logging.getLogger(__name__.rsplit(".", 1)[0])
    buffer, propagate = _Buffer(), log.propagate
    log.addHandler(buffer)
    log.propagate = False  # warnings are shown after a success; a failure is one line
    try:
        report = _run(args)
    except (ValueError, TypeError, OSError) as err:
        print(f"hamburger convert: error: {_one_line(err)}", file=sys.stderr)
        return 2
    finally:
        log.removeHandler(buffer)
        log.propagate = propagate
    for line in buffer.lines:
        print(line, file=sys.stderr)
    print(report)
    print(f"written to {args.out_dir}")
    return 0
