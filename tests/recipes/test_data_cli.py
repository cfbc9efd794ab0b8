"""Real user data through ``hamburger seg``: 0/255 masks, 16-bit TIFFs, corrupt files, all-ignore batches, and a
``seg predict`` that never loses or overwrites the user's files (issue 10).

The data are what a user brings: grey-level 12-bit slices in 16-bit TIFF files (67x53, not a multiple of 8) with
binary masks saved as 0/255 PNGs.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("lightning")

from hamburger.cli import main  # noqa: E402

SH, SW = 53, 67  # image height, width: not multiples of 8

TINY_MODEL = "{backbone_kwargs: {widths: [8, 16, 32], depth: 1}, channels: 16, ham_channels: 16, rank: 4}"


def tiny_args(root: Path, run: Path, *, dataset_kwargs: str, model_kwargs: str = TINY_MODEL) -> list[str]:
    return [
        "--seed_everything=1", "--model.model=tiny_ham", f"--model.model_kwargs={model_kwargs}", "--model.lr=0.01",
        "--data.dataset=folder", f"--data.root={root}", f"--data.dataset_kwargs={dataset_kwargs}",
        "--data.crop_size=48", "--data.batch_size=2", "--data.num_workers=0",
        "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.max_steps=2", "--trainer.val_check_interval=2",
        "--trainer.check_val_every_n_epoch=null", "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.log_every_n_steps=1", f"--trainer.default_root_dir={run}", "--checkpoint.every_n_train_steps=2",
    ]  # fmt: skip


def slice_12bit(seed: int, mask: np.ndarray) -> np.ndarray:
    """A 12-bit grey-level slice: dim noisy background, bright where ``mask`` is foreground."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(100, 900, size=mask.shape)
    raw[mask > 0] += 3000
    return raw.astype(np.uint16)


def binary_mask(seed: int) -> np.ndarray:
    mask = np.zeros((SH, SW), np.uint8)
    top, left = 5 + 3 * seed, 7 + 5 * seed
    mask[top : top + 25, left : left + 30] = 255
    return mask


def write_split(root: Path, split: str, seeds) -> list[np.ndarray]:
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "masks" / split).mkdir(parents=True, exist_ok=True)
    raws = []
    for seed in seeds:
        mask = binary_mask(seed)
        raw = slice_12bit(seed, mask)
        Image.fromarray(raw).save(root / "images" / split / f"slice{seed}.tif")
        Image.fromarray(mask).save(root / "masks" / split / f"slice{seed}.png")
        raws.append(raw)
    return raws


def run_cli(argv: list[str]) -> int:
    """``hamburger.cli.main``; argparse errors exit through SystemExit, whose code is returned."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code or 0)


def stderr_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step ``hamburger seg fit`` in a subprocess (so the warnings reach a real stderr) on 16-bit TIFF slices
    with 0/255 masks and ``image_scale: 4095``, as a new user would first run it."""
    base = tmp_path_factory.mktemp("data_cli")
    root, run = base / "data", base / "run"
    write_split(root, "train", [0, 1, 2])
    val_raws = write_split(root, "val", [3, 4, 5])
    import hamburger

    source = str(Path(hamburger.__file__).resolve().parents[1])  # the package under test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "hamburger", "seg", "fit",
            *tiny_args(root, run, dataset_kwargs="{num_classes: 2, image_scale: 4095}")]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=base)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"root": root, "run": run, "ckpt": run / "checkpoints" / "last.ckpt", "stderr": done.stderr,
            "val_raws": val_raws}  # fmt: skip


# ------------------------------------------------------------------ 1. 0/255 masks
def test_fit_on_0_255_masks_warns_on_stderr(trained):
    lines = trained["stderr"].splitlines()
    data_warnings = [line for line in lines if "never occur" in line]
    assert len(data_warnings) == 2  # the train and the val split, one line each
    for split, line in zip(("val", "train"), sorted(data_warnings, reverse=True), strict=True):
        assert f"split '{split}'" in line and "1 (class_1) never occur in 3 of 3 masks" in line
        assert "label_map={255: 1}" in line
    (val_warning,) = [line for line in lines if "no ground-truth pixel in the whole validation split" in line]
    assert val_warning.startswith("class(es) class_1 have")
    assert "image_scale" not in trained["stderr"]  # image_scale=4095 matches the 12-bit data: no bit-depth warning


def test_validate_table_shows_missing_class_and_label_map_fixes_it(trained, tmp_path, capsys):
    def validate(dataset_kwargs: str, results: Path) -> int:
        args = tiny_args(trained["root"], tmp_path, dataset_kwargs=dataset_kwargs)
        return run_cli(["seg", "validate", *args, "--ckpt_path", str(trained["ckpt"]), f"--results_json={results}"])

    unmapped = tmp_path / "unmapped.json"
    assert validate("{num_classes: 2, image_scale: 4095}", unmapped) == 0
    out = capsys.readouterr().out
    assert "no ground-truth pixels (Acc '-', left out of mAcc; IoU '-' unless predicted): class_1" in out
    scores = json.loads(unmapped.read_text())
    assert scores["per_class"]["class_1"]["Acc"] is None
    assert scores["num_pixels"] == sum(int((binary_mask(s) == 0).sum()) for s in (3, 4, 5))  # foreground ignored

    mapped = tmp_path / "mapped.json"
    assert validate("{num_classes: 2, image_scale: 4095, label_map: {255: 1}}", mapped) == 0
    out = capsys.readouterr().out
    assert "no ground-truth pixels" not in out
    scores = json.loads(mapped.read_text())
    assert scores["num_pixels"] == 3 * SH * SW  # every pixel scored, the foreground as class 1
    confmat = np.asarray(scores["confusion_matrix"])
    assert confmat[1].sum() == sum(int((binary_mask(s) == 255).sum()) for s in (3, 4, 5))
    assert scores["per_class"]["class_1"]["Acc"] is not None


def test_warning_for_missing_classes_is_logged_once(caplog):
    from hamburger.recipes.seg.metrics import format_table, scores_from_confmat, warn_classes_without_ground_truth

    scores = scores_from_confmat(torch.tensor([[5, 0, 0], [0, 0, 0], [0, 0, 0]]), ["bg", "fg", "edge"])
    assert scores["mIoU"] == 1.0  # the misleading score: only the class present counts
    assert format_table(scores).splitlines()[-1] == (
        "no ground-truth pixels (Acc '-', left out of mAcc; IoU '-' unless predicted): fg, edge"
    )

    class Owner:  # stands for the LightningModule: warnings are remembered per owner
        pass

    key = Owner()
    with caplog.at_level("WARNING"):
        for _ in range(3):
            assert warn_classes_without_ground_truth(scores, key=key) == ["fg", "edge"]
    (record,) = caplog.records
    assert record.getMessage().startswith("class(es) fg, edge have no ground-truth pixel")
    caplog.clear()
    fewer = scores_from_confmat(torch.tensor([[5, 0, 0], [0, 2, 0], [0, 0, 0]]), ["bg", "fg", "edge"])
    with caplog.at_level("WARNING"):
        warn_classes_without_ground_truth(fewer, key=key)  # a different set is reported again
    assert [r.getMessage().split(" have")[0] for r in caplog.records] == ["class(es) edge"]
    assert "no ground-truth" not in format_table(scores_from_confmat(torch.eye(3, dtype=torch.long)))


# ------------------------------------------------------------------ 2. 16-bit images through predict
def expected_prediction(ckpt: Path, raw: np.ndarray, scale: float):
    from hamburger.recipes.seg.predict import load_module

    module, meta = load_module(str(ckpt))
    unit = torch.from_numpy(raw.astype(np.float32) / scale).expand(3, -1, -1)
    mean = torch.tensor(meta["mean"]).view(3, 1, 1)
    std = torch.tensor(meta["std"]).view(3, 1, 1)
    with torch.no_grad():
        pred = module(((unit - mean) / std)[None]).argmax(1)[0].numpy().astype(np.uint8)
    colour = np.asarray(meta["palette"], dtype=np.float32)[pred]
    blend = (0.5 * unit.permute(1, 2, 0).numpy() * 255 + 0.5 * colour).clip(0, 255).round().astype(np.uint8)
    return pred, blend


def test_predict_16bit_tiff_uses_the_training_image_scale(trained, tmp_path, capsys):
    inputs, out = trained["root"] / "images" / "val", tmp_path / "pred"
    assert run_cli(["seg", "predict", "--ckpt_path", str(trained["ckpt"]), "--input", str(inputs),
                    "--output", str(out)]) == 0  # fmt: skip
    assert sorted(os.listdir(out)) == [f"slice{s}{k}.png" for s in (3, 4, 5) for k in ("", "_overlay")]
    for seed, raw in zip((3, 4, 5), trained["val_raws"], strict=True):
        pred, blend = expected_prediction(trained["ckpt"], raw, 4095.0)
        mask = Image.open(out / f"slice{seed}.png")
        assert mask.mode == "P" and mask.size == (SW, SH)
        np.testing.assert_array_equal(np.asarray(mask), pred)
        # the overlay shows the slice as scaled for the model (raw / 4095), not clipped at 255
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"slice{seed}_overlay.png")), blend)
    capsys.readouterr()
    # an explicit --image_scale wins; a bad one is one line
    other = tmp_path / "minmax"
    assert run_cli(["seg", "predict", "--ckpt_path", str(trained["ckpt"]), "--input", str(inputs / "slice3.tif"),
                    "--output", str(other), "--image_scale", "minmax"]) == 0  # fmt: skip
    raw = trained["val_raws"][0].astype(np.float64)
    _, blend = expected_prediction(trained["ckpt"], (raw - raw.min()) / (raw.max() - raw.min()), 1.0)
    np.testing.assert_array_equal(np.asarray(Image.open(other / "slice3_overlay.png")), blend)
    capsys.readouterr()
    code = run_cli(["seg", "predict", "--ckpt_path", str(trained["ckpt"]), "--input", str(inputs),
                    "--output", str(tmp_path / "bad"), "--image_scale", "-1"])  # fmt: skip
    assert code != 0 and not (tmp_path / "bad").exists()
    (line,) = stderr_lines(capsys)
    assert "--image_scale must be 'dtype', 'minmax' or a positive number" in line


# ------------------------------------------------------------------ 5./6. predict: bad files, output safety
def write_rgb(path: Path, seed: int, fmt: str | None = None) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (SH, SW, 3), dtype=np.uint8)).save(path, format=fmt)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {f: (folder / f).read_bytes() for f in sorted(os.listdir(folder))}


@pytest.mark.parametrize("where", ["same", "inside", "file_folder"])
def test_predict_refuses_output_in_the_input_folder(trained, tmp_path, capsys, where):
    inputs = tmp_path / "photos"
    inputs.mkdir()
    write_rgb(inputs / "a.png", 0)
    write_rgb(inputs / "b.jpg", 1, "JPEG")
    before = snapshot(inputs)
    source = inputs / "a.png" if where == "file_folder" else inputs
    output = inputs / "pred" if where == "inside" else inputs
    capsys.readouterr()
    code = run_cli(["seg", "predict", "--ckpt_path", str(trained["ckpt"]), "--input", str(source), "--output",
                    str(output)])  # fmt: skip
    assert code != 0
    (line,) = stderr_lines(capsys)
    assert line.startswith("hamburger seg predict: error: --output ")
    assert f"is the input folder {inputs.resolve()} or inside it" in line
    assert snapshot(inputs) == before  # nothing replaced, nothing written, no folder created


def test_predict_keeps_both_outputs_when_stems_collide(trained, tmp_path):
    from hamburger.recipes.seg.predict import output_paths

    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    write_rgb(inputs / "a.png", 0)
    write_rgb(inputs / "a.jpg", 1, "JPEG")
    write_rgb(inputs / "a_overlay.png", 2)  # its mask would be a.png's overlay
    write_rgb(inputs / "b.png", 3)
    assert run_cli(["seg", "predict", "--ckpt_path", str(trained["ckpt"]), "--input", str(inputs), "--output",
                    str(out)]) == 0  # fmt: skip
    assert sorted(os.listdir(out)) == sorted(
        ["a_png.png", "a_png_overlay.png", "a_jpg.png", "a_jpg_overlay.png", "a_overlay_png.png",
         "a_overlay_png_overlay.png", "b.png", "b_overlay.png"]
    )  # fmt: skip
    # each output belongs to its own input (the two "a" images differ)
    assert not np.array_equal(np.asarray(Image.open(out / "a_png_overlay.png")),
                              np.asarray(Image.open(out / "a_jpg_overlay.png")))  # fmt: skip
    # names that still collide after adding the extension are refused before anything is written
    with pytest.raises(ValueError, match=r"A\.PNG and .*a\.png would write the same output file"):
        output_paths([str(inputs / "A.PNG"), str(inputs / "a.png")], str(tmp_path / "x"))


def test_predict_reports_bad_files_and_goes_on(trained, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    write_rgb(inputs / "good1.png", 0)
    write_rgb(inputs / "good2.jpg", 1, "JPEG")
    truncated = inputs / "cut.png"
    write_rgb(truncated, 2)
    truncated.write_bytes(truncated.read_bytes()[:100])
    empty = inputs / "empty.jpg"
    empty.write_bytes(b"")
    capsys.readouterr()
    code = run_cli(["seg", "predict", "--ckpt_path", str(trained["ckpt"]), "--input", str(inputs), "--output",
                    str(out)])  # fmt: skip
    assert code == 1  # not a success: two inputs have no mask
    lines = stderr_lines(capsys)
    assert lines == [
        f"hamburger seg predict: skipped: cannot read image {truncated}: image file is truncated",
        f"hamburger seg predict: skipped: cannot read image {empty}: cannot identify image file '{empty}'",
        "hamburger seg predict: 2 of 4 images could not be read (see above)",
    ]
    assert sorted(os.listdir(out)) == ["good1.png", "good1_overlay.png", "good2.png", "good2_overlay.png"]


def test_predict_writes_atomically(trained, tmp_path, monkeypatch, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    write_rgb(inputs / "a.png", 0)
    (out / "a.png").write_bytes(b"previous result")
    real_save = Image.Image.save

    def failing_save(self, fp, *args, **kwargs):  # a full disk: part of the file is written, then an error
        with open(fp, "wb") as f:
            f.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    rc = main(["seg", "predict", "--ckpt_path", str(trained["ckpt"]), "--input", str(inputs), "--output", str(out)])
    monkeypatch.setattr(Image.Image, "save", real_save)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "No space left on device" in err[0]  # one line, non-zero exit
    assert snapshot(out) == {"a.png": b"previous result"}  # old file intact, no partial or temporary file


# ------------------------------------------------------------------ 4. an all-ignore batch
def test_all_ignore_batch_contributes_zero_loss(tmp_path):
    root, run = tmp_path / "data", tmp_path / "run"
    for split, masks in (("train", [binary_mask(0) // 255, np.full((SH, SW), 255, np.uint8)]),
                         ("val", [binary_mask(1) // 255])):  # fmt: skip
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for i, mask in enumerate(masks):
            write_rgb(root / "images" / split / f"im{i}.png", i)
            Image.fromarray(mask).save(root / "masks" / split / f"im{i}.png")
    args = tiny_args(root, run, dataset_kwargs="{num_classes: 2}",
                     model_kwargs=TINY_MODEL[:-1] + ", aux_index: 0, aux_channels: 8}")  # fmt: skip
    assert main(["seg", "fit", *args, "--data.batch_size=1", "--model.aux_weight=0.4"]) == 0
    with open(next((run / "logs").glob("version_*/metrics.csv"))) as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    losses = sorted((float(r["train/loss"]), float(r["train/loss_aux"])) for r in rows)
    assert len(losses) == 2  # one step per training image
    assert losses[0] == (0.0, 0.0)  # the all-255 image: no loss, main or aux (NaN on the old code)
    assert losses[1][0] > 0 and losses[1][1] > 0
    from hamburger.training.checkpoint import load_checkpoint

    state = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_cross_entropy_of_all_ignore_batch_has_zero_gradients():
    import torch.nn.functional as F

    from hamburger.recipes.seg.module import SegModule

    module = SegModule("tiny_ham", num_classes=3, model_kwargs={"backbone_kwargs": {"widths": [8, 16, 32], "depth": 1},
                       "channels": 16, "ham_channels": 16, "rank": 4, "aux_index": 0, "aux_channels": 8})  # fmt: skip
    images = torch.randn(2, 3, SH, SW)
    out = module.net(images)
    mask = torch.full((2, SH, SW), 255)
    loss = module._ce(out["out"], mask) + 0.4 * module._ce(out["aux"], mask)
    loss.backward()
    assert loss.item() == 0.0
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.equal(g, torch.zeros_like(g)) for g in grads)
    # otherwise the mean over the labelled pixels, exactly as F.cross_entropy
    mask[0, :20] = torch.randint(0, 3, (20, SW))
    reference = F.cross_entropy(out["out"].detach(), mask, ignore_index=255)
    assert torch.equal(module._ce(out["out"].detach(), mask), reference)


# ------------------------------------------------------------------ 5. a corrupt file in training
def test_training_on_corrupt_image_fails_with_one_line_naming_it(tmp_path, capsys):
    root, run = tmp_path / "data", tmp_path / "run"
    write_split(root, "train", [0, 1])
    write_split(root, "val", [2])
    bad = root / "images" / "train" / "slice1.tif"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated TIFF
    args = tiny_args(root, run, dataset_kwargs="{num_classes: 2, image_scale: 4095, label_map: {255: 1}}")
    capsys.readouterr()
    try:
        code = main(["seg", "fit", *args, "--data.num_workers=2"])
    except ValueError as err:  # on a CLI that does not turn errors into a message yet
        message = str(err)
    else:
        assert code != 0
        (message,) = [line for line in capsys.readouterr().err.splitlines() if str(bad) in line]
    assert "\n" not in message and "Traceback" not in message
    assert f"cannot read image {bad}: " in message
