"""docs/tutorial.py runs as written: the block leaves the net unchanged at init, the loss goes down, the saved
state_dict loads back to identical outputs, and nothing is left in the working directory."""

from __future__ import annotations

import runpy
import time
from pathlib import Path

import pytest
import torch

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.py"


def test_tutorial_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # the script seeds the global RNG; keep it from other tests
        names = runpy.run_path(str(TUTORIAL), run_name="__main__")
    seconds = time.perf_counter() - start
    assert names["unchanged_at_init"] is True
    assert names["reloaded_equal"] is True
    losses = names["losses"]
    assert len(losses) == 20
    assert names["last_loss"] < 0.6 * names["first_loss"], losses
    assert names["net"][3].coef_ham.item() != 0.0  # training opened the gate
    out = capsys.readouterr().out
    assert "output unchanged by the inserted Hamburger at init: True" in out
    assert f"last steps {names['last_loss']:.4f}" in out
    assert list(tmp_path.iterdir()) == []  # saved in a temporary folder, removed afterwards
    assert seconds < 60, f"the tutorial took {seconds:.1f} s"
