"""``seg compare`` timing protocol: an untimed warm-up run first, every run's first steps untimed, the same for every
model whatever their order; and the per-class IoU block of the table. No assertion depends on real timings."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

pytest.importorskip("lightning")

from hamburger.recipes.seg.compare import format_comparison  # noqa: E402
from hamburger.training import compare as core  # noqa: E402
from hamburger.training.compare import StepTimer, compare_runs  # noqa: E402


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run_steps(timer: StepTimer, clock: FakeClock, durations: list[float], gap: float = 100.0) -> None:
    """Drive the timer's hooks through steps of the given durations, with ``gap`` seconds (data loading,
    validation) between two steps."""
    module = SimpleNamespace(device=None)
    for i, seconds in enumerate(durations):
        clock.now += gap
        timer.on_train_batch_start(None, module, None, i)
        clock.now += seconds
        timer.on_train_batch_end(None, module, None, None, i)


def test_step_timer_excludes_the_warmup_steps_and_what_lies_between_steps(monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(core.time, "perf_counter", clock)
    timer = StepTimer(warmup_steps=3)
    _run_steps(timer, clock, [50.0, 20.0, 10.0, 2.0, 2.0, 2.0, 2.0])  # slow first steps: warm-up
    assert (timer.warmup_seen, timer.timed_steps) == (3, 4)
    assert timer.timed_seconds == 8.0 and timer.seconds_per_step == 2.0  # neither the warm-up nor the gaps
    short = StepTimer(warmup_steps=3)
    _run_steps(short, clock, [1.0, 1.0])
    assert (short.warmup_seen, short.timed_steps, short.seconds_per_step) == (2, 0, None)
    none = StepTimer(warmup_steps=0)
    _run_steps(none, clock, [5.0, 1.0])
    assert none.seconds_per_step == 3.0
    with pytest.raises(ValueError, match="warmup_steps"):
        StepTimer(warmup_steps=-1)


class FakeCLI:
    """What ``build_cli(argv)`` returns: it 'fits' with the StepTimer the argv asks for, and a step that takes
    ``STEP[model]`` seconds on a fake clock, except that the first step of the process takes 1000 s (a
    one-time cost such as CUDA initialisation) and the first 2 steps of each run 10 s more (warm-up)."""

    STEP = {"ham": 3.0, "fcn": 1.0}

    def __init__(self, argv: list[str], clock: FakeClock, log: list, state: dict) -> None:
        options = dict(a.split("=", 1) for a in argv if a.startswith("--") and "=" in a and "callbacks" not in a)
        model, steps = options["--model.model"], int(options.get("--trainer.max_steps", "8"))
        callbacks = [
            StepTimer(**json.loads(a.split("=", 1)[1])["init_args"])
            for a in argv
            if a.startswith("--trainer.callbacks+=")
        ]
        log.append({"model": model, "steps": steps, "root": options["--trainer.default_root_dir"],
                    "timers": [t.warmup_steps for t in callbacks]})  # fmt: skip
        os.makedirs(options["--trainer.default_root_dir"], exist_ok=True)
        durations = []
        for i in range(steps):
            extra = 1000.0 if not state.get("warm") else 0.0
            state["warm"] = True
            durations.append(self.STEP[model] + extra + (10.0 if i < 2 else 0.0))
        for timer in callbacks:
            _run_steps(timer, clock, durations)
        self.fit_seconds = 1.0
        self.trainer = SimpleNamespace(callbacks=callbacks, global_step=steps, checkpoint_callback=None,
                                       validate=lambda *a, **k: None)  # fmt: skip
        self.model = SimpleNamespace(parameters=lambda: [], last_scores=None)
        self.datamodule = None


def _compare(order: list[str], tmp_path, monkeypatch, **kwargs) -> tuple[list[dict], list[dict]]:
    clock, log, state = FakeClock(), [], {}
    monkeypatch.setattr(core.time, "perf_counter", clock)
    rows = compare_runs(
        lambda argv: FakeCLI(argv, clock, log, state), config="c.yaml", models=order, root=str(tmp_path),
        overrides=["--trainer.max_steps=8"], score=lambda cli: {}, **kwargs,
    )  # fmt: skip
    return rows, log


def test_timing_protocol_is_symmetric_in_the_model_order(tmp_path, monkeypatch) -> None:
    forward, log_f = _compare(["ham", "fcn"], tmp_path / "f", monkeypatch, timing_warmup=2)
    backward, log_b = _compare(["fcn", "ham"], tmp_path / "b", monkeypatch, timing_warmup=2)
    # an untimed warm-up run of the first model (2 steps, no timer, in a scratch folder that is removed) ...
    for log, first in ((log_f, "ham"), (log_b, "fcn")):
        assert log[0]["model"] == first and log[0]["steps"] == 2 and log[0]["timers"] == []
        assert os.path.basename(log[0]["root"]).startswith(".warmup-") and not os.path.exists(log[0]["root"])
        # ... then every model once, each with a timer that skips the same 2 steps
        assert [(e["model"], e["steps"], e["timers"]) for e in log[1:]] == [(m, 8, [2]) for m in ("ham", "fcn")][
            :: 1 if first == "ham" else -1
        ]
    by_model = {o: {r["model"]: r for r in rows} for o, rows in (("f", forward), ("b", backward))}
    for model, step in FakeCLI.STEP.items():
        for order in ("f", "b"):
            row = by_model[order][model]
            assert (row["warmup_steps"], row["timed_steps"], row["steps"]) == (2, 6, 8)
            assert row["step_seconds"] == step  # neither the process's one-time cost nor the run's warm-up
    assert {m: r["step_seconds"] for m, r in by_model["f"].items()} == {
        m: r["step_seconds"] for m, r in by_model["b"].items()
    }


def test_without_warmup_the_first_model_pays_the_one_time_cost(tmp_path, monkeypatch) -> None:
    """The contrast that shows the protocol matters: with --timing_warmup 0 the order changes the timings."""
    forward, log = _compare(["ham", "fcn"], tmp_path / "f", monkeypatch, timing_warmup=0)
    backward, _ = _compare(["fcn", "ham"], tmp_path / "b", monkeypatch, timing_warmup=0)
    assert [e["model"] for e in log] == ["ham", "fcn"]  # no warm-up run
    ham_first = {r["model"]: r["step_seconds"] for r in forward}["ham"]
    ham_second = {r["model"]: r["step_seconds"] for r in backward}["ham"]
    assert ham_first > ham_second


def test_comparison_table_has_a_per_class_block() -> None:
    rows = [
        {"model": "tiny_ham", "params": 1234, "steps": 8, "step_seconds": 0.01234, "train_seconds": 1.0,
         "warmup_steps": 2, "timed_steps": 6, "mIoU": 0.5, "aAcc": 0.9, "mAcc": 0.6,
         "per_class_IoU": {"background": 0.9, "Trouser": 0.1, "Bag": float("nan")}},
        {"model": "tiny_fcn", "params": 999, "steps": 8, "step_seconds": None, "train_seconds": 0.5,
         "warmup_steps": 2, "timed_steps": 0, "mIoU": 0.4, "aAcc": 0.8, "mAcc": 0.5,
         "per_class_IoU": {"background": 0.8, "Trouser": 0.25, "Bag": None}},
    ]  # fmt: skip
    lines = format_comparison(rows).splitlines()
    assert "s/step" in lines[0] and "train s" in lines[0]
    assert "0.0123" in lines[1] and "n/a" in lines[2]
    assert "after 2 untimed warm-up step(s)" in lines[3]
    block = lines[lines.index("IoU % per class") + 1 :]
    assert block[0].split() == ["class", "tiny_ham", "tiny_fcn"]
    assert [line.split() for line in block[1:]] == [
        ["background", "90.00", "80.00"], ["Trouser", "10.00", "25.00"], ["Bag", "-", "-"],
    ]  # fmt: skip


def test_negative_timing_warmup_is_one_line(tmp_path, capsys) -> None:
    from hamburger.recipes.seg.cli import main

    config = "fashion_scenes"  # the packaged config, by name
    assert main(["compare", "--config", config, "--root", str(tmp_path), "--timing_warmup", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--timing_warmup must be an int >= 0, got -1" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
