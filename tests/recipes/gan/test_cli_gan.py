"""``hamburger gan fit / sample / evaluate`` through the command line and the Python API, with tiny stand-in GANs
(``gan_standins``): weights change, checkpoints, sample grids (one row per class) and curves are written, the
D / G step schedule is as configured, and bad input is one line with exit code 2."""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")

from hamburger.cli import main  # noqa: E402
from hamburger.recipes.gan.grid import grid_size  # noqa: E402
from hamburger.training.checkpoint import load_checkpoint  # noqa: E402

TINY = "gan_standins:tiny_gan"
PAINTER = "gan_standins:painter_gan"


def fit_args(root: Path, *extra: str, model: str = TINY, steps: int = 4) -> list[str]:
    return [
        "gan", "fit", f"--model.model={model}", f"--trainer.default_root_dir={root}", f"--trainer.max_steps={steps}",
        "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.log_every_n_steps=1", "--data.batch_size=4", "--checkpoint.every_n_train_steps=2",
        "--samples.every_n_steps=2", "--curves.every_n_steps=1", "--seed_everything=3", *extra,
    ]  # fmt: skip


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


def test_fit_trains_checkpoints_grids_and_curves(tmp_path: Path, capsys) -> None:
    import lightning.pytorch as pl

    from hamburger.recipes.gan.module import GANModule

    root = tmp_path / "run"
    assert main(fit_args(root, "--model.n_critic=3", "--model.diffaug=color,translation,cutout")) == 0
    out = capsys.readouterr().out
    assert "fit finished: 4/4 steps" in out and "samples:" in out
    ckpt = load_checkpoint(root / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 4  # generator steps
    # n_critic: 3 discriminator updates per generator update (Adam's step counters), 3 x 4 reals per batch
    g_state, d_state = ckpt["optimizer_states"]
    assert {float(s["step"]) for s in g_state["state"].values()} == {4.0}
    assert {float(s["step"]) for s in d_state["state"].values()} == {12.0}
    assert ckpt["datamodule_hyper_parameters"]["n_critic"] == 3
    # the weights moved away from the initial ones (same seed, same construction)
    pl.seed_everything(3, verbose=False)
    init = GANModule(model=TINY).state_dict()
    trained = ckpt["state_dict"]
    for prefix in ("generator.", "discriminator.", "generator_ema."):
        changed = [k for k in trained if k.startswith(prefix) and not torch.equal(trained[k], init[k])]
        assert changed, prefix
    # EMA (decay 0.999, start 0): close to the initial weights, not equal to the trained G
    w = "generator.fc.weight"
    assert not torch.equal(trained["generator_ema.fc.weight"], trained[w])
    # grids at steps 2 and 4: one row per class (10), 8 columns, 32x32 images, 2-pixel padding
    grids = sorted(p.name for p in (root / "samples").iterdir())
    assert grids == ["step0000002.png", "step0000004.png"]
    assert _png(root / "samples" / "step0000004.png").shape == grid_size(10, 8, 32)
    assert (root / "checkpoints" / "training_curves.png").stat().st_size > 1000
    rows = list(csv.DictReader(open(next(root.glob("logs/version_*/metrics.csv")))))
    losses = [float(r["train/loss_d"]) for r in rows if r.get("train/loss_d")]
    assert len(losses) == 4 and all(np.isfinite(losses))
    summary = json.loads((root / "fit_results.json").read_text())
    assert summary["samples"].endswith("step0000004.png") and summary["steps"] == 4


def test_sample_grid_honours_the_classes(tmp_path: Path, capsys) -> None:
    root = tmp_path / "run"
    assert main(fit_args(root, "--model.lr_g=1e-12", model=PAINTER, steps=1)) == 0
    ckpt = root / "checkpoints" / "last.ckpt"
    grid = tmp_path / "grid.png"
    classes = [3, 0, 9, 3]
    code = main(["gan", "sample", "--ckpt_path", str(ckpt), "--output", str(grid), "--model", PAINTER,
                 "--classes", *map(str, classes), "--num", "5"])  # fmt: skip
    assert code == 0 and f"wrote {grid}" in capsys.readouterr().out
    image = _png(grid)
    assert image.shape == grid_size(4, 5, 32)
    for row, label in enumerate(classes):
        top = 2 + row * 34
        cells = image[top : top + 32, 2:-2]
        level = round((-1 + 2 * label / 9 + 1) * 127.5)  # the painter's grey level of this class
        assert abs(int(np.median(cells)) - level) <= 1, (row, label)
    # the Python API writes the same grid
    from hamburger.recipes.gan import sample

    again = sample(ckpt, output=tmp_path / "api.png", classes=classes, num=5, model=PAINTER)
    assert np.array_equal(_png(again), image)


@pytest.fixture
def fake_scoring(monkeypatch):
    """Stand-ins for the evaluation modules (branch gan-eval): a named feature network and a scorer that checks
    what it is given."""
    calls = {}
    features = types.ModuleType("hamburger.recipes.gan.features")

    class Net:
        name = "fake-features"

    def load_feature_network(spec, *, device="cpu"):
        if spec == "missing":
            raise ValueError("feature weights 'missing' not found: looked in ~/.cache; see docs/gan.md")
        return Net()

    metrics = types.ModuleType("hamburger.recipes.gan.metrics")

    def score_generator(generate, real, *, features, num_samples, batch_size, seed):
        fake = generate(torch.randn(2, generate.z_dim), torch.tensor([0, 1]))
        calls.update(real=real, num_samples=num_samples, fake_shape=tuple(fake.shape))
        return {"fid": 12.5, "kid_mean": 0.01, "kid_std": 0.001, "is_mean": 2.0, "is_std": 0.1,
                "features": features.name, "num_real": len(real), "num_fake": num_samples}  # fmt: skip

    from hamburger.recipes.gan.metrics import format_scores

    features.load_feature_network = load_feature_network
    metrics.score_generator = score_generator
    metrics.format_scores = format_scores
    monkeypatch.setitem(sys.modules, "hamburger.recipes.gan.features", features)
    monkeypatch.setitem(sys.modules, "hamburger.recipes.gan.metrics", metrics)
    return calls


def test_evaluate_prints_one_line_and_writes_json(tmp_path: Path, capsys, fake_scoring) -> None:
    root = tmp_path / "run"
    assert main(fit_args(root, steps=1)) == 0
    ckpt = root / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    code = main(["gan", "evaluate", "--ckpt_path", str(ckpt), "--num-samples", "40", "--num-real", "30",
                 "--model", TINY])  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "(features fake-features, 40 fake vs 30 real)" in lines[0]
    assert "FID 12.50" in lines[0]
    written = root / "checkpoints" / "last_scores.json"
    scores = json.loads(written.read_text())
    assert scores["fid"] == 12.5 and scores["num_fake"] == 40 and scores["step"] == 1
    real = fake_scoring["real"]
    assert real.dtype == torch.uint8 and tuple(real.shape) == (30, 1, 32, 32)  # the training images, uint8
    assert fake_scoring["fake_shape"] == (2, 1, 32, 32)
    code = main(["gan", "evaluate", "--ckpt_path", str(ckpt), "--num-samples", "4", "--model", TINY,
                 "--features", "missing"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "feature weights 'missing' not found" in err


def test_python_api_fit(tmp_path: Path) -> None:
    from hamburger.recipes.gan import fit

    root = tmp_path / "api"
    summary = fit(None, model={"model": TINY}, trainer={"default_root_dir": str(root), "max_steps": 2,
                  "accelerator": "cpu", "enable_progress_bar": False}, data={"batch_size": 2})  # fmt: skip
    assert summary["steps"] == 2 and Path(summary["last_checkpoint"]).is_file()
    with pytest.raises(ValueError, match="data.root is required"):
        fit(None, model={"model": TINY}, data={"dataset": "folder"},
            trainer={"default_root_dir": str(tmp_path / "x"), "max_steps": 1})  # fmt: skip


def test_image_folder_training_with_workers(tmp_path: Path) -> None:
    from test_gan_training import _write_folder

    data = tmp_path / "images"
    _write_folder(data)
    root = tmp_path / "run"
    kwargs = "--model.model_kwargs={num_classes: 2, out_channels: 3}"
    args = fit_args(root, "--data.dataset=folder", f"--data.root={data}", "--data.num_workers=2", kwargs,
                    "--data.batch_size=2", steps=2)  # fmt: skip
    assert main(args) == 0
    assert _png(root / "samples" / "step0000002.png").shape == (*grid_size(2, 8, 32), 3)  # 2 classes, RGB


def _error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    root = tmp_path / "run"
    assert main(fit_args(root, steps=1)) == 0
    ckpt = str(root / "checkpoints" / "last.ckpt")
    out = str(tmp_path / "g.png")
    assert "class id 10 is not in [0, 10)" in _error(
        capsys, ["gan", "sample", "--ckpt_path", ckpt, "--output", out, "--model", TINY, "--classes", "1", "10"]
    )
    assert "names the model import path" in _error(capsys, ["gan", "sample", "--ckpt_path", ckpt, "--output", out])
    assert "no such checkpoint" in _error(capsys, ["gan", "sample", "--ckpt_path", ckpt + "x", "--output", out])
    assert "expected a .png" in _error(capsys, ["gan", "sample", "--ckpt_path", ckpt, "--output", "g.jpg"])
    assert "required" in _error(capsys, ["gan", "sample", "--output", out])
    data = tmp_path / "images"
    from test_gan_training import _write_folder

    _write_folder(data)
    wrong_size = fit_args(tmp_path / "r2", "--data.dataset=folder", f"--data.root={data}", "--data.image_size=48",
                          "--model.model_kwargs={num_classes: 2, out_channels: 3}")  # fmt: skip
    assert "image size 48 but model" in _error(capsys, wrong_size)
    wrong_channels = fit_args(tmp_path / "r3", "--data.dataset=folder", f"--data.root={data}",
                              "--model.model_kwargs={num_classes: 2}")  # fmt: skip
    assert "channels 3 but model" in _error(capsys, wrong_channels)
    missing = fit_args(tmp_path / "r4", "--data.dataset=folder", f"--data.root={tmp_path / 'nope'}")
    assert "no such folder" in _error(capsys, missing)
    assert "data.root is required" in _error(capsys, ["gan", "fit", "--config", "imagenet128_sagan",
                                                      "--trainer.default_root_dir", str(tmp_path / "r5")])  # fmt: skip
    assert "unknown command 'train'" in _error(capsys, ["gan", "train"])
    assert "must be a positive int" in _error(capsys, fit_args(tmp_path / "r6", "--model.n_critic=0"))


def test_evaluate_with_the_shipped_fmnist_features(tmp_path: Path, capsys) -> None:
    from hamburger.recipes.gan.features import load_feature_network

    name = load_feature_network("fmnist").name
    root = tmp_path / "run"
    assert main(fit_args(root, steps=1)) == 0
    ckpt = root / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    output = tmp_path / "scores" / "s.json"
    output.parent.mkdir()
    args = ["gan", "evaluate", "--ckpt_path", str(ckpt), "--num-samples", "64", "--num-real", "64", "--model", TINY,
            "--features", "fmnist", "--output", str(output), "--batch-size", "32"]  # fmt: skip
    assert main(args) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and f"(features {name}, 64 fake vs 64 real)" in line and str(output) in line
    scores = json.loads(output.read_text())
    assert scores["features"] == name and scores["num_fake"] == 64 and scores["fid"] > 0
    missing = str(tmp_path / "no_weights.safetensors")
    err = _error(capsys, ["gan", "evaluate", "--ckpt_path", str(ckpt), "--model", TINY, "--features", missing])
    assert "no_weights.safetensors" in err
