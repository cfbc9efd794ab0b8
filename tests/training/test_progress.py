"""Progress output of the training core: the periodic line, the step bar, the fit summary and the noise filters."""

from __future__ import annotations

import io
import logging
import re
import warnings

import pytest
import torch

pytest.importorskip("lightning")

import lightning.pytorch as pl  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from hamburger.training import progress  # noqa: E402
from hamburger.training.cli import QUIET_WARNINGS, quiet_libraries  # noqa: E402
from hamburger.training.progress import (  # noqa: E402
    ProgressLog,
    StepProgressBar,
    best_point,
    fit_summary,
    format_duration,
)

LINE = re.compile(r"^step (\d+)/(\d+)  loss \S+  lr \d\.\de[+-]\d\d  [\d.]+ it/s  ETA (\d+s|\d+m\d\ds)")


class Toy(pl.LightningModule):
    """Loss 1/(step+1) on a linear layer, a validation score that rises by 0.1 per validation."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(2, 1)
        self.validations = 0

    def training_step(self, batch, idx):
        (x,) = batch
        return self.net(x).pow(2).mean() * 0 + 1.0 / (self.global_step + 1)

    def validation_step(self, batch, idx) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.validations += 1
            self.log("val/score", 0.1 * self.validations if self.validations != 2 else 0.9, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.25)


def _fit(tmp_path, callbacks, *, steps: int = 12, **trainer_kwargs) -> pl.Trainer:
    train = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2)  # 4 steps per epoch
    val = DataLoader(TensorDataset(torch.randn(2, 2)), batch_size=2)
    kwargs = {
        "default_root_dir": tmp_path, "max_steps": steps, "val_check_interval": 4, "check_val_every_n_epoch": None,
        "logger": False, "enable_checkpointing": False, "enable_model_summary": False, "num_sanity_val_steps": 0,
        "accelerator": "cpu", "callbacks": callbacks, "enable_progress_bar": False, **trainer_kwargs,
    }  # fmt: skip
    trainer = pl.Trainer(**kwargs)
    trainer.fit(Toy(), train, val)
    return trainer


def test_line_every_n_steps_with_fields(tmp_path) -> None:
    out = io.StringIO()
    log = ProgressLog(every_n_steps=3)
    log.stream = out
    _fit(tmp_path, [log])
    lines = out.getvalue().splitlines()
    steps = [m.group(1) for m in map(LINE.match, lines) if m]
    assert steps == ["3", "6", "9", "12"]  # every 3 steps and the last one; nothing else but validations
    assert [ln for ln in lines if not LINE.match(ln)] == [
        "validation at step 4/12: val/score 0.1",
        "validation at step 8/12: val/score 0.9",
        "validation at step 12/12: val/score 0.3",
    ]
    by_step = {m.group(1): ln for ln, m in zip(lines, map(LINE.match, lines), strict=True) if m}
    assert "loss 0.1667" in by_step["6"]  # step 6's output: 1 / (5 + 1)
    assert by_step["6"].endswith("val/score 0.1 (step 4)")  # the newest validation and its step
    assert by_step["12"].endswith("val/score 0.9 (step 8)")  # step 12's validation comes after its line
    assert log.history == {"val/score": [(4, pytest.approx(0.1)), (8, pytest.approx(0.9)), (12, pytest.approx(0.3))]}


def test_default_interval_is_a_fiftieth_of_the_run(tmp_path) -> None:
    out = io.StringIO()
    log = ProgressLog()
    log.stream = out
    _fit(tmp_path, [log], steps=100, val_check_interval=50)
    steps = [int(m.group(1)) for m in map(LINE.match, out.getvalue().splitlines()) if m]
    assert steps == list(range(2, 101, 2))  # max(1, 100 // 50) = 2: 50 lines, whatever the run length


def test_no_lines_on_a_terminal_with_a_bar(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(progress, "is_terminal", lambda stream=None: True)
    out, bar_out = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", bar_out)  # where tqdm draws
    log = ProgressLog(every_n_steps=1)
    log.stream = out
    _fit(tmp_path, [log, StepProgressBar()], enable_progress_bar=True)
    assert out.getvalue() == ""  # the bar shows progress
    drawn = bar_out.getvalue()
    assert "12/12" in drawn and "Epoch" not in drawn  # one bar over the run's steps, not per-epoch bars
    assert "v_num" not in drawn and "val/score" in drawn


def test_bar_draws_nothing_when_stdout_is_not_a_terminal(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(progress, "is_terminal", lambda stream=None: False)
    bar_out, lines = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", bar_out)
    log = ProgressLog(every_n_steps=6)
    log.stream = lines
    _fit(tmp_path, [log, StepProgressBar()], enable_progress_bar=True)
    assert bar_out.getvalue() == ""  # no tqdm redraws in a file
    assert len([ln for ln in lines.getvalue().splitlines() if LINE.match(ln)]) == 2


def test_mode_never_and_always(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(progress, "is_terminal", lambda stream=None: True)
    never, always = ProgressLog(every_n_steps=4, mode="never"), ProgressLog(every_n_steps=4, mode="always")
    never.stream, always.stream = io.StringIO(), io.StringIO()
    _fit(tmp_path, [never])
    _fit(tmp_path, [always])
    assert never.stream.getvalue() == ""
    assert len([ln for ln in always.stream.getvalue().splitlines() if LINE.match(ln)]) == 3


def test_history_survives_a_checkpoint() -> None:
    log = ProgressLog()
    log.history = {"val/mIoU": [(500, 0.25), (1000, 0.5)]}
    again = ProgressLog()
    again.load_state_dict(log.state_dict())
    assert again.history == {"val/mIoU": [(500, 0.25), (1000, 0.5)]}


def test_fit_summary_final_and_best(tmp_path) -> None:
    log = ProgressLog(mode="never")
    trainer = _fit(tmp_path, [log])
    summary = fit_summary(trainer, metric="val/score", mode="max", seconds=3.5)
    assert summary["final"] == {"step": 12, "value": pytest.approx(0.3)}
    assert summary["best"] == {"step": 8, "value": pytest.approx(0.9)}
    assert summary["steps"] == 12 and summary["max_steps"] == 12 and summary["wall_seconds"] == 3.5
    low = fit_summary(trainer, metric="val/score", mode="min")
    assert low["best"] == {"step": 4, "value": pytest.approx(0.1)}


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0s"), (45, "45s"), (234, "3m54s"), (7500, "2h05m"), (float("inf"), "?")]
)
def test_format_duration(seconds, text) -> None:
    assert format_duration(seconds) == text


def test_best_point_prefers_the_earliest_tie() -> None:
    assert best_point([(1, 0.5), (2, 0.7), (3, 0.7)], "max") == (2, 0.7)
    assert best_point([(1, 0.5), (2, 0.2), (3, 0.2)], "min") == (2, 0.2)
    assert best_point([], "max") is None


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="every_n_steps"):
        ProgressLog(every_n_steps=0)
    with pytest.raises(TypeError, match="every_n_steps"):
        ProgressLog(every_n_steps=2.5)
    with pytest.raises(ValueError, match="mode must be one of"):
        ProgressLog(mode="sometimes")


def test_quiet_libraries_is_scoped() -> None:
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    rank_zero.addHandler(handler)
    old_level = rank_zero.level
    rank_zero.setLevel(logging.INFO)
    try:
        message = "The number of training batches (4) is smaller than the logging interval Trainer(...)"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with quiet_libraries():
                warnings.warn(message, UserWarning, stacklevel=1)
                rank_zero.info("GPU available: False, used: False")
                rank_zero.info("GPU available: True (cuda), used: False")
            warnings.warn(message, UserWarning, stacklevel=1)  # outside the block: shown again
            rank_zero.info("Seed set to 3")
        assert [str(w.message) for w in caught] == [message]
        assert seen == ["GPU available: True (cuda), used: False", "Seed set to 3"]
        assert not rank_zero.filters
    finally:
        rank_zero.removeHandler(handler)
        rank_zero.setLevel(old_level)
    assert all(isinstance(p, str) for p in QUIET_WARNINGS)
