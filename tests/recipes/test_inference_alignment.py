"""Inference at any image size: every forward input is padded to a size aligned to the model's output stride.

A 233 x 197 image fed directly to a stride-8 model gives 30 x 25 logits that are stretched back by 233/30 instead
of 8, so the predictions drift towards the bottom/right. Padding (bottom/right, zeros after normalisation) to
240 x 200 and cropping the logits makes a prediction independent of where the image ends.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hamburger.models import SegmentationModel, create_model
from hamburger.models.segmentation import aligned_size
from hamburger.recipes.seg.inference import (
    check_inference_options,
    infer,
    model_size_divisor,
    multiscale_logits,
    slide_logits,
)

H, W = 233, 197  # neither a multiple of 8 nor of 32
SMALL = {"backbone_kwargs": {"widths": [8, 16, 32], "depth": 1}, "channels": 16, "ham_channels": 16, "rank": 4}
STRIDE32 = {**SMALL, "backbone_kwargs": {"widths": [8, 8, 16, 16, 32], "depth": 1}, "out_indices": (2, 3, 4)}


def _tiny(**overrides) -> SegmentationModel:
    return create_model("tiny_ham", num_classes=5, **{**SMALL, **overrides}).eval()


def _by_hand(model: nn.Module, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The logits of ``x`` zero-padded at the bottom/right to ``size``, cropped back: the reference."""
    h, w = x.shape[-2:]
    with torch.no_grad():
        return model(F.pad(x, (0, size[1] - w, 0, size[0] - h)))["out"][..., :h, :w]


def test_aligned_size() -> None:
    assert [aligned_size(n, 8) for n in (233, 197, 240, 1, 8, 9)] == [240, 200, 240, 8, 8, 16]
    assert [aligned_size(n, 32) for n in (233, 197, 512, 67, 53)] == [256, 224, 512, 96, 64]
    # corner-aligned upsampling: n * s + 1 (DeepLab's 513 / 769 crops are already aligned)
    assert [aligned_size(n, 8, align_corners=True) for n in (233, 197, 769, 513, 1, 2)] == [233, 201, 769, 513, 1, 9]


def test_output_stride_is_the_coarsest_feature_stride() -> None:
    assert _tiny().output_stride == 8
    assert create_model("tiny_ham", num_classes=5, **STRIDE32).output_stride == 32
    dilated = create_model("tiny_ham", num_classes=5, **{**STRIDE32, "output_stride": 16})
    assert dilated.backbone.reductions == [8, 16, 16] and dilated.output_stride == 16
    resnet = create_model("tiny_fcn", num_classes=5, backbone="resnet18", out_indices=(1, 2, 3, 4), output_stride=8)
    assert resnet.output_stride == 8

    class NoReductions(nn.Module):
        def forward(self, x):
            return [x]

    bare = SegmentationModel(NoReductions(), nn.Identity())
    assert bare.output_stride is None and model_size_divisor(bare) == 32
    assert model_size_divisor(nn.Conv2d(3, 3, 1)) == 32 and model_size_divisor(bare, 4) == 4
    with pytest.raises(AttributeError):
        bare.output_stride = 8  # read-only


@pytest.mark.parametrize(
    ("overrides", "size_divisor", "padded"),
    [
        ({}, None, (240, 200)),  # stride 8, from the model
        (STRIDE32, None, (256, 224)),  # stride 32, from the model
        ({}, 32, (256, 224)),  # explicit override
        ({"align_corners": True}, None, (233, 201)),  # corner-aligned: 8n + 1
    ],
    ids=["stride8", "stride32", "size_divisor32", "align_corners"],
)
def test_single_equals_padding_by_hand(overrides, size_divisor, padded) -> None:
    model = _tiny(**overrides)
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        out = infer(model, x, size_divisor=size_divisor)
        unpadded = model(x)["out"]  # what the old code returned
    assert out.shape == (2, 5, H, W)
    torch.testing.assert_close(out, _by_hand(model, x, padded), rtol=1e-5, atol=1e-5)
    assert (out - unpadded).abs().amax() > 1e-3  # the padding does change the logits
    # the prediction does not depend on how much padding the image came with
    if size_divisor is None:
        with torch.no_grad():
            x_padded = F.pad(x, (0, padded[1] - W, 0, padded[0] - H))
            torch.testing.assert_close(infer(model, x_padded)[..., :H, :W], out, rtol=1e-5, atol=1e-5)


def test_small_images_are_padded_too() -> None:
    model = _tiny()
    x = torch.randn(1, 3, 67, 53)
    with torch.no_grad():
        torch.testing.assert_close(infer(model, x), _by_hand(model, x, (72, 56)), rtol=1e-5, atol=1e-5)


class _BlockBackbone(nn.Module):
    """Stride-8 features: the max over each 8 x 8 cell (unaffected by zero padding of a one-hot image)."""

    reductions = [8]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [F.max_pool2d(x, 8, ceil_mode=True)]


class _Identity(nn.Module):
    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return features[0]


def _stripes(h: int, w: int, *, axis: int, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot image whose class is constant on 8-pixel stripes of the pixel grid (``axis`` 0: rows, 1: columns),
    and its label map ``(1, h, w)``."""
    g = torch.Generator().manual_seed(3 + axis)
    n = h if axis == 0 else w
    line = torch.randint(0, k, (-(-n // 8),), generator=g).repeat_interleave(8)[:n]
    labels = line.view(h, 1).expand(h, w) if axis == 0 else line.view(1, w).expand(h, w)
    return F.one_hot(labels, k).permute(2, 0, 1).float()[None], labels[None]


@pytest.mark.parametrize("axis", [0, 1], ids=["rows", "columns"])
def test_golden_block_model_is_exact_at_any_size(axis: int) -> None:
    """A model whose right answer is known: the class of each pixel's 8-pixel stripe.

    Half-pixel bilinear upsampling of aligned cell logits gives each pixel at least 9/16 of its own cell, so the
    argmax is the true label everywhere. The old direct forward stretches 30 cells over 233 rows (25 over 197
    columns): the bottom rows (right columns) take the next stripe's class.
    """
    model = SegmentationModel(_BlockBackbone(), _Identity()).eval()
    x, labels = _stripes(H, W, axis=axis)
    pred = infer(model, x).argmax(1)
    assert torch.equal(pred, labels)
    assert torch.equal(model.predict(x), labels)
    # sliding window: crop 121 x 101 (not multiples of 8, each window padded), windows at aligned offsets
    slide = slide_logits(model, x, crop_size=(121, 101), stride=(112, 96)).argmax(1)
    assert torch.equal(slide, labels)
    # a crop larger than the image: padded to the crop, then to an aligned size
    assert torch.equal(infer(model, x, mode="slide", crop_size=(250, 203), stride=100).argmax(1), labels)
    # the old behaviour (no padding) misaligns the bottom/right of the image
    old = infer(model, x, size_divisor=1).argmax(1)
    wrong = (old != labels)[0].any(1 - axis).nonzero().flatten()
    n = (H, W)[axis]
    top, bottom = int((wrong < n // 3).sum()), int((wrong >= n - n // 3).sum())
    assert len(wrong) > 20 and wrong.min() > 8 and bottom > 2 * top and wrong.max() >= n - 8  # a growing drift


class _SubsampleBackbone(nn.Module):
    """Stride-8 features sampled at pixels 0, 8, 16, ... (the geometry of 3x3 stride-2 convs with padding 1)."""

    reductions = [8]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x[..., ::8, ::8]]


def test_golden_align_corners_model_reproduces_a_ramp() -> None:
    """With ``align_corners=True`` the aligned sizes are 8n + 1: feature i sits on pixel 8i, and bilinear
    upsampling reproduces a linear ramp exactly wherever the interpolation does not reach the zero padding."""
    model = SegmentationModel(_SubsampleBackbone(), _Identity(), align_corners=True).eval()
    rows = torch.arange(H, dtype=torch.float32).view(H, 1).expand(H, W)
    cols = torch.arange(W, dtype=torch.float32).view(1, W).expand(H, W)
    x = torch.stack([rows, cols])[None]
    out = infer(model, x)
    # 233 = 8 * 29 + 1 needs no padding; 197 is padded to 201, so columns past 192 interpolate with the padding
    torch.testing.assert_close(out[0, :, :, :193], x[0, :, :, :193])
    old = infer(model, x, size_divisor=1)
    assert (old[0, 1, :, 100] - 100).abs().min() > 1.5  # stretched by 196/24 instead of 8
    multiple = _by_hand(model, x, (240, 200))  # a plain multiple of 8 is wrong for corner alignment
    assert (multiple[0, 0, 120] - 120).abs().min() > 1.0


def test_multiscale_pads_each_view() -> None:
    model = _tiny()
    x = torch.randn(1, 3, H, W)
    scales = (0.75, 1.0)
    ref = torch.zeros(1, 5, H, W)
    for scale in scales:
        size = (round(H * scale), round(W * scale))
        view = F.interpolate(x, size=size, mode="bilinear", align_corners=False) if scale != 1.0 else x
        padded = (aligned_size(size[0], 8), aligned_size(size[1], 8))
        for flipped in (False, True):
            logits = _by_hand(model, view.flip(-1) if flipped else view, padded)
            logits = logits.flip(-1) if flipped else logits
            ref += F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
    with torch.no_grad():
        out = infer(model, x, mode="multiscale", scales=scales, flip=True)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(multiscale_logits(model, x, scales=scales, flip=True), out)


def test_slide_pads_each_window() -> None:
    model = _tiny()
    x = torch.randn(1, 3, 70, 61)
    crop, stride = (36, 30), (20, 24)  # 36 x 30 windows padded to 40 x 32
    ref = torch.zeros(1, 5, 70, 61)
    count = torch.zeros(1, 1, 70, 61)
    for y0 in (0, 20, 34):
        for x0 in (0, 24, 31):
            ref[..., y0 : y0 + 36, x0 : x0 + 30] += _by_hand(model, x[..., y0 : y0 + 36, x0 : x0 + 30], (40, 32))
            count[..., y0 : y0 + 36, x0 : x0 + 30] += 1
    with torch.no_grad():
        out = infer(model, x, mode="slide", crop_size=crop, stride=stride)
    torch.testing.assert_close(out, ref / count, rtol=1e-5, atol=1e-5)


class _Pointwise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_slide_stride_larger_than_crop_is_rejected() -> None:
    """Stride 40 over crop 32 used to leave 1,536 of 10,000 pixels in no window: 0/0 = NaN logits, read as
    class 0 by argmax."""
    net = _Pointwise().eval()
    x = torch.randn(1, 3, 100, 100)
    with pytest.raises(ValueError, match=r"stride must be <= crop_size.*stride=40 and crop_size=32"):
        slide_logits(net, x, crop_size=32, stride=40)
    with pytest.raises(ValueError, match=r"stride=\(16, 40\) and crop_size=\(32, 32\)"):
        infer(net, x, mode="slide", crop_size=(32, 32), stride=(16, 40))
    with pytest.raises(ValueError, match="stride=40"):
        infer(net, x, mode="multiscale", scales=(1.0,), crop_size=32, stride=40)
    with pytest.raises(ValueError, match="crop_size must be a positive int"):
        infer(net, x, mode="slide", crop_size=0, stride=1)
    with pytest.raises(TypeError, match="stride"):
        infer(net, x, mode="slide", crop_size=8, stride="4")
    with pytest.raises(ValueError, match="size_divisor"):
        infer(net, x, size_divisor=0)


@pytest.mark.parametrize("crop", [7, 16, 32, (13, 40)])
def test_slide_covers_every_pixel(crop) -> None:
    net = _Pointwise().eval()
    crop_pair = (crop, crop) if isinstance(crop, int) else crop
    for h, w in ((40, 37), (67, 53), (5, 90)):
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            ref = net(x)
            for stride in {max(min(crop_pair) // 3, 1), crop_pair[0] // 2 or 1, min(crop_pair)}:
                out = slide_logits(net, x, crop_size=crop, stride=stride)
                assert torch.isfinite(out).all()
                torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_seg_module_checks_eval_options_at_construction() -> None:
    pytest.importorskip("lightning")
    from hamburger.recipes.seg.module import SegModule

    kwargs = {"model": "tiny_fcn", "num_classes": 3, "model_kwargs": SMALL}
    with pytest.raises(ValueError, match=r"eval_stride must be <= eval_crop_size.*eval_stride=40.*eval_crop_size=32"):
        SegModule(eval_mode="slide", eval_crop_size=32, eval_stride=40, **kwargs)
    with pytest.raises(ValueError, match="eval_crop_size and eval_stride"):
        SegModule(eval_mode="slide", **kwargs)
    with pytest.raises(ValueError, match="eval_scales"):
        SegModule(eval_mode="multiscale", eval_scales=(), **kwargs)
    with pytest.raises(ValueError, match="eval_mode"):
        SegModule(eval_mode="tta", **kwargs)
    module = SegModule(eval_mode="slide", eval_crop_size=32, eval_stride=32, **kwargs).eval()
    x = torch.randn(1, 3, 67, 53)
    with torch.no_grad():  # SegModule.forward (validation / test / predict) goes through the padded inference
        expected = infer(module.net, x, mode="slide", crop_size=32, stride=32)
        torch.testing.assert_close(module(x), expected, rtol=0, atol=0)
    check_inference_options(mode="slide", crop_size=(32, 16), stride=(32, 16))


# ---------------------------------------------------------------------------------------------- the CLI path
VAL_SIZES = {"wide": (H, W), "small": (67, 53)}
CLI_MODEL = "--model.model_kwargs={backbone_kwargs: {widths: [8, 16, 32], depth: 1}, channels: 16, ham_channels: 16}"


def _scene(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image of coloured rectangles on a gradient, and its mask (classes 0-2, a 255 ignore strip)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([yy * 255 // max(h - 1, 1), xx * 255 // max(w - 1, 1), np.full((h, w), 60)], -1)
    mask = np.zeros((h, w), dtype=np.uint8)
    for k in (1, 2, 1, 2):
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        y1, x1 = y0 + rng.integers(6, h // 2), x0 + rng.integers(6, w // 2)
        mask[y0:y1, x0:x1] = k
        image[y0:y1, x0:x1] = (255, 40, 40) if k == 1 else (40, 40, 255)
    mask[:, :2] = 255
    return image.astype(np.uint8), mask


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A folder dataset (train 64 x 64; val 233 x 197 and 67 x 53, PNG) and a 2-step ``seg fit`` on it."""
    pytest.importorskip("lightning")
    from PIL import Image

    from hamburger.recipes.seg.cli import build_cli

    root = tmp_path_factory.mktemp("folder_run")
    data = root / "data"
    for split, sizes in (("train", {f"t{i}": (64, 64) for i in range(4)}), ("val", VAL_SIZES)):
        (data / "images" / split).mkdir(parents=True)
        (data / "masks" / split).mkdir(parents=True)
        for i, (stem, (h, w)) in enumerate(sorted(sizes.items())):
            image, mask = _scene(h, w, seed=i + (10 if split == "val" else 0))
            Image.fromarray(image).save(data / "images" / split / f"{stem}.png")
            Image.fromarray(mask, mode="L").save(data / "masks" / split / f"{stem}.png")
    args = [
        "--model.model=tiny_ham", CLI_MODEL, "--data.dataset=folder", f"--data.root={data}",
        "--data.dataset_kwargs={num_classes: 3}", "--data.crop_size=48", "--data.batch_size=2",
        "--data.val_batch_size=1", "--data.num_workers=1", "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.num_sanity_val_steps=0", f"--trainer.default_root_dir={root / 'run'}", "--trainer.logger=false",
    ]  # fmt: skip
    cli = build_cli(["fit", *args, "--trainer.max_steps=2", "--trainer.log_every_n_steps=1"])
    assert cli.trainer.global_step == 2
    return root, data, args, cli.model.last_scores  # scores of the validation run during training


def _reference(module, image: torch.Tensor) -> torch.Tensor:
    """Predicted classes of one normalised image, padded by hand to a multiple of the model's stride (8)."""
    h, w = image.shape[-2:]
    hp, wp = -(-h // 8) * 8, -(-w // 8) * 8
    with torch.no_grad():
        logits = module.net(F.pad(image[None], (0, wp - w, 0, hp - h)))["out"][..., :h, :w]
        old = module.net(image[None])["out"]  # the old direct forward, for contrast
    return logits.argmax(1)[0], old.argmax(1)[0]


def test_cli_validate_scores_match_the_padded_api(folder_run, tmp_path) -> None:
    """``seg fit`` (its validation), ``seg validate`` and the API padded by hand count the same confusion matrix."""
    import json

    from hamburger.recipes.seg.cli import main
    from hamburger.recipes.seg.data import build_dataset
    from hamburger.recipes.seg.metrics import build_confmat
    from hamburger.recipes.seg.predict import load_module
    from hamburger.recipes.seg.transforms import SegEvalTransform

    root, data, args, fit_scores = folder_run
    ckpt = root / "run" / "checkpoints" / "last.ckpt"
    out_json = tmp_path / "val.json"
    assert main(["validate", *args, "--ckpt_path", str(ckpt), f"--results_json={out_json}"]) == 0
    scores = json.loads(out_json.read_text())

    module, meta = load_module(str(ckpt))
    assert module.net.output_stride == 8
    ds = build_dataset(
        "folder",
        root=str(data),
        split="val",
        num_classes=3,
        transform=SegEvalTransform(mean=meta["mean"], std=meta["std"]),
    )
    confmat, old_confmat = build_confmat(3), build_confmat(3)
    sizes = []
    for i in range(len(ds)):
        sample = ds[i]
        pred, old = _reference(module, sample["image"])
        confmat.update(pred[None], sample["mask"][None])
        old_confmat.update(old[None], sample["mask"][None])
        sizes.append(tuple(sample["mask"].shape))
    assert sorted(sizes) == sorted(VAL_SIZES.values())
    assert scores["confusion_matrix"] == confmat.compute().tolist()
    assert fit_scores["confusion_matrix"] == scores["confusion_matrix"]  # training-time validation: the same
    assert scores["confusion_matrix"] != old_confmat.compute().tolist()  # the check can tell the two apart
    assert scores["num_pixels"] == sum((h * (w - 2)) for h, w in VAL_SIZES.values())  # all but the ignore strip


def test_cli_predict_masks_match_the_padded_api(folder_run, tmp_path) -> None:
    from PIL import Image

    from hamburger.recipes.seg.cli import main
    from hamburger.recipes.seg.data._io import read_image
    from hamburger.recipes.seg.predict import load_module

    root, data, *_ = folder_run
    ckpt = root / "run" / "checkpoints" / "last.ckpt"
    inputs = tmp_path / "in"
    inputs.mkdir()
    for stem in VAL_SIZES:  # JPEG inputs, as users have them
        Image.open(data / "images" / "val" / f"{stem}.png").save(inputs / f"{stem}.jpg", quality=90)
    out = tmp_path / "out"
    assert main(["predict", "--ckpt_path", str(ckpt), "--input", str(inputs), "--output", str(out)]) == 0

    module, meta = load_module(str(ckpt))
    mean = torch.tensor(meta["mean"]).view(3, 1, 1)
    std = torch.tensor(meta["std"]).view(3, 1, 1)
    differs = False
    for stem, (h, w) in VAL_SIZES.items():
        written = torch.from_numpy(np.array(Image.open(out / f"{stem}.png"))).long()
        assert written.shape == (h, w)
        image = (read_image(str(inputs / f"{stem}.jpg")).float() / 255.0 - mean) / std
        pred, old = _reference(module, image)
        assert torch.equal(written, pred), stem
        differs |= not torch.equal(pred, old)
    assert differs  # the old direct forward would have written other masks


def test_cli_rejects_a_stride_larger_than_the_crop(folder_run, tmp_path, capsys) -> None:
    from hamburger.recipes.seg.cli import main

    root, data, *_ = folder_run
    ckpt = root / "run" / "checkpoints" / "last.ckpt"
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--ckpt_path", str(ckpt), "--input", str(data / "images" / "val"), "--output",
              str(tmp_path / "out"), "--mode", "slide", "--crop_size", "32", "--stride", "40"])  # fmt: skip
    assert stop.value.code != 0
    err = capsys.readouterr().err
    assert "stride=40 and crop_size=32" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
