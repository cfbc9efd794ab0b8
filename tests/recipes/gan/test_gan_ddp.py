"""GAN training with DDP on 2 CPU processes through ``hamburger gan fit --trainer.devices 2``: each D step leaves
G's parameters unused and each G step D's, so the recipe must pick DDP with ``find_unused_parameters``; the ranks
then hold identical weights after every step (gradients all-reduced) while their noise differs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

from gan_standins import ENV  # noqa: E402

from hamburger.recipes.gan.cli import find_unused_parameters  # noqa: E402
from hamburger.training.checkpoint import load_checkpoint  # noqa: E402


def _strategy(**kwargs):
    import lightning.pytorch as pl

    return pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      **kwargs).strategy  # fmt: skip


@pytest.mark.parametrize(
    "kwargs",
    [{"devices": 2}, {"devices": 2, "strategy": "ddp"}, {"devices": 2, "strategy": "ddp_spawn"},
     {"devices": 1, "num_nodes": 2}],
)  # fmt: skip
def test_every_way_to_ddp_finds_unused_parameters(kwargs) -> None:
    strategy = _strategy(**kwargs)
    assert strategy._ddp_kwargs.get("find_unused_parameters") is not True
    assert find_unused_parameters(strategy) is True
    assert strategy._ddp_kwargs["find_unused_parameters"] is True
    assert find_unused_parameters(strategy) is False  # already set: nothing to change


@pytest.mark.parametrize("devices", [1, "auto"])  # "auto" on a CPU is one device: no DDP, left alone
def test_one_process_is_left_alone(devices) -> None:
    strategy = _strategy(devices=devices)
    assert type(strategy).__name__ == "SingleDeviceStrategy"
    assert find_unused_parameters(strategy) is False


@pytest.mark.slow
def test_two_cpu_ranks_through_the_cli_keep_identical_weights(tmp_path: Path) -> None:
    root = tmp_path / "run"
    cmd = [sys.executable, "-m", "hamburger", "gan", "fit", "--model.model=gan_standins:tiny_gan",
           f"--trainer.default_root_dir={root}", "--trainer.max_steps=3", "--trainer.accelerator=cpu",
           "--trainer.devices=2", "--trainer.enable_progress_bar=false", "--data.batch_size=4",
           "--model.n_critic=2", "--model.ema_start=0", "--checkpoint.every_n_train_steps=3",
           "--samples.every_n_steps=3", "--seed_everything=3",
           "--trainer.callbacks+=gan_standins.RankParams"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "fit finished: 3/3 steps" in proc.stdout
    p0 = torch.load(root / "params_rank0.pt", weights_only=True)
    p1 = torch.load(root / "params_rank1.pt", weights_only=True)
    assert p0.keys() == p1.keys()
    for name in p0:
        if "running_" in name or "num_batches" in name:
            continue  # BatchNorm statistics are per rank (each sees its own fakes); DDP broadcasts them at forward
        torch.testing.assert_close(p0[name], p1[name], rtol=0, atol=0, msg=name)
    ckpt = load_checkpoint(root / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 3
    g_state, d_state = ckpt["optimizer_states"]
    assert {float(s["step"]) for s in g_state["state"].values()} == {3.0}
    assert {float(s["step"]) for s in d_state["state"].values()} == {6.0}  # n_critic = 2
    trained = ckpt["state_dict"]
    for name in ("generator.fc.weight", "discriminator.fc.weight"):
        torch.testing.assert_close(trained[name], p0[name], rtol=0, atol=0)
