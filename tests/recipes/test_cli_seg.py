"""``hamburger seg`` command line: fit / validate / test / predict on a tiny run, one run per checkpoint folder,
evaluation needs a checkpoint, config errors, help."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightning")

from hamburger.recipes.seg.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "src" / "hamburger" / "configs" / "seg"  # shipped in the package
CONFIG = CONFIGS / "fashion_scenes.yaml"

# shrink the default recipe to seconds: a narrow tiny_ham, a handful of scenes and steps
TINY = [
    "--trainer.max_steps=4", "--trainer.val_check_interval=4", "--trainer.enable_progress_bar=false",
    "--trainer.log_every_n_steps=1",
    "--checkpoint.every_n_train_steps=2", "--data.train_kwargs={num_scenes: 16}",
    "--data.val_kwargs={num_scenes: 5}", "--data.batch_size=4", "--data.val_batch_size=2", "--data.crop_size=48",
    "--model.model_kwargs={backbone_kwargs: {widths: [8, 16, 32], depth: 1}, channels: 16, ham_channels: 16, rank: 4}",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seg_cli")
    assert main(["fit", "--config", str(CONFIG), f"--trainer.default_root_dir={root}", *TINY]) == 0
    return root


def test_fit_writes_checkpoints_logs_and_plot(trained: Path) -> None:
    ckpts = sorted(os.listdir(trained / "checkpoints"))
    assert {"last.ckpt", "step0000004.ckpt", "training_curves.png"} <= set(ckpts)
    assert not [f for f in ckpts if f.endswith(".tmp")]
    metrics = next((trained / "logs").glob("version_*/metrics.csv")).read_text()
    assert "train/loss" in metrics and "val/mIoU" in metrics
    from hamburger.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(trained / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 4 and ckpt["hyper_parameters"]["num_classes"] == 11  # linked from the data


def test_validate_prints_table_and_json(trained: Path, capsys) -> None:
    out_json = trained / "val.json"
    code = main(
        ["validate", "--config", str(CONFIG), f"--trainer.default_root_dir={trained}", *TINY,
         "--ckpt_path", str(trained / "checkpoints" / "last.ckpt"), f"--results_json={out_json}"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "background" in printed and "Trouser" in printed
    scores = json.loads(out_json.read_text())
    assert 0.0 <= scores["mIoU"] <= 1.0 and len(scores["per_class"]) == 11
    assert scores["num_pixels"] == 5 * 64 * 64  # every validation pixel counted once (no ignore in scenes)


def test_predict_writes_palette_masks(trained: Path, tmp_path: Path) -> None:
    from PIL import Image

    from hamburger.recipes.seg.data import build_dataset

    ds = build_dataset("fashion_scenes", split="val", num_scenes=2)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(2):
        Image.fromarray(ds[i]["image"].permute(1, 2, 0).numpy()).save(inputs / f"scene{i}.jpg")
    out = tmp_path / "out"
    code = main(["predict", "--ckpt_path", str(trained / "checkpoints" / "last.ckpt"), "--input", str(inputs),
                 "--output", str(out)])  # fmt: skip
    assert code == 0
    assert sorted(os.listdir(out)) == ["scene0.png", "scene0_overlay.png", "scene1.png", "scene1_overlay.png"]
    mask = Image.open(out / "scene0.png")
    assert mask.mode == "P" and mask.size == (64, 64)
    assert int(np.asarray(mask).max()) < 11
    assert np.asarray(Image.open(out / "scene0_overlay.png")).shape == (64, 64, 3)
    # a single file works too; a missing input is a clear error
    assert main(["predict", "--ckpt_path", str(trained / "checkpoints" / "last.ckpt"), "--input",
                 str(inputs / "scene1.jpg"), "--output", str(tmp_path / "one")]) == 0  # fmt: skip
    with pytest.raises(SystemExit):
        main(["predict", "--ckpt_path", str(trained / "checkpoints" / "last.ckpt"), "--input",
              str(tmp_path / "nope"), "--output", str(out)])  # fmt: skip


def test_wrong_config_key_is_named(tmp_path: Path, capsys) -> None:
    code = main(["fit", "--config", str(CONFIG), "--model.learning_rate=0.1", f"--trainer.default_root_dir={tmp_path}"])
    assert code != 0
    assert "learning_rate" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("  batch_size: 16", "  batch_sise: 16"))
    assert main(["fit", "--config", str(bad)]) != 0
    assert "batch_sise" in capsys.readouterr().err


def test_missing_checkpoint_is_named(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--ckpt_path", str(tmp_path / "gone.ckpt"), "--input", str(CONFIG), "--output", str(tmp_path)])
    assert "gone.ckpt" in capsys.readouterr().err


def test_compare_trains_every_model_once_and_writes_json(tmp_path: Path, capsys) -> None:
    args = ["compare", "--config", str(CONFIG), "--root", str(tmp_path), "--baseline", "tiny_fcn", "tiny_ham",
            "tiny_fcn", "--timing_warmup", "1"]  # fmt: skip
    assert main([*args, *TINY, "--data.dataset_kwargs={variant: consensus}"]) == 0
    report = json.loads((tmp_path / "compare.json").read_text())
    assert [r["model"] for r in report["results"]] == ["tiny_ham", "tiny_fcn"]  # config model first, no repeats
    assert all(r["steps"] == 4 and 0.0 <= r["mIoU"] <= 1.0 for r in report["results"])
    # every model: 1 untimed warm-up step, 3 timed ones; the warm-up run's scratch folder is gone
    assert all((r["warmup_steps"], r["timed_steps"]) == (1, 3) and r["step_seconds"] > 0 for r in report["results"])
    assert report["timing_warmup"] == 1 and sorted(os.listdir(tmp_path)) == ["compare.json", "tiny_fcn", "tiny_ham"]
    ham, fcn = report["results"]
    assert ham["params"] > fcn["params"]  # the FCN is the same model without the context block
    printed = capsys.readouterr().out
    assert "tiny_ham" in printed and "tiny_fcn" in printed and "s/step" in printed
    block = printed[printed.index("IoU % per class") :].splitlines()
    assert block[1].split() == ["class", "tiny_ham", "tiny_fcn"]
    rows = {line.rsplit(None, 2)[0].strip(): line.split()[-2:] for line in block[2:13]}  # names may hold spaces
    assert list(rows)[:2] == ["background", "T-shirt/top"] and len(rows) == 11
    for name, cells in rows.items():  # the per-class IoUs of compare.json, in % with 2 decimals
        for r, cell in zip(report["results"], cells, strict=True):
            value = r["per_class_IoU"][name]
            assert cell == ("-" if value is None else f"{100 * value:.2f}"), name


def test_compare_rejects_unknown_model_before_training(tmp_path: Path, capsys) -> None:
    args = ["compare", "--config", str(CONFIG), "--root", str(tmp_path), "--baseline", "tiny_fcn", "tiny_atention"]
    assert main(args) == 2
    assert "tiny_atention" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_help_and_unknown_command(capsys) -> None:
    assert main([]) == 0 and "compare" in capsys.readouterr().out
    assert main(["train"]) == 2 and "unknown command" in capsys.readouterr().err
    from hamburger.cli import main as top_main

    assert top_main(["seg", "--help"]) == 0


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_parse(name: str, capsys) -> None:
    assert main(["fit", "--config", str(CONFIGS / name), "--print_config"]) == 0
    printed = capsys.readouterr().out
    assert "model:" in printed and "checkpoint:" in printed


def test_no_import_cycles_in_the_recipe_and_training_core() -> None:
    """Imports anywhere in a module (also inside functions) between recipes.seg / training modules are acyclic."""
    import ast

    package = REPO / "src" / "hamburger"
    modules = {
        ".".join(p.relative_to(package).with_suffix("").parts): p
        for folder in ("recipes/seg", "training")
        for p in (package / folder).glob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        base = name.split(".")[:-1]  # the package a relative import starts from
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                parts = (base[: len(base) - node.level + 1] if node.level else []) + (node.module or "").split(".")
                parts = [p for p in parts if p and p != "hamburger"]
                targets = [".".join(parts)] + [".".join([*parts, a.name]) for a in node.names]
                deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps

    def visit(node: str, stack: list[str]) -> None:
        assert node not in stack, f"import cycle: {' -> '.join([*stack[stack.index(node) :], node])}"
        for dep in graph[node]:
            visit(dep, [*stack, node])

    assert "recipes.seg.compare" in graph["recipes.seg.cli"]  # the check sees the dispatcher's imports
    for module in graph:
        visit(module, [])


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def test_second_fresh_fit_into_a_used_folder_is_refused(trained: Path, tmp_path: Path, capsys) -> None:
    shutil.copytree(trained / "checkpoints", tmp_path / "checkpoints")
    ckpt = tmp_path / "checkpoints"
    before = {p.name: p.read_bytes() for p in ckpt.glob("*.ckpt")}
    capsys.readouterr()
    assert main(["fit", "--config", str(CONFIG), f"--trainer.default_root_dir={tmp_path}", *TINY]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "already holds checkpoints" in _last_line(err)
    assert "--ckpt_path last" in _last_line(err) and "--checkpoint.overwrite true" in _last_line(err)
    assert {p.name: p.read_bytes() for p in ckpt.glob("*.ckpt")} == before  # nothing written, nothing deleted
    # the explicit opt-in starts over: the earlier run's files are replaced, never versioned
    args = ["fit", "--config", str(CONFIG), f"--trainer.default_root_dir={tmp_path}", *TINY]
    assert main([*args, "--trainer.max_steps=2", "--checkpoint.overwrite=true"]) == 0
    assert sorted(p.name for p in ckpt.glob("*.ckpt")) == ["last.ckpt", "step0000002.ckpt"]
    from hamburger.training.checkpoint import load_checkpoint

    assert load_checkpoint(ckpt / "last.ckpt")["global_step"] == 2
    # and --ckpt_path last continues that run (from last.ckpt, the newest)
    assert main([*args, "--trainer.max_steps=4", "--ckpt_path", "last"]) == 0
    assert sorted(p.name for p in ckpt.glob("*.ckpt")) == ["last.ckpt", "step0000004.ckpt"]
    assert load_checkpoint(ckpt / "last.ckpt")["global_step"] == 4


def test_validate_and_test_need_a_checkpoint(trained: Path, tmp_path: Path, capsys) -> None:
    base = ["--config", str(CONFIG), f"--trainer.default_root_dir={tmp_path}", *TINY]
    for command in ("validate", "test"):
        assert main([command, *base]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "needs --ckpt_path" in _last_line(err)
        assert "--allow_no_checkpoint" in _last_line(err)
    assert main(["validate", *base, "--ckpt_path", "last"]) == 2  # no last.ckpt in this folder
    assert "no last*.ckpt in" in _last_line(capsys.readouterr().err)
    assert not list(tmp_path.glob("*_results*.json"))  # nothing scored, nothing written
    # test scores the test split: no built-in dataset has a labelled one, so it is refused, not run on val
    code = main(["test", *base, "--ckpt_path", str(trained / "checkpoints" / "last.ckpt")])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "data.test_split is not set" in _last_line(err)


def _write_folder_split(root: Path, split: str, count: int, size: tuple[int, int]) -> None:
    from PIL import Image

    h, w = size
    rng = np.random.default_rng(len(split))
    for folder in ("images", "masks"):
        (root / folder / split).mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "images" / split / f"{i}.jpg")
        mask = np.zeros((h, w), dtype=np.uint8)
        mask[h // 2 :] = 1
        mask[0] = 255  # ignored
        Image.fromarray(mask, mode="L").save(root / "masks" / split / f"{i}.png")


def test_test_scores_the_test_split(tmp_path: Path, capsys) -> None:
    # a folder dataset with labelled train / val / test splits of different sizes; 67x53 images (not multiples
    # of 8), JPEG images and PNG masks with 255 = ignore
    data = tmp_path / "data"
    for split, count in (("train", 4), ("val", 2), ("test", 3)):
        _write_folder_split(data, split, count, (53, 67))
    out = tmp_path / "test.json"
    args = [
        "test", "--config", str(CONFIG), f"--trainer.default_root_dir={tmp_path}", "--data.dataset=folder",
        f"--data.root={data}", "--data.dataset_kwargs={num_classes: 2}", "--data.train_kwargs={}",
        "--data.val_kwargs={}", "--data.test_split=test", "--data.val_batch_size=1", "--data.num_workers=2",
        "--trainer.enable_progress_bar=false", TINY[-1], "--allow_no_checkpoint=true", f"--results_json={out}",
    ]  # fmt: skip
    assert main(args) == 0
    scores = json.loads(out.read_text())
    assert scores["num_pixels"] == 3 * 52 * 67  # the 3 test images, without their ignored first rows
    assert len(scores["per_class"]) == 2
