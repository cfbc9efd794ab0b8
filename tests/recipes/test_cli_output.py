"""What ``hamburger seg fit / validate`` print and write: periodic lines (not tqdm redraws) in a file, the end-of-fit
summary, no library noise, one CSV row per validation and one results file per evaluated checkpoint."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")

from hamburger.recipes.seg.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "src" / "hamburger" / "configs" / "seg" / "fashion_scenes.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
# 16 scenes / batch 4 = 4 steps per epoch; a 45x45 crop (not a multiple of 8); a loader worker
TINY = [
    "--trainer.val_check_interval=3", "--trainer.log_every_n_steps=2", "--checkpoint.every_n_train_steps=3",
    "--data.train_kwargs={num_scenes: 16}", "--data.val_kwargs={num_scenes: 5}", "--data.batch_size=4",
    "--data.val_batch_size=2", "--data.crop_size=45", "--data.num_workers=1", "--progress.every_n_steps=2",
    "--model.model_kwargs={backbone_kwargs: {widths: [8, 16, 32], depth: 1}, channels: 16, ham_channels: 16, rank: 4}",
]  # fmt: skip
LINE = re.compile(r"^step (\d+)/(\d+)  loss \d+\.\d+  lr \d\.\de[+-]\d\d  [\d.]+ it/s  ETA \S+")
NOISE = (
    "smaller than the logging interval", "LeafSpec", "dirpath has changed", "not resumable", "litmodels",
    "litlogger", "💡", "Seed set to", "GPU available: False", "TPU available", "\r",
)  # fmt: skip


def _fit(root: Path, *extra: str) -> tuple[str, str]:
    """``hamburger seg fit`` in a subprocess, stdout and stderr redirected to files (not a terminal)."""
    root.mkdir(parents=True, exist_ok=True)
    n = len(list(root.glob("stdout*")))
    out_path, err_path = root / f"stdout{n}.txt", root / f"stderr{n}.txt"
    cmd = [sys.executable, "-m", "hamburger", "seg", "fit", "--config", str(CONFIG),
           f"--trainer.default_root_dir={root}", *TINY, *extra]  # fmt: skip
    with open(out_path, "w") as out, open(err_path, "w") as err:
        code = subprocess.run(cmd, stdout=out, stderr=err, env=ENV, timeout=600).returncode
    stdout, stderr = out_path.read_text(), err_path.read_text()
    assert code == 0, stderr[-3000:]
    return stdout, stderr


def _val_rows(root: Path, version: int) -> list[dict[str, str]]:
    with open(root / "logs" / f"version_{version}" / "metrics.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("val/mIoU")]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """A fit of 6 steps, then a resume to 12 (from step 6, in the middle of the second epoch)."""
    root = tmp_path_factory.mktemp("seg_output")
    first = _fit(root, "--trainer.max_steps=6")
    second = _fit(root, "--trainer.max_steps=12", "--ckpt_path=last")
    return {"root": root, "first": first, "second": second}


def test_piped_fit_prints_one_line_every_n_steps(run) -> None:
    stdout, _ = run["first"]
    lines = stdout.splitlines()
    progress = [m for m in map(LINE.match, lines) if m]
    assert [(m.group(1), m.group(2)) for m in progress] == [("2", "6"), ("4", "6"), ("6", "6")]
    validations = [ln for ln in lines if ln.startswith("validation at step")]
    assert [ln.split(":")[0] for ln in validations] == ["validation at step 3/6", "validation at step 6/6"]
    assert re.search(r"step 4/6 .* val/mIoU 0\.\d+ \(step 3\)$", stdout, re.M)  # the last validation, when known
    assert len(stdout.encode()) < 3000  # a few lines and the summary, not tqdm redraws (was ~3.5 KB per 8 steps)


def test_fit_output_has_no_library_noise(run) -> None:
    for stdout, stderr in (run["first"], run["second"]):  # the second one resumes mid-epoch with a worker
        for text in NOISE:
            assert text not in stdout and text not in stderr, text


def test_fit_ends_with_a_summary(run) -> None:
    root = run["root"]
    stdout, _ = run["second"]
    summary = json.loads((root / "fit_results.json").read_text())
    assert summary["steps"] == 12 and summary["metric"] == "val/mIoU"
    logged = {int(r["step"]) + 1: float(r["val/mIoU"]) for v in (0, 1) for r in _val_rows(root, v)}
    assert sorted(logged) == [3, 6, 9, 12]  # the CSV step is the logger's (global step - 1)
    # the resumed run knows the validations before the resume from its checkpoint: step 3 (the one at step 6
    # ran after the step-6 checkpoint was written) and those after it
    assert [s for s, _ in summary["history"]] == [3, 9, 12]
    assert [v for _, v in summary["history"]] == pytest.approx([logged[3], logged[9], logged[12]])
    best_step = max((3, 9, 12), key=lambda s: (logged[s], -s))
    assert summary["final"] == {"step": 12, "value": pytest.approx(logged[12])}
    assert summary["best"] == {"step": best_step, "value": pytest.approx(logged[best_step])}
    assert f"val/mIoU: final {100 * logged[12]:.2f}% (step 12), best {100 * logged[best_step]:.2f}% " in stdout
    assert f"last checkpoint: {root / 'checkpoints' / 'last.ckpt'}" in stdout
    assert f"curves: {root / 'checkpoints' / 'training_curves.png'}" in stdout
    assert f"summary: {root / 'fit_results.json'}" in stdout
    assert re.search(r"^fit finished: 12/12 steps in \d+(s|m\d\ds)$", stdout, re.M)
    assert "per-class validation scores at step 12" in stdout and "Ankle boot" in stdout  # the table
    assert summary["final_scores"]["step"] == 12
    assert summary["final_scores"]["mIoU"] == pytest.approx(logged[12])
    assert len(summary["final_scores"]["per_class"]) == 11


def test_metrics_csv_has_one_row_per_validation(run) -> None:
    root = run["root"]
    for version, steps in ((0, [2, 5]), (1, [8, 11])):
        assert [int(r["step"]) for r in _val_rows(root, version)] == steps


def test_validate_names_results_after_the_checkpoint(run, capsys) -> None:
    root = run["root"]
    paths = {}
    for ckpt in ("last.ckpt", "step0000012.ckpt"):
        code = main(["validate", "--config", str(CONFIG), f"--trainer.default_root_dir={root}", *TINY,
                     f"--ckpt_path={root / 'checkpoints' / ckpt}"])  # fmt: skip
        assert code == 0
        out = capsys.readouterr().out
        path = root / f"validate_results_{ckpt[:-5]}.json"
        assert f"scores written to {path}" in out
        paths[ckpt] = path
    assert not (root / "validate_results.json").exists()
    for ckpt, path in paths.items():  # one file each, not one overwritten by the other
        assert json.loads(path.read_text())["ckpt_path"].endswith(ckpt)


def test_lines_still_print_with_the_bar_off(tmp_path, capsys) -> None:
    code = main(["fit", "--config", str(CONFIG), f"--trainer.default_root_dir={tmp_path}", *TINY,
                 "--trainer.max_steps=4", "--trainer.enable_progress_bar=false", "--data.num_workers=0"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert [m.group(1) for m in map(LINE.match, out.splitlines()) if m] == ["2", "4"]
    assert "fit finished: 4/4 steps" in out
