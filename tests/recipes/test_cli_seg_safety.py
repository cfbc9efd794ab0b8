"""``hamburger seg`` with a real tiny checkpoint: explicit options win over the checkpoint's hyper-parameters,
checkpoints cannot make the CLI import code, and every user error is one line on stderr with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

from hamburger.cli import main as hamburger_main  # noqa: E402
from hamburger.recipes.seg.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "src" / "hamburger" / "configs" / "seg" / "fashion_scenes.yaml"
SMALL = "{backbone_kwargs: {widths: [8, 16, 32], depth: 1}, channels: 16, ham_channels: 16, rank: 4}"
TINY = [
    "--trainer.max_steps=4", "--trainer.val_check_interval=4", "--trainer.enable_progress_bar=false",
    "--checkpoint.every_n_train_steps=2", "--data.train_kwargs={num_scenes: 16}",
    "--data.val_kwargs={num_scenes: 3}", "--data.batch_size=4", "--data.val_batch_size=3", "--data.crop_size=40",
    f"--model.model_kwargs={SMALL}",
]  # fmt: skip
# what validate needs besides the checkpoint: the data (the model options come from the checkpoint)
VAL_DATA = ["--trainer.enable_progress_bar=false", "--data.val_kwargs={num_scenes: 3}", "--data.val_batch_size=3"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seg_safety")
    assert main(["fit", "--config", str(CONFIG), f"--trainer.default_root_dir={root}", *TINY]) == 0
    return root


@pytest.fixture(scope="module")
def ckpt(run: Path) -> Path:
    """The run's checkpoint with a random classifier: 4 steps predict only background, and then every
    evaluation protocol gives the same scores; random class weights make the protocols distinguishable."""
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    gen = torch.Generator().manual_seed(0)
    for key in ("net.head.classifier.weight", "net.head.classifier.bias"):
        state["state_dict"][key] = 3.0 * torch.randn(state["state_dict"][key].shape, generator=gen)
    path = run / "varied.ckpt"
    torch.save(state, path)
    return path


def _validate(run: Path, ckpt: Path, out: Path, *extra: str) -> dict:
    argv = ["validate", "--config", str(CONFIG), f"--trainer.default_root_dir={run}", *VAL_DATA,
            "--ckpt_path", str(ckpt), f"--results_json={out}", *extra]  # fmt: skip
    assert main(argv) == 0
    return json.loads(out.read_text())


def _api_scores(ckpt: Path, **eval_options) -> dict:
    """The reference: the checkpoint's module evaluated through the Python API with ``eval_options``."""
    import lightning.pytorch as pl

    from hamburger.recipes.seg.datamodule import SegDataModule
    from hamburger.recipes.seg.predict import load_module

    module, _ = load_module(str(ckpt))
    module.hparams.update(eval_options)
    dm = SegDataModule("fashion_scenes", dataset_kwargs={"canvas_size": 64, "variant": "plain"},
                       val_kwargs={"num_scenes": 3}, val_batch_size=3, num_workers=0)  # fmt: skip
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.validate(module, datamodule=dm, verbose=False)
    return module.last_scores


# ---------------------------------------------------------------------- explicit values win (issue 6)
def test_validate_uses_explicit_eval_options_not_the_checkpoints(run: Path, ckpt: Path, tmp_path: Path) -> None:
    assert torch.load(ckpt, weights_only=True)["hyper_parameters"]["eval_mode"] == "single"
    scores = _validate(run, ckpt, tmp_path / "ms.json", "--model.eval_mode=multiscale", "--model.eval_flip=true",
                       "--model.eval_scales=[0.75, 1.0, 1.5]")  # fmt: skip
    assert (scores["eval_mode"], scores["eval_flip"], scores["eval_scales"]) == ("multiscale", True, [0.75, 1.0, 1.5])
    multiscale = _api_scores(ckpt, eval_mode="multiscale", eval_flip=True, eval_scales=[0.75, 1.0, 1.5])
    single = _api_scores(ckpt, eval_mode="single")
    assert multiscale["confusion_matrix"] != single["confusion_matrix"]  # the two protocols are told apart
    assert scores["confusion_matrix"] == multiscale["confusion_matrix"]  # the command line's protocol was used
    assert scores["mIoU"] == pytest.approx(multiscale["mIoU"])
    # without the options the checkpoint's single-scale protocol is used
    plain = _validate(run, ckpt, tmp_path / "ss.json")
    assert plain["eval_mode"] == "single" and plain["confusion_matrix"] == single["confusion_matrix"]


def test_validate_uses_explicit_sliding_window(run: Path, ckpt: Path, tmp_path: Path) -> None:
    scores = _validate(run, ckpt, tmp_path / "slide.json", "--model.eval_mode=slide", "--model.eval_crop_size=48",
                       "--model.eval_stride=16")  # fmt: skip
    assert (scores["eval_mode"], scores["eval_crop_size"], scores["eval_stride"]) == ("slide", 48, 16)
    reference = _api_scores(ckpt, eval_mode="slide", eval_crop_size=48, eval_stride=16)
    assert scores["confusion_matrix"] == reference["confusion_matrix"]


def test_explicit_values_in_a_config_file_win_too(run: Path, ckpt: Path, tmp_path: Path) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text(CONFIG.read_text().replace("  eval_mode: single", "  eval_mode: multiscale\n  eval_flip: false"))
    out = tmp_path / "cfg.json"
    argv = ["validate", "--config", str(config), f"--trainer.default_root_dir={run}", *VAL_DATA,
            "--ckpt_path", str(ckpt), f"--results_json={out}"]  # fmt: skip
    assert main(argv) == 0
    scores = json.loads(out.read_text())
    assert (scores["eval_mode"], scores["eval_flip"]) == ("multiscale", False)


# ---------------------------------------------------------------------- checkpoints cannot import code (issue 7)
EVIL = """
import pathlib
MARKER = pathlib.Path({marker!r})
MARKER.parent.mkdir(parents=True, exist_ok=True)
MARKER.write_text("imported")


def factory(**kwargs):
    MARKER.write_text("factory called")
    from hamburger.models import create_model
    return create_model("tiny_ham", **kwargs)


class Evil:
    def __init__(self, *args, **kwargs):
        MARKER.write_text("class instantiated")
"""


@pytest.fixture
def evil(tmp_path: Path, monkeypatch, ckpt: Path):
    """A module that writes a marker file when imported or called, and checkpoints that name it."""
    marker = tmp_path / "marker" / "pwned.txt"
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "evil_factory.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.delitem(sys.modules, "evil_factory", raising=False)  # imported afresh (or not at all) per test
    state = torch.load(ckpt, weights_only=True)
    crafted = {}
    state["hyper_parameters"]["model"] = "evil_factory:factory"
    torch.save(state, tmp_path / "import_path.ckpt")
    crafted["import_path"] = tmp_path / "import_path.ckpt"
    state = torch.load(ckpt, weights_only=True)  # a jsonargparse class spec hidden in model_kwargs
    state["hyper_parameters"]["model_kwargs"]["norm"] = {"class_path": "evil_factory.Evil", "init_args": {}}
    torch.save(state, tmp_path / "class_spec.ckpt")
    crafted["class_spec"] = tmp_path / "class_spec.ckpt"
    for path in crafted.values():  # plain dicts and tensors: weights_only loading does not stop them
        torch.load(path, weights_only=True)
    return crafted, marker


@pytest.mark.parametrize("kind", ["import_path", "class_spec"])
def test_crafted_checkpoint_is_refused_by_validate_and_predict(evil, kind, run, tmp_path, capsys) -> None:
    crafted, marker = evil
    image = REPO / "docs" / "img" / "fashion_scenes.png"
    code = main(["validate", "--config", str(CONFIG), f"--trainer.default_root_dir={tmp_path}", *VAL_DATA,
                 "--ckpt_path", str(crafted[kind])])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(crafted[kind]) in err
    assert ("import path 'evil_factory:factory'" if kind == "import_path" else "class spec") in err
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--ckpt_path", str(crafted[kind]), "--input", str(image), "--output", str(tmp_path / "o")])
    assert stop.value.code == 2
    assert str(crafted[kind]) in capsys.readouterr().err
    from hamburger.recipes.seg.module import SegModule

    with pytest.raises(ValueError, match="import path|class spec"):
        SegModule.load_from_checkpoint(crafted[kind])
    assert not marker.exists()  # nothing was imported or called
    assert "evil_factory" not in sys.modules


def test_an_import_path_the_user_types_is_trusted(evil, ckpt, tmp_path, capsys) -> None:
    crafted, marker = evil
    image = REPO / "docs" / "img" / "fashion_scenes.png"
    argv = ["predict", "--input", str(image), "--output", str(tmp_path)]
    with pytest.raises(SystemExit):  # naming another model does not trust the checkpoint's import path
        main([*argv, "--ckpt_path", str(crafted["import_path"]), "--model", "tiny_ham"])
    assert "import path" in capsys.readouterr().err and not marker.exists()
    assert main([*argv, "--ckpt_path", str(crafted["import_path"]), "--model", "evil_factory:factory"]) == 0
    assert marker.read_text() == "factory called" and (tmp_path / "fashion_scenes.png").is_file()
    with pytest.raises(SystemExit):  # a model other than the checkpoint's is an error
        main([*argv, "--ckpt_path", str(ckpt), "--model", "tiny_fcn"])
    assert "differs from the checkpoint's model" in capsys.readouterr().err


# ---------------------------------------------------------------------- one-line user errors (issue 8)
def _errors(run: Path, ckpt: Path, tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    cfg = ["--config", str(CONFIG), f"--trainer.default_root_dir={tmp_path / 'r'}", *TINY]
    val = ["--config", str(CONFIG), f"--trainer.default_root_dir={run}", *VAL_DATA, "--ckpt_path", str(ckpt)]
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    text = tmp_path / "text.ckpt"
    text.write_text("not a checkpoint")
    wrong_k = tmp_path / "wrong_k.ckpt"
    state = torch.load(ckpt, weights_only=True)
    state["hyper_parameters"]["num_classes"] = 21
    torch.save(state, wrong_k)
    folder = ["--data.dataset=folder", f"--data.root={tmp_path / 'no_data'}", "--data.dataset_kwargs={num_classes: 3}",
              "--data.train_kwargs=null", "--data.val_kwargs=null"]  # fmt: skip
    return {
        "unknown model": (["fit", *cfg, "--model.model=tiny_hamm"], "unknown model 'tiny_hamm'"),
        "batch_size 0": (["fit", *cfg, "--data.batch_size=0"], "batch_size must be a positive int, got 0"),
        "negative lr": (["fit", *cfg, "--model.lr=-0.1"], "lr must be"),
        "negative weight decay": (["fit", *cfg, "--model.weight_decay=-1"], "weight_decay must be"),
        "wrong type": (["fit", *cfg, "--data.batch_size=abc"], "data.batch_size"),
        "unknown option": (["fit", *cfg, "--model.learning_rate=0.1"], "--model.learning_rate"),
        "abbreviated option": (["fit", *cfg, "--data.crop=96"], "unrecognized arguments: --data.crop=96"),
        "bad choice": (["fit", *cfg, "--model.eval_mode=ms"], "model.eval_mode"),
        "unknown model option": (["fit", *cfg, "--model.model_kwargs={rnk: 3}"], "'rnk'"),
        "unknown dataset": (["fit", *cfg, "--data.dataset=nope"], "unknown dataset 'nope'"),
        "missing dataset root": (["fit", *cfg, *folder], "root not found"),
        "empty yaml": (["fit", "--config", str(empty)], "the file is empty"),
        "missing yaml": (["fit", "--config", str(tmp_path / "none.yaml")], "none.yaml"),
        "bad trainer devices": (["fit", *cfg, "--trainer.devices=0"], "devices"),
        "results file is a folder": (["validate", *val, f"--results_json={tmp_path}"], "is a folder"),
        "results file unwritable": (["validate", *val, f"--results_json={empty}/x.json"], "cannot create its folder"),
        "non-checkpoint ckpt_path": (["validate", *val[:-1], str(CONFIG)], "is not a checkpoint"),
        "text ckpt_path": (["validate", *val[:-1], str(text)], "is not a checkpoint"),
        "missing ckpt_path": (["validate", *val[:-1], str(tmp_path / "gone.ckpt")], "gone.ckpt"),
        "architecture change": (["validate", *val, "--model.model=tiny_fcn"], "defines the checkpoint's architecture"),
        "classes differ": (["validate", *val[:-1], str(wrong_k)], "num_classes=11"),
        "resume with new lr": (
            ["fit", *cfg[:2], f"--trainer.default_root_dir={run}", *TINY, "--ckpt_path", "last", "--model.lr=0.5"],
            "optimiser and scheduler state",
        ),  # fmt: skip
        "unknown command": (["train"], "unknown command 'train'"),
        "predict missing input": (
            ["predict", "--ckpt_path", str(ckpt), "--input", str(tmp_path / "none"), "--output", str(tmp_path)],
            "no such file or folder",
        ),  # fmt: skip
        "predict non-checkpoint": (
            ["predict", "--ckpt_path", str(CONFIG), "--input", str(CONFIG), "--output", str(tmp_path)],
            "is not a checkpoint",
        ),  # fmt: skip
        "predict abbreviated": (["predict", "--ckpt", str(ckpt), "--input", "x", "--output", "y"], "required"),
        "compare unknown baseline": (["compare", "--config", str(CONFIG), "--baseline", "nope"], "'nope'"),
        "compare bad override": (
            ["compare", "--config", str(CONFIG), "--root", str(tmp_path / "c"), "--data.bogus=1"],
            "--data.bogus",
        ),  # fmt: skip
    }


CASES = [
    "unknown model", "batch_size 0", "negative lr", "negative weight decay", "wrong type", "unknown option",
    "abbreviated option", "bad choice", "unknown model option", "unknown dataset", "missing dataset root",
    "empty yaml", "missing yaml", "bad trainer devices", "results file is a folder", "results file unwritable",
    "non-checkpoint ckpt_path", "text ckpt_path", "missing ckpt_path", "architecture change", "classes differ",
    "resume with new lr", "unknown command", "predict missing input", "predict non-checkpoint",
    "predict abbreviated", "compare unknown baseline", "compare bad override",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_user_error_is_one_line(case: str, run: Path, ckpt: Path, tmp_path: Path, capsys) -> None:
    argv, expected = _errors(run, ckpt, tmp_path)[case]
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (run / "checkpoints").iterdir())
    try:
        code = hamburger_main(["seg", *argv])
    except SystemExit as stop:  # argparse-based commands (predict) exit from their parser
        code = stop.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    command = argv[0] if argv[0] in ("fit", "validate", "test", "predict", "compare") else ""
    assert lines[0].startswith(f"hamburger seg {command}".strip() + ": error: "), lines[0]
    assert expected in lines[0]
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (run / "checkpoints").iterdir()) == before  # no training


def test_usage_names_the_full_command(capsys) -> None:
    assert main(["fit", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: hamburger seg")


def test_real_bugs_keep_their_traceback(monkeypatch, tmp_path: Path) -> None:
    from hamburger.recipes.seg.datamodule import SegDataModule

    def broken(self, stage=None):
        raise RuntimeError("a real bug")

    monkeypatch.setattr(SegDataModule, "setup", broken)
    with pytest.raises(RuntimeError, match="a real bug"):
        main(["fit", "--config", str(CONFIG), f"--trainer.default_root_dir={tmp_path}", *TINY])


def test_error_line_in_a_real_process(tmp_path: Path) -> None:
    """What a user sees in a terminal: the error line and exit code 2, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "hamburger", "seg", "fit", "--config", str(CONFIG), "--data.batch_size=0",
         f"--trainer.default_root_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "hamburger seg fit: error: batch_size must be a positive int, got 0"
    assert "Traceback" not in proc.stderr


def test_resume_from_last_takes_the_checkpoints_architecture(run: Path, tmp_path: Path) -> None:
    """``fit --ckpt_path last`` reads the model options of ``last.ckpt`` as a checkpoint path would: a config
    that does not restate ``model_kwargs`` resumes the small model instead of failing to load its weights."""
    import shutil

    (tmp_path / "checkpoints").mkdir()
    shutil.copy(run / "checkpoints" / "last.ckpt", tmp_path / "checkpoints" / "last.ckpt")
    without_model_kwargs = [a for a in TINY if not a.startswith("--model.model_kwargs")]
    argv = ["fit", "--config", str(CONFIG), f"--trainer.default_root_dir={tmp_path}", *without_model_kwargs,
            "--trainer.max_steps=6", "--ckpt_path", "last"]  # fmt: skip
    assert main(argv) == 0
    state = torch.load(tmp_path / "checkpoints" / "step0000006.ckpt", weights_only=True)
    assert state["global_step"] == 6
    assert state["hyper_parameters"]["model_kwargs"]["channels"] == 16  # the checkpoint's, not the default
