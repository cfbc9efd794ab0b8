"""Unit tests of the GAN training pieces: hinge losses, EMA arithmetic, DiffAugment, sample grids, data sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hamburger.recipes.gan.data import FashionMNIST32, GANDataModule, ImageFolderGAN, build_gan_dataset
from hamburger.recipes.gan.diffaug import diff_augment, parse_policy
from hamburger.recipes.gan.ema import EMA, make_ema_copy
from hamburger.recipes.gan.grid import fixed_noise, grid_size, make_grid
from hamburger.recipes.gan.losses import hinge_d_loss, hinge_g_loss


# --------------------------------------------------------------------------- losses
def test_hinge_losses_against_hand_computed_values() -> None:
    real = torch.tensor([2.0, 0.5, -1.0])  # relu(1 - x) = 0, 0.5, 2 -> mean 5/6
    fake = torch.tensor([-2.0, 0.0, 1.0])  # relu(1 + x) = 0, 1, 2  -> mean 1
    assert hinge_d_loss(real, fake).item() == pytest.approx(5 / 6 + 1)
    assert hinge_g_loss(fake).item() == pytest.approx(1 / 3)  # -mean(-2, 0, 1)
    # a confident, correct D has zero loss; the G loss goes down as D scores fakes higher
    assert hinge_d_loss(torch.full((4,), 3.0), torch.full((4,), -3.0)).item() == 0.0
    assert hinge_g_loss(torch.full((4,), 5.0)).item() == -5.0
    # float32 even for half-precision logits
    assert hinge_d_loss(real.bfloat16(), fake.bfloat16()).dtype == torch.float32


# --------------------------------------------------------------------------- EMA
class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))
        self.register_buffer("stat", torch.zeros(3))


def test_ema_after_k_updates_matches_the_formula_and_start_step() -> None:
    d, start = 0.9, 3
    net = _Net()
    ema_net = make_ema_copy(net)
    assert not any(p.requires_grad for p in ema_net.parameters()) and not ema_net.training
    ema = EMA(net, ema_net, decay=d, start_step=start)
    values = [1.0, 2.0, 4.0, -1.0, 0.5, 3.0]
    expected = 0.0
    for step, v in enumerate(values, start=1):
        with torch.no_grad():
            net.w.fill_(v)
            net.stat.fill_(10 * v)
        ema.update(step)
        expected = v if step < start else d * expected + (1 - d) * v  # copy before start_step, then average
        torch.testing.assert_close(ema_net.w, torch.full((3,), expected))
        torch.testing.assert_close(ema_net.stat, torch.full((3,), 10 * v))  # buffers are copied
    # closed form from the first averaging update on: d^k theta_0 + (1 - d) sum_j d^(k-j) theta_j
    theta0, rest = values[start - 2], values[start - 1 :]
    k = len(rest)
    closed = d**k * theta0 + (1 - d) * sum(d ** (k - 1 - j) * v for j, v in enumerate(rest))
    assert ema_net.w[0].item() == pytest.approx(closed, rel=1e-6)
    assert ema.decay_at(start - 1) == 0.0 and ema.decay_at(start) == d


def test_ema_arguments_are_checked() -> None:
    net = _Net()
    with pytest.raises(ValueError, match="decay"):
        EMA(net, make_ema_copy(net), decay=1.0, start_step=0)
    with pytest.raises(ValueError, match="start_step"):
        EMA(net, make_ema_copy(net), decay=0.5, start_step=-1)
    with pytest.raises(ValueError, match="same parameters"):
        EMA(net, nn.Linear(2, 2), decay=0.5, start_step=0)


# --------------------------------------------------------------------------- DiffAugment
def test_diffaugment_is_differentiable_reproducible_and_does_what_it_says() -> None:
    x = (torch.rand(6, 3, 20, 20) * 2 - 1).requires_grad_()
    policy = "color,translation,cutout"
    a = diff_augment(x, policy, generator=torch.Generator().manual_seed(1))
    b = diff_augment(x, policy, generator=torch.Generator().manual_seed(1))
    c = diff_augment(x, policy, generator=torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    ones = torch.ones(8, 1, 16, 16)
    cut = diff_augment(ones, "cutout", generator=torch.Generator().manual_seed(0))
    zeros = (cut == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 8 * 8).all()  # one square of at most half the side per image
    moved = diff_augment(ones, "translation", generator=torch.Generator().manual_seed(0))
    assert set(moved.unique().tolist()) <= {0.0, 1.0}  # shifted content, zero fill
    shift = 16 - moved[:, 0].amax(dim=2).sum(1)  # empty rows = vertical shift
    assert (shift <= 2).all()  # at most 1/8 of the side
    assert diff_augment(x, None) is x and diff_augment(x, "") is x
    assert parse_policy("cutout, color") == ("color", "cutout")
    with pytest.raises(ValueError, match="unknown policy 'colour'"):
        parse_policy("colour")


# --------------------------------------------------------------------------- grids
def test_grid_layout_rows_are_classes() -> None:
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 1, 5, 5).contiguous()
    grid = make_grid(images, rows=2, padding=2)
    assert tuple(grid.shape[1:]) == grid_size(2, 3, 5) == (2 * 7 + 2, 3 * 7 + 2)
    assert grid[0, 2, 2].item() == 0 and grid[0, 2, 2 + 7].item() == 1 and grid[0, 2 + 7, 2].item() == 3
    assert grid[0, 0, 0].item() == 255  # padding
    z, y = fixed_noise([4, 1], 3, 5, seed=0)
    assert y.tolist() == [4, 4, 4, 1, 1, 1] and torch.equal(z[:3], z[3:])  # the same noise in every row


# --------------------------------------------------------------------------- data
def test_fashion_mnist_at_32x32() -> None:
    ds = FashionMNIST32()
    item = ds[0]
    assert len(ds) == 10000 and ds.num_classes == 10
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.uint8
    assert item["image"][:, :2].sum() == 0 and item["image"][:, :, -2:].sum() == 0  # 2-pixel zero border
    assert item["label"].dtype == torch.int64


def _write_folder(root, *, sizes=((67, 53), (53, 67))) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("zebra", "apple"):  # sorted: apple = 0, zebra = 1
        (root / name).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name / f"{i}.jpg")
        Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16)).save(root / name / "deep.png")  # 16-bit
        (root / name / "notes.txt").write_text("not an image")


def test_image_folder_classes_sizes_and_formats(tmp_path) -> None:
    _write_folder(tmp_path)
    ds = ImageFolderGAN(str(tmp_path), image_size=32)
    assert ds.class_names == ["apple", "zebra"] and len(ds) == 6
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    for i in range(len(ds)):
        assert ds[i]["image"].shape == (3, 32, 32) and ds[i]["image"].dtype == torch.uint8
    deep = next(i for i, f in enumerate(ds.files) if f.endswith("deep.png"))
    assert ds[deep]["image"].float().std() > 20  # 16-bit data scaled by its bit depth, not clipped to 255
    imagenet = tmp_path / "imagenet"
    _write_folder(imagenet / "train")
    assert build_gan_dataset("imagenet", root=str(imagenet), image_size=32).class_names == ["apple", "zebra"]


def test_missing_data_folders_are_clear_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no such folder"):
        GANDataModule("folder", root=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="data.root is required"):
        GANDataModule("imagenet")
    with pytest.raises(FileNotFoundError, match="no train/ folder"):
        build_gan_dataset("imagenet", root=str(tmp_path), image_size=32)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(FileNotFoundError, match="has no images"):
        ImageFolderGAN(str(tmp_path), image_size=32)
