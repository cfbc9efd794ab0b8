"""Package-level checks: the README usage example runs; version and public API are exposed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hamburger as hb

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- example:start -->", "<!-- example:end -->"


def _readme_example() -> str:
    if not README.is_file():
        pytest.skip(f"{README} does not exist yet")
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        pytest.skip(f"README.md has no {START} ... {END} markers yet")
    section = text.split(START, 1)[1].split(END, 1)[0]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    if match is None:
        pytest.fail("the README example section has no ```python block")
    return match.group(1)


def test_readme_example_runs():
    code = _readme_example()
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README


def test_public_api():
    assert hb.__version__
    for name in ("NMF", "VQ", "CD", "Hamburger", "HamburgerTokens", "MatrixDecomposition", "create_solver", "SOLVERS"):
        assert hasattr(hb, name), name
    assert set(hb.SOLVERS) == {"nmf", "vq", "cd"}
    assert hb.NMF(rank=64, steps=6, eval_steps=7, groups=1).rank == 64
    assert hb.VQ(8, inv_temp=100).inv_temp == 100.0
    assert hb.CD(8, inv_temp=100, ridge=0.1).ridge == 0.1
