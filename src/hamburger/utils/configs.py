"""The YAML configs shipped inside the package (``hamburger/configs/<task>/<name>.yaml``), found by name.

``hamburger seg fit --config fashion_scenes`` works from any folder: :func:`resolve_config` returns an existing
file unchanged (a path always wins) and otherwise looks a bare name (``fashion_scenes``, ``fashion_scenes.yaml``
or ``seg/fashion_scenes``) up among the packaged configs. ``hamburger configs list / show / copy`` are built on
:func:`list_configs` and :func:`find_config`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["ConfigInfo", "config_root", "find_config", "list_configs", "resolve_config"]

SUFFIX = ".yaml"


@dataclass(frozen=True)
class ConfigInfo:
    """A packaged config: ``name`` (file stem), ``task`` (its folder, e.g. ``"seg"``), the first line of its
    leading comment as ``description``, and its ``path`` on disk."""

    name: str
    task: str
    description: str
    path: Path


def config_root() -> Path:
    """The folder of the packaged configs (``<site-packages>/hamburger/configs``)."""
    root = resources.files("hamburger").joinpath("configs")
    return Path(str(root))  # a real folder: the package is installed unzipped


def _description(path: Path) -> str:
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = line.strip()
            if not text:
                continue
            return text.lstrip("#").strip() if text.startswith("#") else ""
    return ""


def list_configs(task: str | None = None) -> list[ConfigInfo]:
    """Every packaged config (of ``task`` when given), sorted by task and name."""
    root = config_root()
    found = []
    for path in sorted(root.glob(f"*/*{SUFFIX}")):
        if task is None or path.parent.name == task:
            found.append(ConfigInfo(path.stem, path.parent.name, _description(path), path))
    return found


def find_config(name: str, *, task: str | None = None) -> Path:
    """The packaged config called ``name`` (``fashion_scenes``, ``fashion_scenes.yaml`` or ``seg/fashion_scenes``).

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: no packaged config has that name (the message lists the available ones).
    """
    if not isinstance(name, str):
        raise TypeError(f"config name must be a str, got {type(name).__name__}")
    stem, wanted_task = name.removesuffix(SUFFIX), task
    if "/" in stem:
        wanted_task, stem = stem.split("/", 1)
    configs = list_configs(wanted_task)
    matches = [c for c in configs if c.name == stem]
    if len(matches) == 1:
        return matches[0].path
    if matches:  # the same name under two tasks
        choices = [f"{c.task}/{c.name}" for c in matches]
        raise ValueError(f"config name {name!r} is ambiguous: give one of {choices}")
    available = ", ".join(c.name for c in configs) or "none"
    raise ValueError(f"no config file or packaged config named {name!r}; packaged configs: {available}")


def resolve_config(value: str) -> str:
    """``value`` if it names an existing file, else the path of the packaged config of that name.

    A value with a folder in it (``configs/x.yaml``, ``./x.yaml``) that does not exist is returned unchanged, so the
    caller reports the missing file; a bare name that is neither a file nor a packaged config raises
    ``ValueError`` listing the packaged ones.
    """
    if not isinstance(value, str):
        raise TypeError(f"--config must be a str, got {type(value).__name__}")
    if os.path.exists(value) or not value:
        return value
    parts = value.replace(os.sep, "/").split("/")
    if len(parts) > 2 or (len(parts) == 2 and not (config_root() / parts[0]).is_dir()) or value.startswith("."):
        return value  # a path to a file that does not exist: the caller names it
    return os.fspath(find_config(value.replace(os.sep, "/")))
