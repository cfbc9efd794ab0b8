"""Python API of ``hamburger gan fit``: :func:`fit`."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["fit", "overrides_to_args"]


def overrides_to_args(overrides: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``{"trainer": {"max_steps": 10}, "model.n_critic": 2}`` -> ``["--trainer.max_steps=10",
    "--model.n_critic=2"]`` (values as JSON, which the command line's YAML parser reads back unchanged).

    A mapping under a key whose name is a dict-valued option (``model_kwargs``, ``classes``) is kept whole.
    """
    args: list[str] = []
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and name in ("trainer", "model", "data", "checkpoint", "curves", "samples",
                                                   "progress"):  # fmt: skip
            args += overrides_to_args(value, prefix=f"{name}.")
        else:
            args.append(f"--{name}={json.dumps(value) if not isinstance(value, str) else value}")
    return args


def fit(config: str | os.PathLike | None = None, **overrides: Any) -> dict[str, Any]:
    """Train like ``hamburger gan fit --config CONFIG [--key=value ...]``; returns the fit summary.

    Args:
        config: a config file or the name of a packaged one (``"fashion_hamgan"``); ``None``: the defaults.
        **overrides: options as nested mappings (``trainer={"max_steps": 100}``) or dotted names given as a
            mapping (``**{"model.n_critic": 2}``); ``ckpt_path="last"`` resumes.

    Raises:
        ValueError, TypeError, OSError: bad options, files or folders (the messages the command line prints).
    """
    from .cli import build_cli

    argv = ["fit"]
    if config is not None:
        argv += ["--config", os.fspath(config)]
    argv += overrides_to_args(overrides)
    cli = build_cli(argv)
    return dict(cli.summary or {})
