"""docs/api.md is what ``python docs/make_api.py`` writes from the current public signatures and docstrings."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def make_api() -> dict:
    return runpy.run_path(str(ROOT / "docs" / "make_api.py"))


def test_api_md_is_up_to_date(make_api: dict, tmp_path: Path) -> None:
    out = tmp_path / "api.md"
    assert make_api["main"]([str(out)]) == 0
    committed = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == committed, (
        "docs/api.md is out of date with the public signatures/docstrings: run `python docs/make_api.py`"
    )


def test_api_md_lists_public_names(make_api: dict) -> None:
    import hamburger

    text = make_api["render"]()
    for name in hamburger.__all__:
        assert f"### `{name}`" in text
    assert "class Hamburger(channels: 'int', *," in text
    assert "## `hamburger.recipes.seg.predict`" in text and "## `hamburger.training.rng`" in text
    assert " at 0x" not in text


def test_first_paragraph_and_signature(make_api: dict) -> None:
    def f(x: int, *, y: float = 1.0) -> int:
        """First line
        continues here.

        Second paragraph."""
        return x

    assert make_api["first_paragraph"](f) == "First line continues here."
    assert make_api["signature"]("f", f) == "f(x: 'int', *, y: 'float' = 1.0) -> 'int'"
    assert make_api["signature"]("N", 3) == "N: int"
