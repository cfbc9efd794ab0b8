"""Import direction: cli -> recipes -> training -> models -> heads -> blocks -> solvers, layers (bench: blocks, layers).

A module may import hamburger subpackages of its own level or below, never above.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "src" / "hamburger"
LEVEL = {
    "utils": -1,
    "solvers": 0,
    "layers": 0,
    "blocks": 1,
    "heads": 2,
    "models": 3,
    "training": 4,
    "recipes": 5,
    "bench": 5,
    "cli": 6,
    "demo": 6,
    "__main__": 6,
}
FORBIDDEN_SIBLINGS = {
    ("solvers", "layers"),
    ("layers", "solvers"),
    ("bench", "recipes"),
    ("recipes", "bench"),
    ("bench", "training"),
}


def _hamburger_imports(path: pathlib.Path) -> set[str]:
    """Top-level hamburger subpackages imported by ``path`` (absolute and relative imports)."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level]
                target = base + (node.module.split(".") if node.module else [])
                if not target:  # "from . import x" in the package root
                    target = [alias.name for alias in node.names][:1]
            elif node.module and node.module.split(".")[0] == "hamburger":
                target = node.module.split(".")[1:] or [alias.name for alias in node.names][:1]
            else:
                continue
            if target:
                found.add(target[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names = alias.name.split(".")
                if names[0] == "hamburger" and len(names) > 1:
                    found.add(names[1])
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0].removesuffix(".py") in LEVEL)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    for target in _hamburger_imports(path):
        if target not in LEVEL:
            continue
        assert (own, target) not in FORBIDDEN_SIBLINGS, f"{path.name}: {own} must not import {target}"
        assert LEVEL[target] <= LEVEL[own], f"{path.relative_to(PACKAGE)} ({own}) imports {target}, a higher layer"
