"""One source for the version: pyproject.toml reads ``hamburger.__version__``; the installed metadata agrees."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

import hamburger

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_installed_metadata_version_is_the_package_version():
    assert importlib.metadata.version("hamburger") == hamburger.__version__


def test_version_is_pep440():
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", hamburger.__version__)


def test_pyproject_takes_the_version_from_the_package():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    assert "version" not in data["project"], "the version lives in src/hamburger/__init__.py only"
    assert "version" in data["project"]["dynamic"]
    assert data["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "hamburger.__version__"}
    # what a build would write into the metadata
    from setuptools.config.pyprojecttoml import read_configuration

    assert read_configuration(PYPROJECT)["project"]["version"] == hamburger.__version__


def test_pytest_rejects_unknown_markers_and_jsonargparse_is_bounded():
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    assert "--strict-markers" in data["tool"]["pytest"]["ini_options"]["addopts"]
    seg = data["project"]["optional-dependencies"]["seg"]
    assert any(d.startswith("jsonargparse") and ">=4.30" in d and "<5" in d for d in seg), seg
