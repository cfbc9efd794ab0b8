"""Fault tolerance: SIGKILL a ``hamburger seg fit`` run after its first checkpoint, then resume it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("lightning")

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "seg" / "fashion_scenes.yaml"
ARGS = [
    "--trainer.max_steps=24", "--trainer.val_check_interval=12", "--trainer.enable_progress_bar=false",
    "--checkpoint.every_n_train_steps=4", "--data.train_kwargs={num_scenes: 40}", "--data.val_kwargs={num_scenes: 4}",
    "--data.batch_size=4", "--data.val_batch_size=4", "--data.crop_size=48",
    "--model.model_kwargs={backbone_kwargs: {widths: [8, 16, 32], depth: 1}, channels: 16, ham_channels: 16, rank: 4}",
]  # fmt: skip


def _fit(root: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hamburger", "seg", "fit", "--config", str(CONFIG),
           f"--trainer.default_root_dir={root}", *ARGS, *extra]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path: Path) -> None:
    from hamburger.training.checkpoint import load_checkpoint

    ckpt_dir = tmp_path / "checkpoints"
    proc = _fit(tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and not (ckpt_dir / "last.ckpt").exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    assert (ckpt_dir / "last.ckpt").exists(), "no checkpoint within 300 s"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # whatever moment the kill hit, every checkpoint file on disk is complete
    saved = sorted(p for p in ckpt_dir.iterdir() if p.suffix == ".ckpt")
    steps = [load_checkpoint(p)["global_step"] for p in saved]
    assert steps and all(s % 4 == 0 and 0 < s < 24 for s in steps)

    resumed = _fit(tmp_path, "--ckpt_path", "last")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert "Restored all states" in err or "Restoring states" in err
    final = load_checkpoint(ckpt_dir / "last.ckpt")
    assert final["global_step"] == 24
    assert not [p for p in ckpt_dir.iterdir() if p.name.endswith(".tmp")]
