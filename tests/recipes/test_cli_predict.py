"""``hamburger seg predict``: Lightning checkpoints and save_pretrained folders, batches of images of one size,
``--device auto``, and the default palette (class 0 black), checked through the CLI against the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")

from hamburger.cli import main as hamburger_main  # noqa: E402
from hamburger.recipes.seg import predict  # noqa: E402
from hamburger.utils import IMAGENET_MEAN, IMAGENET_STD, VOC_PALETTE  # noqa: E402

SIZES = {"wide_a": (233, 197), "small_a": (67, 53), "wide_b": (233, 197), "small_b": (67, 53), "wide_c": (233, 197)}
EXTS = {"wide_a": "jpg", "small_a": "png", "wide_b": "png", "small_b": "jpg", "wide_c": "jpg"}
CLI_MODEL = (  # a GroupNorm head: after 2 steps a BatchNorm one predicts a single class, which would test nothing
    "--model.model_kwargs={backbone_kwargs: {widths: [8, 16, 32], depth: 1}, channels: 16, ham_channels: 16, "
    "norm_layer: group}"
)


def _scene(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Coloured rectangles on a gradient (RGB uint8) and their mask (classes 0-2)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([yy * 255 // max(h - 1, 1), xx * 255 // max(w - 1, 1), np.full((h, w), 60)], -1)
    mask = np.zeros((h, w), dtype=np.uint8)
    for k in (1, 2, 1, 2):
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        y1, x1 = y0 + rng.integers(6, max(h // 2, 7)), x0 + rng.integers(6, max(w // 2, 7))
        mask[y0:y1, x0:x1] = k
        image[y0:y1, x0:x1] = (255, 40, 40) if k == 1 else (40, 40, 255)
    return image.astype(np.uint8), mask


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-step ``seg fit`` on a 3-class folder dataset (no palette given), its save_pretrained copy, and
    JPEG + PNG inputs of 233 x 197 and 67 x 53."""
    from PIL import Image

    from hamburger.recipes.seg.cli import build_cli

    root = tmp_path_factory.mktemp("predict_run")
    data = root / "data"
    for split in ("train", "val"):
        (data / "images" / split).mkdir(parents=True)
        (data / "masks" / split).mkdir(parents=True)
        for i in range(2):
            image, mask = _scene(48, 48, seed=i + (10 if split == "val" else 0))
            Image.fromarray(image).save(data / "images" / split / f"s{i}.png")
            Image.fromarray(mask, mode="L").save(data / "masks" / split / f"s{i}.png")
    cli = build_cli(
        ["fit", "--model.model=tiny_ham", CLI_MODEL, "--data.dataset=folder", f"--data.root={data}",
         "--data.dataset_kwargs={num_classes: 3}", "--data.crop_size=48", "--data.batch_size=2",
         "--data.num_workers=0", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
         "--trainer.enable_model_summary=false", "--trainer.num_sanity_val_steps=0", "--trainer.logger=false",
         f"--trainer.default_root_dir={root / 'run'}", "--trainer.max_steps=2", "--trainer.limit_val_batches=0"]
    )  # fmt: skip
    assert cli.trainer.global_step == 2
    ckpt = root / "run" / "checkpoints" / "last.ckpt"
    model_dir = root / "pretrained"
    cli.model.net.save_pretrained(model_dir)
    inputs = root / "in"
    inputs.mkdir()
    for i, (stem, (h, w)) in enumerate(SIZES.items()):
        image, _ = _scene(h, w, seed=100 + i)
        Image.fromarray(image).save(inputs / f"{stem}.{EXTS[stem]}", **({"quality": 90} if EXTS[stem] == "jpg" else {}))
    return ckpt, model_dir, inputs


def _api_masks(module, meta, inputs: Path) -> dict[str, np.ndarray]:
    """Each image alone through the module's forward (padded inference), normalised with ``meta``."""
    from hamburger.recipes.seg.data._io import read_image

    mean = torch.tensor(meta["mean"]).view(3, 1, 1)
    std = torch.tensor(meta["std"]).view(3, 1, 1)
    out = {}
    for stem in SIZES:
        image = (read_image(str(inputs / f"{stem}.{EXTS[stem]}")).float() / 255.0 - mean) / std
        with torch.no_grad():
            out[stem] = module(image[None]).argmax(1)[0].numpy().astype(np.uint8)
    return out


def _written(out: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    return {stem: np.array(Image.open(out / f"{stem}.png")) for stem in SIZES}


def test_cli_predict_batched_equals_unbatched_and_the_api(run, tmp_path, capsys) -> None:
    from PIL import Image

    ckpt, _, inputs = run
    for batch_size in ("1", "3"):
        argv = ["seg", "predict", "--ckpt_path", str(ckpt), "--input", str(inputs), "--output",
                str(tmp_path / f"b{batch_size}"), "--batch_size", batch_size, "--device", "cpu"]  # fmt: skip
        assert hamburger_main(argv) == 0
    assert "wrote 5 masks" in capsys.readouterr().out
    module, meta = predict.load_module(str(ckpt))
    expected = _api_masks(module, meta, inputs)
    one, three = _written(tmp_path / "b1"), _written(tmp_path / "b3")
    for stem, (h, w) in SIZES.items():
        assert one[stem].shape == (h, w), stem
        np.testing.assert_array_equal(one[stem], expected[stem], err_msg=stem)
        np.testing.assert_array_equal(three[stem], one[stem], err_msg=stem)
        overlay = np.array(Image.open(tmp_path / "b3" / f"{stem}_overlay.png"))
        np.testing.assert_array_equal(overlay, np.array(Image.open(tmp_path / "b1" / f"{stem}_overlay.png")))
    assert len({int(v) for m in expected.values() for v in np.unique(m)}) >= 2  # not a constant mask


def test_batches_hold_images_of_one_size(run, tmp_path) -> None:
    _, _, inputs = run
    paths = [str(inputs / f"{stem}.{EXTS[stem]}") for stem in SIZES]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    batches = predict.size_batches([*paths, str(broken)], batch_size=2)
    # wide_a, wide_b | wide_c | small_a, small_b | broken (alone)
    assert batches == [[0, 2], [4], [1, 3], [5]]
    assert predict.size_batches(paths, batch_size=8) == [[0, 2, 4], [1, 3]]
    with pytest.raises(ValueError, match="batch_size"):
        predict.size_batches(paths, batch_size=0)


def test_batched_api_counts_the_forward_passes(run, tmp_path) -> None:
    """With batch_size 3 the three 233 x 197 images go through one forward pass, the two 67 x 53 through one."""
    ckpt, _, inputs = run
    module, meta = predict.load_module(str(ckpt))
    shapes = []
    module.register_forward_pre_hook(lambda mod, args: shapes.append(tuple(args[0].shape)))
    paths = [str(inputs / f"{stem}.{EXTS[stem]}") for stem in SIZES]
    written = predict.predict_paths(module, meta, paths, str(tmp_path / "o"), batch_size=3)
    assert written == [str(tmp_path / "o" / f"{stem}.png") for stem in SIZES]  # in input order
    assert sorted(shapes) == [(2, 3, 67, 53), (3, 3, 233, 197)]


def test_default_palette_colours_background_black(run, tmp_path) -> None:
    """A folder dataset without colours made up the VOC map without black (class 0 dark red); predict's
    palette is VOC's: class 0 black, 1 dark red, 2 green."""
    from PIL import Image

    from hamburger.training.checkpoint import load_checkpoint

    ckpt, _, inputs = run
    stored = load_checkpoint(ckpt)["seg_meta"]["palette"]
    assert [list(c) for c in stored] == [[128, 0, 0], [0, 128, 0], [128, 128, 0]]  # what the data made up
    _, meta = predict.load_module(str(ckpt))
    assert meta["palette"] == [[0, 0, 0], [128, 0, 0], [0, 128, 0]] == [list(c) for c in VOC_PALETTE[:3]]
    assert predict.default_palette(2) == [[0, 0, 0], [128, 0, 0]]
    out = tmp_path / "o"
    assert hamburger_main(["seg", "predict", "--ckpt_path", str(ckpt), "--input", str(inputs / "small_a.png"),
                           "--output", str(out)]) == 0  # fmt: skip
    mask = Image.open(out / "small_a.png")
    assert mask.mode == "P" and mask.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]


def test_a_dataset_palette_is_kept(tmp_path) -> None:
    """A palette the data defines (here given as data, as Fashion scenes / VOC / Cityscapes do) stays."""
    from hamburger.recipes.seg.module import SegModule

    module = SegModule("tiny_fcn", num_classes=2, model_kwargs={"backbone_kwargs": {"widths": [8], "depth": 1}})
    ckpt = tmp_path / "m.ckpt"
    torch.save(
        {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
         "seg_meta": {"palette": [[10, 20, 30], [40, 50, 60]], "class_names": ["sky", "sea"]}}, ckpt
    )  # fmt: skip
    _, meta = predict.load_module(str(ckpt))
    assert meta["palette"] == [[10, 20, 30], [40, 50, 60]] and meta["class_names"] == ["sky", "sea"]
    assert meta["mean"] == list(IMAGENET_MEAN) and meta["std"] == list(IMAGENET_STD)


def test_cli_predict_from_a_save_pretrained_folder(run, tmp_path) -> None:
    """--model_dir gives the checkpoint's masks (same weights, ImageNet statistics, single-scale padded
    inference); its palette is VOC's unless the folder has a seg_meta.json."""
    from PIL import Image

    ckpt, model_dir, inputs = run
    assert hamburger_main(["seg", "predict", "--ckpt_path", str(ckpt), "--input", str(inputs), "--output",
                           str(tmp_path / "ckpt")]) == 0  # fmt: skip
    assert hamburger_main(["seg", "predict", "--model_dir", str(model_dir), "--input", str(inputs), "--output",
                           str(tmp_path / "dir"), "--batch_size", "2"]) == 0  # fmt: skip
    from_ckpt, from_dir = _written(tmp_path / "ckpt"), _written(tmp_path / "dir")
    predictor, meta = predict.load_pretrained(str(model_dir))
    expected = _api_masks(predictor, meta, inputs)
    for stem in SIZES:
        np.testing.assert_array_equal(from_dir[stem], expected[stem], err_msg=stem)
        np.testing.assert_array_equal(from_dir[stem], from_ckpt[stem], err_msg=stem)
    assert meta["mean"] == list(IMAGENET_MEAN) and meta["class_names"] == ["0", "1", "2"]
    assert Image.open(tmp_path / "dir" / "wide_a.png").getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]

    # a seg_meta.json next to the weights gives names, colours and statistics
    import shutil

    described = tmp_path / "described"
    shutil.copytree(model_dir, described)
    palette = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    (described / "seg_meta.json").write_text(
        json.dumps({"class_names": ["bg", "red", "blue"], "palette": palette, "mean": [0.5, 0.5, 0.5]})
    )
    _, meta = predict.load_pretrained(str(described))
    assert meta["class_names"] == ["bg", "red", "blue"] and meta["palette"] == palette
    assert meta["mean"] == [0.5, 0.5, 0.5] and meta["std"] == list(IMAGENET_STD)
    assert hamburger_main(["seg", "predict", "--model_dir", str(described), "--input", str(inputs / "small_a.png"),
                           "--output", str(tmp_path / "described_out")]) == 0  # fmt: skip
    assert Image.open(tmp_path / "described_out" / "small_a.png").getpalette()[:9] == [1, 2, 3, 4, 5, 6, 7, 8, 9]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"palette": [[0, 0, 0]]}', "palette must be a list of 3 RGB triples"),
        ('{"class_names": ["a", "b"]}', "class_names must be a list of 3 strings"),
        ('{"mean": [0.5, 0.5]}', "mean must be a list of 3 numbers"),
        ('{"colours": []}', "unknown key"),
        ("[1, 2]", "JSON object"),
        ("{oops", "cannot read"),
    ],
)
def test_bad_seg_meta_is_one_line(run, tmp_path, capsys, content, message) -> None:
    import shutil

    _, model_dir, inputs = run
    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)
    (folder / "seg_meta.json").write_text(content)
    with pytest.raises(SystemExit) as stop:
        hamburger_main(["seg", "predict", "--model_dir", str(folder), "--input", str(inputs), "--output",
                        str(tmp_path / "o")])  # fmt: skip
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "flag, kind, message",
    [
        ("--ckpt_path", "dir", "is a folder, expected a Lightning checkpoint file (a save_pretrained folder: use "
                               "--model_dir)"),
        ("--model_dir", "ckpt", "a file (a Lightning checkpoint? use --ckpt_path)"),
        ("--model_dir", "empty", "has no config.json + model.safetensors"),
    ],
)  # fmt: skip
def test_the_wrong_kind_of_weights_is_named(run, tmp_path, capsys, flag, kind, message) -> None:
    ckpt, model_dir, inputs = run
    (tmp_path / "empty").mkdir()
    source = {"dir": model_dir, "ckpt": ckpt, "empty": tmp_path / "empty"}[kind]
    with pytest.raises(SystemExit) as stop:
        hamburger_main(["seg", "predict", flag, str(source), "--input", str(inputs), "--output", str(tmp_path / "o")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_one_source_of_weights(run, tmp_path, capsys) -> None:
    ckpt, model_dir, inputs = run
    common = ["--input", str(inputs), "--output", str(tmp_path / "o")]
    for argv in (common, ["--ckpt_path", str(ckpt), "--model_dir", str(model_dir), *common]):
        with pytest.raises(SystemExit) as stop:
            hamburger_main(["seg", "predict", *argv])
        assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "one of the arguments --ckpt_path --model_dir is required" in err
    assert "not allowed with argument" in err
    with pytest.raises(SystemExit):
        hamburger_main(["seg", "predict", "--model_dir", str(model_dir), "--model", "tiny_ham", *common])
    assert "--model applies to --ckpt_path only" in capsys.readouterr().err


def test_device_auto_and_unavailable_devices(run, tmp_path, capsys, monkeypatch) -> None:
    assert predict.resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert predict.resolve_device("cpu") == torch.device("cpu")
    ckpt, _, inputs = run
    common = ["--ckpt_path", str(ckpt), "--input", str(inputs), "--output", str(tmp_path / "o")]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert predict.resolve_device("auto") == torch.device("cpu")
    for device, message in (
        ("cuda", "--device cuda: CUDA is not available on this machine; use --device cpu or auto"),
        ("cuda:1", "--device cuda:1: CUDA is not available"),
        ("gpu0", "--device 'gpu0' is not a device name; use auto, cpu, cuda or cuda:N"),
    ):
        with pytest.raises(SystemExit) as stop:
            hamburger_main(["seg", "predict", *common, "--device", device])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # refused before anything is written
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"this machine has 2 CUDA device\(s\) \(cuda:0 \.\. cuda:1\)"):
        predict.resolve_device("cuda:2")
    assert predict.resolve_device("cuda:1") == torch.device("cuda:1")


def test_bad_batch_size_is_one_line(run, tmp_path, capsys) -> None:
    ckpt, _, inputs = run
    with pytest.raises(SystemExit) as stop:
        hamburger_main(["seg", "predict", "--ckpt_path", str(ckpt), "--input", str(inputs), "--output",
                        str(tmp_path / "o"), "--batch_size", "0"])  # fmt: skip
    assert stop.value.code == 2
    assert "--batch_size" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cli_predict_on_the_gpu_matches_the_cpu(run, tmp_path) -> None:
    ckpt, _, inputs = run
    for device in ("cpu", "auto"):
        assert hamburger_main(["seg", "predict", "--ckpt_path", str(ckpt), "--input", str(inputs), "--output",
                               str(tmp_path / device), "--device", device, "--batch_size", "3"]) == 0  # fmt: skip
    cpu, gpu = _written(tmp_path / "cpu"), _written(tmp_path / "auto")
    for stem in SIZES:  # float sums differ in the last bits between devices: allow a few flipped pixels
        assert (cpu[stem] != gpu[stem]).mean() < 1e-3, stem
