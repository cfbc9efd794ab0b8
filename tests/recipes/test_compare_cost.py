"""``hamburger seg compare`` cost columns: measured per trained model, in compare.json and in a README-wide table
with footnotes; ``--cost_size`` and ``--no_cost``. Through ``hamburger.cli.main``; no timing is asserted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("lightning")

from hamburger.cli import main  # noqa: E402
from hamburger.recipes.seg.compare import format_comparison  # noqa: E402

# a few steps of narrow models on a handful of context scenes, at a crop that is no multiple of 8
TINY = [
    "--trainer.max_steps=3", "--trainer.val_check_interval=3", "--trainer.enable_progress_bar=false",
    "--checkpoint.every_n_train_steps=3", "--data.train_kwargs={num_scenes: 12}",
    "--data.val_kwargs={num_scenes: 4}", "--data.batch_size=3", "--data.val_batch_size=2",
    "--data.crop_size=[53, 67]",
    "--model.model_kwargs={backbone_kwargs: {widths: [8, 16, 32], depth: 1}, channels: 16, ham_channels: 16, rank: 4}",
]  # fmt: skip
COST_KEYS = {
    "device", "batch_size", "input_size", "large_size", "train_peak_bytes", "train_peak_mib", "memory_method",
    "flops", "gflops", "flops_large", "gflops_large", "latency_large_ms", "latency_large_min_ms",
    "latency_repeats", "latency_warmup",
}  # fmt: skip


def _summary(printed: str) -> list[str]:
    """The summary table and its footnotes: from the header to the blank line before the per-class block."""
    lines = printed[printed.index("model ") :].splitlines()
    return lines[: lines.index("")]


def test_compare_measures_each_trained_model_and_prints_cost_columns(tmp_path: Path, capsys) -> None:
    args = ["seg", "compare", "--config", "fashion_scenes_context", "--root", str(tmp_path),
            "--baseline", "tiny_fcn", "--timing_warmup", "1", "--cost_size", "97", *TINY]  # fmt: skip
    assert main(args) == 0
    report = json.loads((tmp_path / "compare.json").read_text())
    assert report["cost"] is True
    ham, fcn = report["results"]
    for row in (ham, fcn):
        cost = row["cost"]
        assert set(cost) == COST_KEYS
        # the config's training batch at its crop; the large size of --cost_size
        assert (cost["batch_size"], cost["input_size"], cost["large_size"]) == (3, [53, 67], [97, 97])
        assert cost["device"] == "cpu" and cost["train_peak_bytes"] > 0 and cost["latency_large_ms"] > 0
        assert cost["flops_large"] > cost["flops"] > 0
        assert cost["gflops"] == pytest.approx(cost["flops"] / 1e9, abs=1e-6)
    # the Hamburger's matrix decomposition adds matmuls to the FCN's convolutions at both sizes
    assert ham["cost"]["flops"] > fcn["cost"]["flops"] and ham["cost"]["flops_large"] > fcn["cost"]["flops_large"]
    summary = _summary(capsys.readouterr().out)
    header = ["model", "params", "steps", "s/step", "train", "s", "peak", "MiB", "GFLOPs@53x67", "GFLOPs@97", "ms@97"]
    assert summary[0].split() == [*header, "mIoU", "%", "aAcc", "%", "mAcc", "%"]
    for line, row in zip(summary[1:3], (ham, fcn), strict=True):
        cells = line.split()
        assert cells[0] == row["model"]
        assert float(cells[5]) == pytest.approx(row["cost"]["train_peak_mib"], abs=0.051)  # peak MiB, 1 decimal
        assert float(cells[6]) == pytest.approx(row["cost"]["gflops"], abs=5e-5)
        assert float(cells[7]) == pytest.approx(row["cost"]["gflops_large"], abs=5e-4)
        assert float(cells[8]) == pytest.approx(row["cost"]["latency_large_ms"], abs=0.051)
    footnotes = summary[3:]
    assert footnotes[1].startswith("peak MiB: one training step (forward+backward, batch 3 at 53x67)")
    assert footnotes[2].startswith("GFLOPs@S: forward FLOPs of one image of size S")
    assert footnotes[3].startswith("ms@97: median forward latency of one 97x97 image (5 runs after 1 warm-up, cpu)")
    assert max(map(len, summary)) <= 110


def test_no_cost_skips_the_measurement_and_the_columns(tmp_path: Path, capsys) -> None:
    args = ["seg", "compare", "--config", "fashion_scenes_context", "--root", str(tmp_path), "--model", "tiny_fcn",
            "--baseline", "tiny_fcn", "--timing_warmup", "0", "--no_cost", *TINY]  # fmt: skip
    assert main(args) == 0
    report = json.loads((tmp_path / "compare.json").read_text())
    assert report["cost"] is False and [r["cost"] for r in report["results"]] == [None]
    summary = _summary(capsys.readouterr().out)
    assert "peak MiB" not in summary[0] and "GFLOPs" not in summary[0]
    assert not any(line.startswith(("peak MiB", "GFLOPs", "ms@")) for line in summary)


@pytest.mark.parametrize(("value", "message"), [("0", "--cost_size must be a positive int, got 0"),
                                                ("big", "--cost_size: invalid int value: 'big'")])  # fmt: skip
def test_bad_cost_size_is_one_line_before_any_training(tmp_path: Path, capsys, value: str, message: str) -> None:
    args = ["seg", "compare", "--config", "fashion_scenes_context", "--root", str(tmp_path), "--cost_size", value]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not os.listdir(tmp_path)


def test_table_with_cost_fits_a_readme_and_defines_its_columns() -> None:
    def row(model: str, params: int, peak: float, small: float, large: float, ms: float) -> dict:
        cost = {"device": "cpu", "batch_size": 16, "input_size": [64, 64], "large_size": [512, 512],
                "train_peak_mib": peak, "gflops": small, "gflops_large": large, "latency_large_ms": ms,
                "latency_repeats": 3, "latency_warmup": 1}  # fmt: skip
        return {"model": model, "params": params, "steps": 1000, "step_seconds": 0.0571, "train_seconds": 81.3,
                "warmup_steps": 5, "timed_steps": 995, "mIoU": 0.3456, "aAcc": 0.8, "mAcc": 0.5,
                "cost": cost}  # fmt: skip

    rows = [row("tiny_ham", 312_331, 13.249, 0.047309, 2.996797, 77.48),
            row("tiny_fcn", 299_849, 11.558, 0.042656, 2.729968, 62.94),
            row("tiny_attention", 316_363, 13.343, 0.045801, 7.159153, 462.37)]  # fmt: skip
    lines = format_comparison(rows).splitlines()
    assert lines[0].split()[6:13] == ["peak", "MiB", "GFLOPs@64", "GFLOPs@512", "ms@512", "mIoU", "%"]
    assert lines[1].split()[5:10] == ["13.2", "0.0473", "2.997", "77.5", "34.56"]
    assert lines[3].split()[5:9] == ["13.3", "0.0458", "7.159", "462.4"]  # per column: the same decimals
    assert lines[4].startswith("s/step: mean over the steps after 5 untimed warm-up step(s)")
    assert lines[5] == ("peak MiB: one training step (forward+backward, batch 16 at 64x64) above the memory held "
                        "before it (cpu)")  # fmt: skip
    assert lines[7] == "ms@512: median forward latency of one 512x512 image (3 runs after 1 warm-up, cpu)"
    assert max(map(len, lines)) <= 110
    rows[1]["cost"] = None  # a model whose cost was not measured: dashes, not a crash
    assert format_comparison(rows).splitlines()[2].split()[5:9] == ["-", "-", "-", "-"]
