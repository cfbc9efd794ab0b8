"""Configs shipped in the package: ``--config NAME`` from any folder, ``hamburger configs list/show/copy``, the
folder template, the wheel's package data, ``hamburger --version``."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import hamburger
from hamburger.cli import main
from hamburger.utils.configs import config_root, find_config, list_configs, resolve_config

REPO = Path(__file__).resolve().parents[1]
PACKAGED = sorted((REPO / "src" / "hamburger" / "configs").glob("*/*.yaml"))

# the default recipe shrunk to seconds (as in tests/recipes/test_cli_seg.py)
TINY = [
    "--trainer.max_steps=2", "--trainer.val_check_interval=2", "--trainer.enable_progress_bar=false",
    "--trainer.log_every_n_steps=1", "--checkpoint.every_n_train_steps=2", "--data.batch_size=2",
    "--data.val_batch_size=2", "--data.crop_size=32",
    "--model.model_kwargs={backbone_kwargs: {widths: [8, 16, 32], depth: 1}, channels: 16, ham_channels: 16, rank: 4}",
]  # fmt: skip


def test_version(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"hamburger {hamburger.__version__}\n"
    out = subprocess.run(
        [sys.executable, "-m", "hamburger", "--version"], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    ).stdout  # fmt: skip
    assert out.strip() == f"hamburger {hamburger.__version__}"
    assert main(["--help"]) == 0 and "--version" in capsys.readouterr().out


def test_the_configs_live_in_the_package_only() -> None:
    assert config_root() == REPO / "src" / "hamburger" / "configs"
    assert not list((REPO / "configs").rglob("*.yaml")), "one copy: the configs moved to src/hamburger/configs"
    assert {p.name for p in PACKAGED} >= {"fashion_scenes.yaml", "folder_template.yaml", "voc_hamnet_r101.yaml"}


def test_configs_list_shows_every_packaged_file(capsys) -> None:
    assert [(c.task, c.name) for c in list_configs()] == [(p.parent.name, p.stem) for p in PACKAGED]
    assert main(["configs", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["name", "task", "description"]
    assert len(rows) == 1 + len(PACKAGED)
    for path, row in zip(PACKAGED, rows[1:], strict=True):
        first_comment = path.read_text(encoding="utf-8").splitlines()[0].lstrip("#").strip()
        assert row.split()[:2] == [path.stem, path.parent.name]
        assert row.endswith(first_comment), (row, first_comment)


def test_configs_show_prints_the_file(capsys) -> None:
    assert main(["configs", "show", "fashion_scenes"]) == 0
    assert capsys.readouterr().out == find_config("fashion_scenes").read_text(encoding="utf-8")
    assert main(["configs", "show", "fashion_scnes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fashion_scnes" in err[0]
    assert all(p.stem in err[0] for p in PACKAGED)  # the error lists the available names


def test_configs_copy_never_overwrites(tmp_path: Path, capsys) -> None:
    source = find_config("folder_template")
    dest = tmp_path / "mine.yaml"
    assert main(["configs", "copy", "folder_template", str(dest)]) == 0
    assert dest.read_bytes() == source.read_bytes()
    dest.write_text("# my edits\n")
    assert main(["configs", "copy", "fashion_scenes", str(dest)]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and len(err.strip().splitlines()) == 1
    assert dest.read_text() == "# my edits\n"  # untouched
    assert main(["configs", "copy", "fashion_scenes", str(tmp_path)]) == 0  # a folder: DEST/NAME.yaml
    assert (tmp_path / "fashion_scenes.yaml").read_bytes() == find_config("fashion_scenes").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_resolve_config_rules(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    packaged = os.fspath(find_config("fashion_scenes"))
    assert resolve_config("fashion_scenes") == packaged
    assert resolve_config("fashion_scenes.yaml") == packaged
    assert resolve_config("seg/fashion_scenes") == packaged
    assert resolve_config("configs/seg/fashion_scenes.yaml") == "configs/seg/fashion_scenes.yaml"  # a path: as is
    (tmp_path / "fashion_scenes.yaml").write_text("seed_everything: 1\n")
    assert resolve_config("fashion_scenes.yaml") == "fashion_scenes.yaml"  # an existing file wins
    with pytest.raises(ValueError, match="packaged configs: .*fashion_scenes"):
        resolve_config("nope")
    with pytest.raises(TypeError, match="str"):
        resolve_config(3)  # type: ignore[arg-type]


def test_fit_by_name_from_any_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    before = {p: p.read_bytes() for p in PACKAGED}
    code = main(["seg", "fit", "--config", "fashion_scenes", *TINY, "--data.train_kwargs={num_scenes: 4}",
                 "--data.val_kwargs={num_scenes: 2}"])  # fmt: skip
    assert code == 0
    from hamburger.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "runs" / "seg" / "fashion_scenes" / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 2 and ckpt["hyper_parameters"]["model"] == "tiny_ham"
    assert {p: p.read_bytes() for p in PACKAGED} == before  # nothing written into the package
    assert not list(config_root().rglob("runs"))


def test_an_existing_file_wins_over_the_packaged_name(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    text = find_config("fashion_scenes").read_text().replace("runs/seg/fashion_scenes", "elsewhere/mine")
    (tmp_path / "fashion_scenes.yaml").write_text(text)
    assert main(["seg", "fit", "--config", "fashion_scenes.yaml", "--print_config"]) == 0
    assert "default_root_dir: elsewhere/mine" in capsys.readouterr().out
    assert main(["seg", "fit", "--config=fashion_scenes", "--print_config"]) == 0  # no such file: the packaged one
    assert "default_root_dir: runs/seg/fashion_scenes" in capsys.readouterr().out


def test_unknown_config_name_lists_the_packaged_ones(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    for command in (["seg", "fit", "--config", "fashon_scenes"], ["seg", "compare", "--config", "fashon_scenes"]):
        try:
            code = main(command)
        except SystemExit as stop:  # compare's argument errors exit through argparse, as python -m would
            code = stop.code
        assert code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "fashon_scenes" in err[0] and "fashion_scenes_context" in err[0], err
    assert not any(tmp_path.iterdir())


def test_compare_accepts_a_config_name(tmp_path: Path, monkeypatch) -> None:
    """compare reads the YAML itself: a name gives the packaged file's root (checked before any training)."""
    monkeypatch.chdir(tmp_path)
    from hamburger.training import compare

    seen = {}

    def fake_runs(build_cli, *, config, models, root, overrides, score, **timing):
        seen.update(config=config, root=root, models=models)
        raise ValueError("stop here")

    monkeypatch.setattr(compare, "compare_runs", fake_runs)
    assert main(["seg", "compare", "--config", "fashion_scenes_context", "--baseline", "tiny_fcn"]) == 2
    assert seen["config"] == os.fspath(find_config("fashion_scenes_context"))
    assert seen["root"] == os.path.join("runs/seg/fashion_scenes_context", "compare")
    assert seen["models"][1:] == ["tiny_fcn"]


def _write_folder_dataset(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for i in range(n):
            image = rng.integers(0, 256, (53, 67, 3), dtype=np.uint8)  # 67x53: not a multiple of 8
            mask = np.zeros((53, 67), np.uint8)
            mask[10:40, 20 + i : 50] = 1
            Image.fromarray(image).save(root / "images" / split / f"im{i}.jpg", quality=90)
            Image.fromarray(mask).save(root / "masks" / split / f"im{i}.png")


def test_folder_template_marks_the_fields_to_set_and_trains(tmp_path: Path, monkeypatch) -> None:
    text = find_config("folder_template").read_text(encoding="utf-8")
    set_lines = [line.split(":")[0].strip() for line in text.splitlines() if "# SET" in line]
    for key in ("root", "num_classes", "crop_size", "batch_size", "model", "default_root_dir", "max_steps"):
        assert key in set_lines, key
    monkeypatch.chdir(tmp_path)
    _write_folder_dataset(tmp_path / "data")
    assert main(["configs", "copy", "folder_template", "mine.yaml"]) == 0
    Path("mine.yaml").write_text(text.replace("/path/to/DATA", str(tmp_path / "data")))
    args = ["seg", "fit", "--config", "mine.yaml", *TINY, "--trainer.accelerator=cpu", "--data.num_workers=2"]
    assert main(args) == 0
    from hamburger.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "runs" / "seg" / "my_data" / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 2 and ckpt["hyper_parameters"]["num_classes"] == 2  # from dataset_kwargs


def test_package_data_covers_every_config() -> None:
    from setuptools.config.pyprojecttoml import read_configuration

    patterns = read_configuration(REPO / "pyproject.toml")["tool"]["setuptools"]["package-data"]["hamburger"]
    for path in PACKAGED:
        rel = path.relative_to(REPO / "src" / "hamburger").as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel


def test_built_wheel_contains_the_configs(tmp_path: Path) -> None:
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("the build backend needs setuptools >= 77 (build isolation would need the network)")
    tree = tmp_path / "tree"  # build from a copy: no build/ or egg-info left in the checkout
    shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, tree / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation", "-q", "-w",
         str(tmp_path / "dist")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("hamburger-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in PACKAGED:
        assert f"hamburger/configs/{path.parent.name}/{path.name}" in names
    assert "hamburger/utils/configs.py" in names
