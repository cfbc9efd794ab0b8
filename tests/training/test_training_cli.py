"""The generic recipe CLI (``HamburgerCLI``) on a toy recipe, and the checkpoint hyper-parameter checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

import lightning.pytorch as pl  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from hamburger.training.cli import ArgumentParser, HamburgerCLI, error_line, run_cli  # noqa: E402
from hamburger.training.hparams import canonical, check_plain_hparams  # noqa: E402


class ToyModule(pl.LightningModule):
    """A GAN-sized stand-in: a width (architecture), a learning rate and a logged validation score."""

    def __init__(self, width: int = 4, lr: float = 0.1, bonus: float = 0.0) -> None:
        super().__init__()
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.save_hyperparameters()
        self.net = torch.nn.Linear(2, width)

    def training_step(self, batch, idx):
        (x,) = batch
        loss = self.net(x).pow(2).mean()
        return {"loss": loss, "loss_aux": loss.detach() * 0 + 1}

    def validation_step(self, batch, idx) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        self.log("val/score", float(self.hparams.width) + self.hparams.bonus)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class ToyData(pl.LightningDataModule):
    def __init__(self, size: int = 8) -> None:
        super().__init__()
        self.size = size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.randn(self.size, 2)), batch_size=2)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)


class ToyCLI(HamburgerCLI):
    prog = "hamburger toy"
    fixed_by_checkpoint = ("width",)
    fixed_on_resume = ("lr",)
    curves_defaults = {"train_metrics": ["loss", "loss_aux"], "val_metrics": ["val/score"], "val_scale": 1.0}

    def __init__(self, **kwargs) -> None:
        super().__init__(ToyModule, ToyData, **kwargs)


COMMON = ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
          "--trainer.num_sanity_val_steps=0"]  # fmt: skip


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    argv = ["fit", f"--trainer.default_root_dir={root}", "--trainer.max_steps=4", *COMMON,
            "--checkpoint.every_n_train_steps=2", "--model.width=3"]  # fmt: skip
    assert run_cli(ToyCLI, argv) == 0
    return root


def test_fit_has_the_core_defaults(fitted: Path) -> None:
    files = set(os.listdir(fitted / "checkpoints"))
    assert {"last.ckpt", "step0000004.ckpt", "training_curves.png"} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    assert (next((fitted / "logs").glob("version_*")) / "metrics.csv").is_file()
    state = torch.load(fitted / "checkpoints" / "last.ckpt", weights_only=True)
    curves = next(v for k, v in state["callbacks"].items() if k.startswith("TrainingCurves"))
    assert sorted(curves["train"]) == ["loss", "loss_aux"] and list(curves["val"]) == ["val/score"]
    assert [s for s, _ in curves["train"]["loss_aux"]] == [1, 2, 3, 4]


def test_validate_writes_results_with_explicit_values_winning(fitted: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "res.json"
    argv = ["validate", f"--trainer.default_root_dir={fitted}", *COMMON, "--ckpt_path",
            str(fitted / "checkpoints" / "last.ckpt"), f"--results_json={out}"]  # fmt: skip
    assert run_cli(ToyCLI, [*argv, "--model.bonus=0.5"]) == 0
    results = json.loads(out.read_text())
    assert results["val/score"] == 3.5  # width 3 from the checkpoint, bonus from the command line
    assert f"scores written to {out}" in capsys.readouterr().out
    assert run_cli(ToyCLI, [*argv, "--model.width=5"]) == 2
    assert "model.width=5" in capsys.readouterr().err


def test_resume_refuses_what_the_optimiser_state_would_override(fitted: Path, capsys) -> None:
    argv = ["fit", f"--trainer.default_root_dir={fitted}", "--trainer.max_steps=6", *COMMON, "--ckpt_path", "last"]
    assert run_cli(ToyCLI, [*argv, "--model.lr=0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hamburger toy fit: error: model.lr=0.5") and len(err.splitlines()) == 1


def test_user_errors_are_one_line_and_bugs_are_not(tmp_path: Path, capsys) -> None:
    argv = ["fit", f"--trainer.default_root_dir={tmp_path}", "--trainer.max_steps=1", *COMMON]
    assert run_cli(ToyCLI, [*argv, "--model.lr=-1"]) == 2
    assert capsys.readouterr().err == "hamburger toy fit: error: lr must be > 0, got -1.0\n"
    assert run_cli(ToyCLI, [*argv, "--data.siz=3"]) == 2  # no abbreviations
    assert "unrecognized arguments: --data.siz=3" in capsys.readouterr().err

    class Broken(ToyData):
        def train_dataloader(self):
            raise RuntimeError("bug")

    class BrokenCLI(ToyCLI):
        def __init__(self, **kwargs) -> None:
            HamburgerCLI.__init__(self, ToyModule, Broken, **kwargs)

    with pytest.raises(RuntimeError, match="bug"):
        run_cli(BrokenCLI, argv)


def test_argument_parser_errors_are_one_line(capsys) -> None:
    parser = ArgumentParser(prog="hamburger x")
    parser.add_argument("--crop_size", type=int)
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--crop", "3"])  # no abbreviations either
    assert stop.value.code == 2
    assert capsys.readouterr().err == "hamburger x: error: unrecognized arguments: --crop 3\n"
    assert error_line("p", ValueError("a\n  b")) == "p: error: a b"


def test_check_plain_hparams() -> None:
    ok = {"model": "tiny_ham", "model_kwargs": {"rank": 4, "backbone_kwargs": {"widths": [8]}}, "_instantiator": "x"}
    assert check_plain_hparams(ok) == {"model": "tiny_ham", "model_kwargs": ok["model_kwargs"]}
    with pytest.raises(ValueError, match=r"model_kwargs\.x\.class_path is a class spec"):
        check_plain_hparams({"model_kwargs": {"x": {"class_path": "os.system"}}}, source="c.ckpt")
    with pytest.raises(ValueError, match=r"a\[1\]\.init_args"):
        check_plain_hparams({"a": [1, {"init_args": {}}]})
    with pytest.raises(ValueError, match="unsupported type"):
        check_plain_hparams({"a": torch.zeros(1)})
    with pytest.raises(ValueError, match="mapping"):
        check_plain_hparams([1, 2])
    assert canonical({"b": (0.9, 0.999), "a": 1}) == canonical({"a": 1.0, "b": [0.9, 0.999]})
    assert canonical([1, 2]) != canonical([2, 1])
