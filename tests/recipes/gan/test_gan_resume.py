"""Exact resume of ``hamburger gan fit``: continuing from a checkpoint gives the same weights (G, D, EMA G),
optimiser states and losses as the uninterrupted run, with 0 and 2 loader workers; and a run stopped by SIGTERM
(the whole process group, as a scheduler does) resumes to the same final weights."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

from gan_standins import ENV  # noqa: E402
from test_cli_gan import fit_args  # noqa: E402

from hamburger.cli import main  # noqa: E402
from hamburger.training.checkpoint import load_checkpoint  # noqa: E402

EXTRA = ("--model.n_critic=2", "--model.diffaug=color,translation,cutout", "--model.ema_start=1",
         "--model.ema_decay=0.9")  # fmt: skip


def _losses(root: Path) -> dict[int, tuple[str, str]]:
    out = {}
    for path in sorted(root.glob("logs/version_*/metrics.csv")):
        for row in csv.DictReader(open(path)):
            if row.get("train/loss_d"):
                out[int(row["step"])] = (row["train/loss_d"], row["train/loss_g"])
    return out


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for pid, state in opt_a["state"].items():
            for name, value in state.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt_b["state"][pid][name])), (pid, name)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path: Path, workers: int) -> None:
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    args = (*EXTRA, f"--data.num_workers={workers}")
    assert main(fit_args(full, *args, steps=4)) == 0
    # a run killed after step 3 leaves the checkpoint of step 2: continue from it in a new folder
    (resumed / "checkpoints").mkdir(parents=True)
    start = resumed / "checkpoints" / "step0000002.ckpt"
    shutil.copy(full / "checkpoints" / "step0000002.ckpt", start)
    assert main(fit_args(resumed, *args, f"--ckpt_path={start}", steps=4)) == 0
    _assert_same_state(load_checkpoint(full / "checkpoints" / "last.ckpt"),
                       load_checkpoint(resumed / "checkpoints" / "last.ckpt"))  # fmt: skip
    a, b = _losses(full), _losses(resumed)
    assert sorted(b) == [2, 3] and {s: a[s] for s in b} == b  # steps 3 and 4 (0-based 2, 3), identical losses
    # the grid of step 4 is the same picture
    assert (full / "samples" / "step0000004.png").read_bytes() == (resumed / "samples" / "step0000004.png").read_bytes()


@pytest.mark.slow
def test_sigterm_then_resume_gives_the_uninterrupted_weights(tmp_path: Path) -> None:
    steps = 40  # far enough beyond step 4 that the signal lands before the end on a fast or a loaded machine
    args = [*EXTRA, "--data.num_workers=2", "--checkpoint.every_n_train_steps=4", "--samples.every_n_steps=0"]
    full = tmp_path / "full"
    code = subprocess.run([sys.executable, "-m", "hamburger", *fit_args(full, *args, steps=steps)], env=ENV,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert code.returncode == 0, code.stderr[-2000:]
    cut = tmp_path / "cut"
    cmd = [sys.executable, "-m", "hamburger", *fit_args(cut, *args, "--trainer.max_steps=100000")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not (cut / "checkpoints" / "step0000004.ckpt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGTERM)
        err = proc.communicate(timeout=300)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err[-2000:]
    stopped = load_checkpoint(cut / "checkpoints" / "last.ckpt")["global_step"]
    assert 4 <= stopped < steps
    done = subprocess.run([sys.executable, "-m", "hamburger", *fit_args(cut, *args, "--ckpt_path=last", steps=steps)],
                          env=ENV, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_same_state(load_checkpoint(full / "checkpoints" / "last.ckpt"),
                       load_checkpoint(cut / "checkpoints" / "last.ckpt"))  # fmt: skip
