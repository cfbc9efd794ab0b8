"""A command-line parser with one-line errors, shared by every ``hamburger`` command (standard library only)."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

__all__ = ["ArgumentParser"]


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with one-line errors (``<prog>: error: <message>``, exit 2) and no
    abbreviated options; ``--help`` still prints the full usage."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        text = "; ".join(line.strip() for line in str(message).splitlines() if line.strip()) or "invalid arguments"
        self.exit(2, f"{self.prog}: error: {text}\n")
