"""Paired segmentation transforms: geometry on known inputs, ignore padding, reproducibility."""

from __future__ import annotations

import pytest
import torch

from hamburger.recipes.seg.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SegEvalTransform,
    SegTrainTransform,
    adjust_saturation,
    denormalize,
    photometric_distortion,
    resize_nearest,
    shift_hue,
)

ID = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def coordinate_pair(height=12, width=16):
    """Image whose channels encode (row, col) and mask = row * width + col: lets tests locate pixels."""
    rows = torch.arange(height).view(-1, 1).expand(height, width)
    cols = torch.arange(width).view(1, -1).expand(height, width)
    image = torch.stack([rows * 10, cols * 10, torch.full_like(rows, 7)]).to(torch.uint8)
    return image, (rows * width + cols).long()


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_eval_normalises_exactly_and_keeps_mask():
    mean_colour = torch.tensor([round(255 * m) for m in IMAGENET_MEAN], dtype=torch.uint8)
    image = mean_colour.view(3, 1, 1).expand(3, 5, 7).clone()
    mask = torch.arange(35).view(5, 7)
    out, out_mask = SegEvalTransform()(image, mask)
    expected = (mean_colour.float() / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert out.dtype == torch.float32 and out.shape == (3, 5, 7)
    assert torch.allclose(out, expected.view(3, 1, 1).expand(3, 5, 7), atol=1e-6)
    assert out_mask is mask
    assert SegEvalTransform()(image, None)[1] is None  # prediction: no mask
    assert torch.equal(denormalize(out), image)


def test_upscale_by_two_duplicates_mask_pixels():
    image, mask = coordinate_pair(6, 8)
    t = SegTrainTransform((12, 16), scale_range=(2.0, 2.0), flip=False, photometric=False, **ID)
    out, out_mask = t(image, mask, generator=gen(0))
    assert out.shape == (3, 12, 16) and out_mask.shape == (12, 16)
    assert torch.equal(out_mask, mask.repeat_interleave(2, 0).repeat_interleave(2, 1))
    # bilinear, half-pixel centres: output pixel 1 sits at source 0.25 -> 0.75 * v0 + 0.25 * v1
    assert torch.allclose(out[1, 0, :4] * 255, torch.tensor([0.0, 2.5, 7.5, 12.5]), atol=1e-4)
    assert torch.allclose(out[2], torch.full((12, 16), 7 / 255))


def test_crop_is_a_window_shared_by_image_and_mask():
    image, mask = coordinate_pair(12, 16)
    t = SegTrainTransform((5, 6), scale_range=(1.0, 1.0), flip=False, photometric=False, **ID)
    offsets = set()
    for seed in range(20):
        out, out_mask = t(image, mask, generator=gen(seed))
        top, left = int(out_mask[0, 0]) // 16, int(out_mask[0, 0]) % 16
        offsets.add((top, left))
        assert torch.equal(out_mask, mask[top : top + 5, left : left + 6])
        assert torch.allclose(out * 255, image[:, top : top + 5, left : left + 6].float(), atol=1e-4)
    assert len(offsets) > 5 and all(0 <= t_ <= 7 and 0 <= l_ <= 10 for t_, l_ in offsets)


def test_padding_is_zero_image_and_ignore_mask_bottom_right():
    image, mask = coordinate_pair(6, 8)
    t = SegTrainTransform(10, scale_range=(1.0, 1.0), flip=False, photometric=False, ignore_index=254)
    out, out_mask = t(image, mask, generator=gen(0))
    assert out.shape == (3, 10, 10) and out_mask.shape == (10, 10)
    assert torch.equal(out_mask[:6, :8], mask)
    assert (out_mask[6:] == 254).all() and (out_mask[:, 8:] == 254).all()
    assert (out[:, 6:] == 0).all() and (out[:, :, 8:] == 0).all()  # 0 after normalisation (= mean colour)
    assert torch.allclose(denormalize(out[:, :6, :8]), image)


def test_flip_mirrors_image_and_mask_together():
    image, mask = coordinate_pair(6, 8)
    t = SegTrainTransform((6, 8), scale_range=(1.0, 1.0), flip=True, photometric=False, **ID)
    flipped = 0
    for seed in range(16):
        out, out_mask = t(image, mask, generator=gen(seed))
        if torch.equal(out_mask, mask.flip(-1)):
            flipped += 1
            assert torch.allclose(out * 255, image.flip(-1).float(), atol=1e-4)
        else:
            assert torch.equal(out_mask, mask)
    assert 3 <= flipped <= 13


def test_random_scale_output_size_and_mask_values():
    image = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)
    mask = torch.randint(0, 4, (20, 30))
    mask[:2] = 255
    t = SegTrainTransform((24, 24))
    sizes_with_padding = 0
    for seed in range(12):
        out, out_mask = t(image, mask, generator=gen(seed))
        assert out.shape == (3, 24, 24) and out.dtype == torch.float32 and torch.isfinite(out).all()
        assert out_mask.shape == (24, 24) and out_mask.dtype == torch.int64
        assert set(out_mask.unique().tolist()) <= {0, 1, 2, 3, 255}  # nearest: no new values
        sizes_with_padding += int((out_mask[-1] == 255).all())
    assert sizes_with_padding > 0  # scale < 1.2 leaves the 20-row image shorter than the crop


def test_generator_reproducible_and_global_rng_fallback():
    image = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)
    mask = torch.randint(0, 4, (20, 30))
    t = SegTrainTransform(16)
    a, b, c = t(image, mask, generator=gen(3)), t(image, mask, generator=gen(3)), t(image, mask, generator=gen(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    torch.manual_seed(5)
    d = t(image, mask)
    torch.manual_seed(5)
    e = t(image, mask)
    assert torch.equal(d[0], e[0]) and torch.equal(d[1], e[1])


def test_photometric_changes_colour_not_geometry():
    image = torch.rand(3, 8, 8, generator=gen(0))
    changed = [not torch.allclose(photometric_distortion(image.clone(), gen(s)), image) for s in range(8)]
    assert sum(changed) >= 6
    out = photometric_distortion(image.clone(), gen(1))
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
    grey = torch.full((3, 4, 4), 0.5)
    for s in range(8):  # saturation and hue leave grey grey; brightness/contrast move all channels alike
        g = photometric_distortion(grey.clone(), gen(s))
        assert torch.allclose(g, g[:1].expand_as(g), atol=1e-5)


def test_resize_nearest_downscale_takes_pixel_centres():
    mask = torch.arange(16).view(4, 4)
    assert resize_nearest(mask, (2, 2)).tolist() == [[5, 7], [13, 15]]


def test_bad_arguments():
    image, mask = coordinate_pair(6, 8)
    with pytest.raises(ValueError, match="crop_size"):
        SegTrainTransform(0)
    with pytest.raises(ValueError, match="scale_range"):
        SegTrainTransform(8, scale_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="std"):
        SegEvalTransform(std=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="mask must be a \\(6, 8\\) tensor"):
        SegTrainTransform(8)(image, mask[:5])
    with pytest.raises(ValueError, match="image must be a \\(3, H, W\\) tensor"):
        SegEvalTransform()(image[:1], None)


def test_hue_and_saturation_on_known_colours():
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert torch.allclose(shift_hue(red, 1 / 3), torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1), atol=1e-6)
    assert torch.allclose(shift_hue(red, 1 / 6), torch.tensor([1.0, 1.0, 0.0]).view(3, 1, 1), atol=1e-6)
    assert torch.allclose(shift_hue(red, -1 / 6), torch.tensor([1.0, 0.0, 1.0]).view(3, 1, 1), atol=1e-6)
    dark_orange = torch.tensor([0.6, 0.3, 0.0]).view(3, 1, 1)  # shifting keeps value and chroma
    assert torch.allclose(shift_hue(dark_orange, 0.5), torch.tensor([0.0, 0.3, 0.6]).view(3, 1, 1), atol=1e-6)
    grey = 0.299 * 0.6 + 0.587 * 0.3
    assert torch.allclose(adjust_saturation(dark_orange, 0.0), torch.full((3, 1, 1), grey), atol=1e-6)
    assert torch.allclose(adjust_saturation(dark_orange, 1.0), dark_orange)
