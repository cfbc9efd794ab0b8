"""``hamburger export``: ONNX and torch.export of a Lightning checkpoint or a save_pretrained folder, checked
against the eager model, at 67x53 (not a multiple of the output stride)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

from hamburger.cli import main  # noqa: E402
from hamburger.models import create_model, from_pretrained  # noqa: E402

H, W = 67, 53
SMALL = {"backbone_kwargs": {"widths": [8, 16, 32], "depth": 1}, "channels": 16, "ham_channels": 16, "rank": 4}
TINY_FIT = [
    "--trainer.max_steps=1", "--trainer.val_check_interval=1", "--trainer.enable_progress_bar=false",
    "--trainer.log_every_n_steps=1", "--data.train_kwargs={num_scenes: 2}", "--data.val_kwargs={num_scenes: 2}",
    "--data.batch_size=2", "--data.val_batch_size=2", "--data.crop_size=32",
    "--model.model_kwargs={backbone_kwargs: {widths: [8, 16, 32], depth: 1}, channels: 16, ham_channels: 16, rank: 4}",
]  # fmt: skip


def _image(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export") / "tiny"
    torch.manual_seed(0)
    create_model("tiny_ham", num_classes=11, **SMALL).save_pretrained(folder)
    return folder


def test_onnx_from_pretrained_matches_eager(pretrained: Path, tmp_path: Path, capsys) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    out = tmp_path / "tiny.onnx"
    args = ["export", str(pretrained), "--format", "onnx", "--output", str(out), "--height", str(H), "--width", str(W)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "max |exported - eager| = " in printed and f"(1, 3, {H}, {W})" in printed
    onnx.checker.check_model(str(out), full_check=True)
    x = _image(1, 3, H, W)
    with torch.no_grad():
        ref = from_pretrained(pretrained)(x)["out"]
    got = ReferenceEvaluator(str(out)).run(None, {"image": x.numpy()})[0]
    assert got.shape == (1, 11, H, W)
    assert float((torch.from_numpy(got) - ref).abs().max()) < 1e-4
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export_ckpt")
    fit = ["seg", "fit", "--config", "fashion_scenes", f"--trainer.default_root_dir={root}", *TINY_FIT]
    assert main(fit) == 0
    return root / "checkpoints" / "last.ckpt"


def test_torch_export_of_a_checkpoint_dynamic(checkpoint: Path, tmp_path: Path, capsys) -> None:
    from hamburger.recipes.seg.predict import load_module

    out = tmp_path / "tiny.pt2"
    args = ["export", str(checkpoint), "--format", "torch_export", "--output", str(out), "--height", str(H),
            "--width", str(W), "--dynamic"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "dynamic" in printed and "mean [0.485, 0.456, 0.406]" in printed
    program = torch.export.load(str(out)).module()
    module, _ = load_module(str(checkpoint))
    for shape in ((1, 3, H, W), (3, 3, 40, 72)):  # the traced size and another one
        x = _image(*shape)
        with torch.no_grad():
            ref = module.net(x)["out"]
        got = program(x)
        assert got.shape == (shape[0], 11, *shape[2:])
        assert float((got - ref).abs().max()) < 1e-5


def test_export_uses_eval_mode_and_restores_training(tmp_path: Path) -> None:
    from hamburger.models.export import export_model

    model = create_model("tiny_ham", num_classes=3, **SMALL).train()
    report = export_model(model, tmp_path / "m.pt2", format="torch_export", height=H, width=W)
    assert model.training  # restored
    program = torch.export.load(str(tmp_path / "m.pt2")).module()
    x = _image(1, 3, H, W)
    with torch.no_grad():
        eval_out = model.eval()(x)["out"]
    assert float((program(x) - eval_out).abs().max()) < 1e-5  # eval steps and BatchNorm statistics, not training's
    assert report.max_abs_diff < 1e-5 and report.checked_with == "torch.export"


def test_a_difference_above_the_tolerance_writes_nothing(pretrained: Path, tmp_path: Path, monkeypatch, capsys):
    from hamburger.models import export

    out = tmp_path / "model.pt2"
    out.write_bytes(b"old export")
    monkeypatch.setattr(export, "_max_diff", lambda run, eager, inputs: 0.5)
    args = ["export", str(pretrained), "--format", "torch_export", "--output", str(out), "--height", "16",
            "--width", "16"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "0.5" in err[0] and "tolerance" in err[0]
    assert out.read_bytes() == b"old export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt2"]


def test_cd_onnx_needs_newton_schulz(tmp_path: Path, capsys) -> None:
    pytest.importorskip("onnx")
    folder = tmp_path / "cd"
    create_model("tiny_ham", num_classes=4, ham="cd", **SMALL).save_pretrained(folder)
    out = tmp_path / "cd.onnx"
    base = ["export", str(folder), "--format", "onnx", "--output", str(out), "--height", str(H), "--width", str(W)]
    assert main(base) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "newton_schulz" in err[-1] and "linalg.solve" in err[-1]
    assert not out.exists()
    assert main([*base, "--cd_solve", "newton_schulz"]) == 0
    assert out.is_file() and "max |exported - eager|" in capsys.readouterr().out


def test_user_errors_are_one_line(pretrained: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    cases = [
        (["export", str(tmp_path / "gone.ckpt"), "--format", "onnx", "--output", str(tmp_path / "x.onnx")], "gone"),
        (["export", str(pretrained), "--format", "tflite", "--output", str(tmp_path / "x")], "tflite"),
        (["export", str(pretrained), "--format", "onnx", "--output", str(pretrained)], "overwrite the input"),
        (["export", str(pretrained), "--format", "torch_export", "--output", str(tmp_path), "--height", "8"], "folder"),
        (["export", str(pretrained), "--format", "torch_export", "--output", "x.pt2", "--height", "0"], "height"),
    ]
    for args, expected in cases:
        try:
            code = main(args)
        except SystemExit as stop:  # argparse errors exit (one line: the training core's ArgumentParser)
            code = stop.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and expected in err[0], (args, err)
    import importlib.util

    from hamburger.models import export

    real = importlib.util.find_spec
    monkeypatch.setattr(export.importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name))
    assert main(["export", str(pretrained), "--format", "onnx", "--output", str(tmp_path / "y.onnx")]) == 2
    assert "hamburger[export]" in capsys.readouterr().err
    assert not (tmp_path / "y.onnx").exists()
