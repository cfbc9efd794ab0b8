"""Real dataset formats, each read from a tiny fixture tree in the dataset's exact on-disk layout."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from hamburger.recipes.seg.data import DATASETS, DatasetError, build_dataset
from hamburger.recipes.seg.data._io import bitwise_palette
from hamburger.recipes.seg.data.cityscapes import LABEL_TO_TRAIN_ID
from hamburger.recipes.seg.transforms import SegEvalTransform

H, W = 6, 8


def write_image(path, color=(200, 40, 90), size=(H, W), suffix=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    array = np.zeros((*size, 3), dtype=np.uint8)
    array[:] = color
    Image.fromarray(array).save(path, quality=95) if str(path).endswith(".jpg") else Image.fromarray(array).save(path)


def write_mask(path, values, palette=False, mode="L"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    array = np.asarray(values, dtype=np.uint8)
    if palette:
        im = Image.fromarray(array, mode="P")
        im.putpalette(bitwise_palette(256).flatten().tolist())
    else:
        im = Image.fromarray(array).convert(mode) if mode != "L" else Image.fromarray(array, mode="L")
    im.save(path)


def mask_with(values):
    """An (H, W) uint8 mask whose first pixels hold ``values`` (the rest 0)."""
    array = np.zeros(H * W, dtype=np.uint8)
    array[: len(values)] = values
    return array.reshape(H, W)


def write_list(path, ids):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(f"{i}\n" for i in ids))


def expected(values, mapping):
    return torch.from_numpy(np.array([mapping(v) for v in mask_with(values).flatten()]).reshape(H, W))


# ------------------------------------------------------------------ VOC
@pytest.fixture
def voc_root(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2012"
    for name in ("2007_000032", "2007_000033", "2008_000001"):
        write_image(base / "JPEGImages" / f"{name}.jpg")
    write_mask(base / "SegmentationClass" / "2007_000032.png", mask_with([0, 1, 15, 20, 255]), palette=True)
    write_mask(base / "SegmentationClass" / "2007_000033.png", mask_with([3]), palette=True)
    write_list(base / "ImageSets" / "Segmentation" / "train.txt", ["2007_000032"])
    write_list(base / "ImageSets" / "Segmentation" / "val.txt", ["2007_000033"])
    return tmp_path


def test_voc_palette_png_gives_class_indices(voc_root):
    ds = build_dataset("voc", root=str(voc_root), split="train")
    assert len(ds) == 1 and ds.num_classes == 21 and ds.ignore_index == 255
    assert ds.class_names[0] == "background" and ds.class_names[15] == "person"
    item = ds[0]
    assert item["name"] == "2007_000032"
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, H, W)
    assert item["mask"].dtype == torch.int64
    assert torch.equal(item["mask"], torch.from_numpy(mask_with([0, 1, 15, 20, 255]).astype(np.int64)))
    # JPEG is lossy: the colour is close, not exact
    assert (item["image"].float().mean((1, 2)) - torch.tensor([200.0, 40.0, 90.0])).abs().max() < 6
    assert ds.palette.dtype == torch.uint8 and ds.palette.shape == (21, 3)
    assert ds.palette[0].tolist() == [0, 0, 0] and ds.palette[1].tolist() == [128, 0, 0]
    assert ds.palette[15].tolist() == [192, 128, 128]


@pytest.mark.parametrize("sub", ["", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_voc_root_may_be_any_level(voc_root, sub):
    ds = build_dataset("voc", root=str(voc_root / sub) if sub else str(voc_root), split="val")
    assert [s.name for s in ds.samples] == ["2007_000033"]
    assert ds[0]["mask"][0, 0].item() == 3


def test_voc_aug_list_and_fallback(voc_root):
    base = voc_root / "VOCdevkit" / "VOC2012"
    write_mask(base / "SegmentationClassAug" / "2008_000001.png", mask_with([0, 7, 7]))
    write_mask(base / "SegmentationClassAug" / "2007_000032.png", mask_with([5]))
    aug_list = base / "ImageSets" / "Segmentation" / "train_aug.txt"
    aug_list.write_text(
        "/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png\n"
        "/JPEGImages/2008_000001.jpg /SegmentationClassAug/2008_000001.png\n"
    )
    train = build_dataset("voc_aug", root=str(voc_root), split="train")
    assert [s.name for s in train.samples] == ["2007_000032", "2008_000001"]
    assert train[0]["mask"][0, 0].item() == 5  # SegmentationClassAug wins over SegmentationClass
    assert train[1]["mask"].flatten()[:3].tolist() == [0, 7, 7]
    val = build_dataset("voc_aug", root=str(voc_root), split="val")  # falls back to SegmentationClass
    assert val.samples[0].mask.endswith(os.path.join("SegmentationClass", "2007_000033.png"))


def test_voc_missing_listed_image_names_file(voc_root):
    base = voc_root / "VOCdevkit" / "VOC2012"
    write_list(base / "ImageSets" / "Segmentation" / "train.txt", ["2007_000032", "2099_999999"])
    with pytest.raises(FileNotFoundError, match="2099_999999.jpg"):
        build_dataset("voc", root=str(voc_root), split="train")


def test_voc_missing_mask_names_file(voc_root):
    base = voc_root / "VOCdevkit" / "VOC2012"
    write_list(base / "ImageSets" / "Segmentation" / "train.txt", ["2008_000001"])
    with pytest.raises(FileNotFoundError, match="SegmentationClass.2008_000001.png"):
        build_dataset("voc", root=str(voc_root), split="train")


def test_empty_list_names_list_file(voc_root):
    list_file = voc_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt"
    list_file.write_text("\n")
    with pytest.raises(DatasetError, match="empty dataset.*train.txt"):
        build_dataset("voc", root=str(voc_root), split="train")


def test_missing_root_and_bad_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_dataset("voc", root=str(tmp_path / "nowhere"), split="train")
    with pytest.raises(FileNotFoundError, match="JPEGImages"):
        build_dataset("voc", root=str(tmp_path), split="train")
    with pytest.raises(ValueError, match="split must be one of"):
        build_dataset("voc", root=str(tmp_path), split="test")
    with pytest.raises(ValueError, match="needs root"):
        build_dataset("ade20k", split="train")


def test_unknown_dataset_lists_names():
    with pytest.raises(ValueError, match="unknown dataset 'coco'.*'ade20k'.*'voc_aug'"):
        build_dataset("coco", split="train")
    names = {"fashion_scenes", "voc", "voc_aug", "ade20k", "cityscapes", "pascal_context", "folder"}
    assert set(DATASETS) == names


# ------------------------------------------------------------------ ADE20K
@pytest.fixture
def ade_root(tmp_path):
    base = tmp_path / "ADEChallengeData2016"
    for sub, names in (("training", ["ADE_train_00000002", "ADE_train_00000001"]), ("validation", ["ADE_val_1"])):
        for name in names:
            write_image(base / "images" / sub / f"{name}.jpg")
            write_mask(base / "annotations" / sub / f"{name}.png", mask_with([0, 1, 2, 150, 255]))
    return tmp_path


def test_ade20k_reduce_zero_label(ade_root):
    ds = build_dataset("ade20k", root=str(ade_root), split="train")
    assert ds.num_classes == 150 and len(ds.class_names) == 150 and ds.class_names[0] == "wall"
    assert ds.class_names[149] == "flag" and ds.palette.shape == (150, 3)
    assert [s.name for s in ds.samples] == ["ADE_train_00000001", "ADE_train_00000002"]  # sorted
    mask = ds[0]["mask"]
    assert mask.flatten()[:5].tolist() == [255, 0, 1, 149, 255]
    assert (mask.flatten()[5:] == 255).all()  # stored 0 everywhere else
    assert len(build_dataset("ade20k", root=str(ade_root / "ADEChallengeData2016"), split="val")) == 1


def test_ade20k_label_out_of_range_names_file(ade_root):
    bad = ade_root / "ADEChallengeData2016" / "annotations" / "validation" / "ADE_val_1.png"
    write_mask(bad, mask_with([151]))
    ds = build_dataset("ade20k", root=str(ade_root), split="val")
    with pytest.raises(DatasetError, match=r"ADE_val_1\.png.*\[150\] outside \[0, 150\)"):
        ds[0]


def test_ade20k_empty_split_names_pattern(ade_root):
    for f in (ade_root / "ADEChallengeData2016" / "images" / "validation").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r"empty dataset.*validation.*\*\.jpg"):
        build_dataset("ade20k", root=str(ade_root), split="val")


# ------------------------------------------------------------------ Cityscapes
CITYSCAPES_TRAIN_IDS = [255] * 7 + [0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                        15, 255, 255, 16, 17, 18]  # fmt: skip


@pytest.fixture
def city_root(tmp_path):
    for split, city, frame in (("train", "aachen", "aachen_000000_000019"), ("val", "lindau", "lindau_000001_000019")):
        write_image(tmp_path / "leftImg8bit" / split / city / f"{frame}_leftImg8bit.png", size=(5, 7))
        ids = np.arange(35).clip(max=33).reshape(5, 7)  # every labelId 0..33
        write_mask(tmp_path / "gtFine" / split / city / f"{frame}_gtFine_labelIds.png", ids)
        write_mask(tmp_path / "gtFine" / split / city / f"{frame}_gtFine_color.png", ids)  # ignored sibling
    return tmp_path


def test_cityscapes_label_ids_to_train_ids(city_root):
    assert len(CITYSCAPES_TRAIN_IDS) == 34
    assert {k: v for k, v in enumerate(CITYSCAPES_TRAIN_IDS) if v != 255} == LABEL_TO_TRAIN_ID
    ds = build_dataset("cityscapes", root=str(city_root), split="train")
    assert ds.num_classes == 19 and ds.class_names[0] == "road" and ds.class_names[18] == "bicycle"
    assert ds.palette[0].tolist() == [128, 64, 128] and ds.palette.shape == (19, 3)
    item = ds[0]
    assert item["name"] == "aachen_000000_000019" and item["image"].shape == (3, 5, 7)
    assert item["mask"].flatten().tolist() == CITYSCAPES_TRAIN_IDS + [18]
    assert len(build_dataset("cityscapes", root=str(city_root), split="val")) == 1


def test_cityscapes_missing_mask_and_bad_ids(city_root):
    mask = city_root / "gtFine" / "val" / "lindau" / "lindau_000001_000019_gtFine_labelIds.png"
    write_mask(mask, np.full((5, 7), 40))
    with pytest.raises(DatasetError, match="lindau_000001_000019_gtFine_labelIds.png.*40"):
        build_dataset("cityscapes", root=str(city_root), split="val")[0]
    mask.unlink()
    with pytest.raises(FileNotFoundError, match="lindau_000001_000019_gtFine_labelIds.png"):
        build_dataset("cityscapes", root=str(city_root), split="val")


# ------------------------------------------------------------------ PASCAL-Context
def test_pascal_context_59(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2010"
    write_image(base / "JPEGImages" / "2008_000002.jpg")
    write_mask(base / "SegmentationClassContext" / "2008_000002.png", mask_with([0, 1, 30, 59]))
    write_list(base / "ImageSets" / "SegmentationContext" / "train.txt", ["2008_000002"])
    ds = build_dataset("pascal_context", root=str(tmp_path), split="train")
    assert ds.num_classes == 59 and ds.class_names[0] == "aeroplane" and ds.class_names[58] == "wood"
    assert ds[0]["mask"].flatten()[:4].tolist() == [255, 0, 29, 58]
    write_mask(base / "SegmentationClassContext" / "2008_000002.png", mask_with([60]))
    with pytest.raises(DatasetError, match=r"2008_000002\.png.*\[59\]"):
        ds[0]


# ------------------------------------------------------------------ generic folder
def test_folder_jpg_png_palette_and_grayscale(tmp_path):
    write_image(tmp_path / "images" / "b.png", color=(1, 2, 3))
    write_image(tmp_path / "images" / "a.jpg")
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    write_mask(tmp_path / "masks" / "a.png", mask_with([0, 1, 2, 255]), palette=True)
    write_mask(tmp_path / "masks" / "b.png", mask_with([2, 2]))
    ds = build_dataset("folder", root=str(tmp_path), split="train", num_classes=3, class_names=["bg", "x", "y"])
    assert [s.name for s in ds.samples] == ["a", "b"]
    assert ds.class_names == ["bg", "x", "y"] and ds.palette.shape == (3, 3)
    assert ds[0]["mask"].flatten()[:4].tolist() == [0, 1, 2, 255]
    assert torch.equal(ds[1]["image"][:, 0, 0], torch.tensor([1, 2, 3], dtype=torch.uint8))  # PNG: exact
    ds_r = build_dataset("folder", root=str(tmp_path), split="train", num_classes=2, reduce_zero_label=True)
    assert ds_r[1]["mask"].flatten()[:3].tolist() == [1, 1, 255]


def test_folder_per_split_dirs_and_errors(tmp_path):
    for split in ("train", "val"):
        write_image(tmp_path / "images" / split / f"{split}1.png")
        write_mask(tmp_path / "masks" / split / f"{split}1.png", mask_with([1]))
    val = build_dataset("folder", root=str(tmp_path), split="val", num_classes=2)
    assert [s.name for s in val.samples] == ["val1"]
    write_mask(tmp_path / "masks" / "val" / "val1.png", mask_with([2]))
    with pytest.raises(DatasetError, match=r"val1\.png.*\[2\] outside \[0, 2\)"):
        val[0]
    write_image(tmp_path / "images" / "val" / "orphan.jpg")
    with pytest.raises(FileNotFoundError, match="orphan.png"):
        build_dataset("folder", root=str(tmp_path), split="val", num_classes=2)
    with pytest.raises(ValueError, match="num_classes"):
        build_dataset("folder", root=str(tmp_path), split="val", num_classes=0)


def test_size_mismatch_unreadable_and_rgb_mask(tmp_path):
    write_image(tmp_path / "images" / "a.png")
    write_mask(tmp_path / "masks" / "a.png", np.zeros((H + 1, W), dtype=np.uint8))
    ds = build_dataset("folder", root=str(tmp_path), split="x", num_classes=2)
    with pytest.raises(DatasetError, match=r"images.a\.png is 8x6.*masks.a\.png is 8x7"):
        ds[0]
    write_mask(tmp_path / "masks" / "a.png", np.zeros((H, W), dtype=np.uint8), mode="RGB")
    with pytest.raises(DatasetError, match=r"masks.a\.png has image mode 'RGB'"):
        ds[0]
    (tmp_path / "images" / "a.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DatasetError, match=r"cannot read image .*a\.png"):
        ds[0]
    os.remove(tmp_path / "images" / "a.png")
    with pytest.raises(FileNotFoundError, match=r"image file not found: .*a\.png"):
        ds[0]


def test_empty_folder_names_root_and_pattern(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match=f"empty dataset.*{tmp_path}.*images"):
        build_dataset("folder", root=str(tmp_path), split="train", num_classes=2)


def test_transform_is_applied(voc_root):
    ds = build_dataset(
        "voc", root=str(voc_root), split="train", transform=SegEvalTransform(mean=(0, 0, 0), std=(1, 1, 1))
    )
    item = ds[0]
    assert item["image"].dtype == torch.float32 and item["image"].max() <= 1.0
    assert item["mask"].flatten()[:5].tolist() == [0, 1, 15, 20, 255]
    batch = torch.utils.data.default_collate([item, item])
    assert batch["image"].shape == (2, 3, H, W) and batch["name"] == ["2007_000032"] * 2


# ------------------------------------------------------------------ data that must not be misread (issue 10)
SH, SW = 53, 67  # not multiples of 8


def write_binary_folder(root, masks, *, split="train"):
    """A per-split folder dataset with one grey image per mask (PNG), masks saved as given (0/255 usually)."""
    for i, mask in enumerate(masks):
        write_image(root / "images" / split / f"s{i}.png", color=(90, 90, 90), size=mask.shape)
        write_mask(root / "masks" / split / f"s{i}.png", mask)


def square_mask(value=255, size=(SH, SW)):
    mask = np.zeros(size, dtype=np.uint8)
    mask[10:40, 20:50] = value
    return mask


def folder_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name.endswith("data.folder") and r.levelname == "WARNING"]


def test_binary_0_255_masks_warn_and_label_map_maps_them(tmp_path, caplog):
    write_binary_folder(tmp_path, [square_mask(), square_mask(), np.zeros((SH, SW), np.uint8)])
    with caplog.at_level("WARNING"):
        ds = build_dataset("folder", root=str(tmp_path), split="train", num_classes=2)
    (message,) = folder_warnings(caplog)
    assert "1 (class_1) never occur in 3 of 3 masks" in message and "label_map={255: 1}" in message
    assert "\n" not in message
    assert set(ds[0]["mask"].unique().tolist()) == {0, 255}  # unmapped: the foreground is ignored
    caplog.clear()
    for label_map in ({255: 1}, {"255": 1}):  # YAML gives int keys, JSON string keys
        with caplog.at_level("WARNING"):
            mapped = build_dataset("folder", root=str(tmp_path), split="train", num_classes=2, label_map=label_map)
        assert folder_warnings(caplog) == []
        assert mapped.label_map == {255: 1}
        assert torch.equal(mapped[0]["mask"], torch.from_numpy(square_mask(1).astype(np.int64)))
        assert (mapped[2]["mask"] == 0).all()


def test_label_map_applies_before_the_label_check(tmp_path):
    write_binary_folder(tmp_path, [mask_with([0, 1, 7, 255])])
    with pytest.raises(DatasetError, match=r"s0\.png has label values \[7\]"):
        build_dataset("folder", root=str(tmp_path), split="train", num_classes=2)
    ds = build_dataset("folder", root=str(tmp_path), split="train", num_classes=2, label_map={7: 255, 255: 1, 1: 0})
    assert ds[0]["mask"].flatten()[:4].tolist() == [0, 0, 255, 1]


@pytest.mark.parametrize(
    ("label_map", "error", "match"),
    [
        ({256: 1}, ValueError, r"keys must be stored mask values in \[0, 255\], got 256"),
        ({-1: 0}, ValueError, r"got -1"),
        ({255: 2}, ValueError, r"label_map\[255\] must be a class id in \[0, 2\) or 255 \(ignore\), got 2"),
        ({255: -3}, ValueError, r"got -3"),
        ({255: "1"}, TypeError, r"label_map value label_map\[255\] must be an int, got str '1'"),
        ({True: 1}, TypeError, r"key must be an int, got bool True"),
        ({1.5: 1}, TypeError, r"got float 1.5"),
        ([(255, 1)], TypeError, r"label_map must be a dict .*got list"),
    ],
)
def test_label_map_is_validated(tmp_path, label_map, error, match):
    write_binary_folder(tmp_path, [square_mask()])
    with pytest.raises(error, match=match):
        build_dataset("folder", root=str(tmp_path), split="train", num_classes=2, label_map=label_map)


def test_label_map_and_reduce_zero_label_are_exclusive(tmp_path):
    write_binary_folder(tmp_path, [square_mask()])
    with pytest.raises(ValueError, match="label_map or reduce_zero_label, not both"):
        build_dataset("folder", root=str(tmp_path), split="train", num_classes=2, label_map={255: 1},
                      reduce_zero_label=True)  # fmt: skip


def test_no_label_warning_for_ordinary_masks_and_check_is_bounded(tmp_path, caplog, monkeypatch):
    # VOC-like: every class present, a thin 255 boundary
    masks = []
    for _ in range(40):
        mask = np.zeros((SH, SW), np.uint8)
        mask[:, SW // 3 :] = 1
        mask[:, 2 * SW // 3 :] = 2
        mask[:, SW // 3] = 255
        masks.append(mask)
    write_binary_folder(tmp_path, masks)
    import hamburger.recipes.seg.data.folder as folder_module

    calls = []
    real_read_mask = folder_module.read_mask
    monkeypatch.setattr(folder_module, "read_mask", lambda path: calls.append(path) or real_read_mask(path))
    with caplog.at_level("WARNING"):
        ds = build_dataset("folder", root=str(tmp_path), split="train", num_classes=3)
    assert folder_warnings(caplog) == [] and len(ds) == 40
    assert len(calls) == 16 and len(set(calls)) == 16  # a bounded, evenly spaced sample
    assert calls[0] == ds.samples[0].mask and calls[-1] == ds.samples[-1].mask
    calls.clear()
    build_dataset("folder", root=str(tmp_path), split="train", num_classes=3, check_masks=0)
    assert calls == []


def write_16bit(path, array):
    """Write ``array`` (uint16) with PIL as a 16-bit grayscale PNG or TIFF; return the mode PIL reads back."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array.astype(np.uint16)).save(path)
    with Image.open(path) as im:
        return im.format, im.mode


def ramp_12bit(size=(SH, SW), top=4095):
    return (np.arange(size[0] * size[1]).reshape(size) * 7 % (top + 1)).astype(np.uint16)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_images_are_scaled_by_bit_depth_not_clipped(tmp_path, suffix, caplog):
    raw = ramp_12bit()
    raw[0, 0], raw[0, 1] = 0, 4095
    fmt, mode = write_16bit(tmp_path / "images" / "train" / f"a{suffix}", raw)
    assert (fmt, mode) == ({".png": "PNG", ".tif": "TIFF"}[suffix], "I;16")  # what Pillow gives for both
    write_mask(tmp_path / "masks" / "train" / "a.png", square_mask(1))
    expected = torch.from_numpy(raw.astype(np.float32))
    with caplog.at_level("WARNING"):
        ds = build_dataset("folder", root=str(tmp_path), split="train", num_classes=2)
    image = ds[0]["image"]
    assert image.dtype == torch.float32 and image.shape == (3, SH, SW)
    torch.testing.assert_close(image, (expected / 65535).expand(3, -1, -1), rtol=0, atol=1e-7)
    assert (image[:, raw > 255] > 255 / 65535).all()  # nothing clipped at 255 (the old uint8 conversion)
    (warning,) = folder_warnings(caplog)  # 12-bit data in a 16-bit file: told how to use its range
    assert "reach at most 4095 of 65535" in warning and "image_scale=4095" in warning
    caplog.clear()
    with caplog.at_level("WARNING"):
        twelve = build_dataset("folder", root=str(tmp_path), split="train", num_classes=2, image_scale=4095)
    assert folder_warnings(caplog) == []
    torch.testing.assert_close(twelve[0]["image"][0], expected / 4095, rtol=0, atol=1e-7)
    assert twelve[0]["image"].max() == 1.0
    minmax = build_dataset("folder", root=str(tmp_path), split="train", num_classes=2, image_scale="minmax")
    torch.testing.assert_close(minmax[0]["image"][1], expected / 4095, rtol=0, atol=1e-7)  # min 0, max 4095
    # through the evaluation transform: (x - mean) / std on the scaled values
    ev = build_dataset("folder", root=str(tmp_path), split="train", num_classes=2, image_scale=4095.0,
                       transform=SegEvalTransform(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))  # fmt: skip
    torch.testing.assert_close(ev[0]["image"][2], (expected / 4095 - 0.5) / 0.25, rtol=0, atol=1e-6)


def test_values_above_image_scale_are_an_error_not_clipped(tmp_path):
    raw = ramp_12bit()
    raw[5, 5] = 5000
    write_16bit(tmp_path / "images" / "train" / "a.tif", raw)
    write_mask(tmp_path / "masks" / "train" / "a.png", square_mask(1))
    ds = build_dataset("folder", root=str(tmp_path), split="train", num_classes=2, image_scale=4095)
    with pytest.raises(DatasetError, match=r"a\.tif \(mode I;16\) has values in \[0, 5000\], outside \[0, 4095\]"):
        ds[0]
    with pytest.raises(ValueError, match="image_scale must be 'dtype', 'minmax' or a positive number"):
        build_dataset("folder", root=str(tmp_path), split="train", num_classes=2, image_scale="max")
    with pytest.raises(ValueError, match="got 0"):
        build_dataset("folder", root=str(tmp_path), split="train", num_classes=2, image_scale=0)
    with pytest.raises(TypeError, match="got bool True"):
        build_dataset("folder", root=str(tmp_path), split="train", num_classes=2, image_scale=True)


def test_32bit_int_and_float_tiffs(tmp_path):
    from hamburger.recipes.seg.data._io import read_image

    raw = ramp_12bit().astype(np.int32)
    Image.fromarray(raw).save(tmp_path / "i32.tif")
    assert Image.open(tmp_path / "i32.tif").mode == "I"
    torch.testing.assert_close(read_image(tmp_path / "i32.tif")[0], torch.from_numpy(raw / (2**32 - 1)).float())
    torch.testing.assert_close(read_image(tmp_path / "i32.tif", scale=4095)[1], torch.from_numpy(raw / 4095).float())
    unit = np.linspace(0, 1, SH * SW, dtype=np.float32).reshape(SH, SW)
    Image.fromarray(unit).save(tmp_path / "f.tif")
    torch.testing.assert_close(read_image(tmp_path / "f.tif")[2], torch.from_numpy(unit))
    Image.fromarray(unit * 3).save(tmp_path / "f3.tif")
    with pytest.raises(DatasetError, match=r"f3\.tif \(mode F\) has values in \[0, 3\]"):
        read_image(tmp_path / "f3.tif")
    # 8-bit files keep their uint8 values with the default scale, and are scaled with the others
    write_image(tmp_path / "rgb.png", color=(0, 100, 200))
    assert read_image(tmp_path / "rgb.png").dtype == torch.uint8
    torch.testing.assert_close(read_image(tmp_path / "rgb.png", scale="minmax")[:, 0, 0], torch.tensor([0, 0.5, 1]))


def test_jpeg_mask_named_png_is_rejected(tmp_path):
    write_image(tmp_path / "images" / "a.png")
    os.makedirs(tmp_path / "masks")
    Image.fromarray(square_mask(1, size=(H, W))).save(tmp_path / "masks" / "a.png", format="JPEG")
    assert Image.open(tmp_path / "masks" / "a.png").mode == "L"  # passes the mode check
    with pytest.raises(DatasetError, match=r"mask .*masks.a\.png is a JPEG file; masks must be PNG"):
        build_dataset("folder", root=str(tmp_path), split="train", num_classes=2)  # found when built
    ds = build_dataset("folder", root=str(tmp_path), split="train", num_classes=2, check_masks=0)
    with pytest.raises(DatasetError, match=r"masks.a\.png is a JPEG file"):
        ds[0]


def test_corrupt_image_is_one_line_naming_the_file_with_workers(tmp_path):
    write_binary_folder(tmp_path, [square_mask(1)] * 3, split="val")
    bad = tmp_path / "images" / "val" / "s1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated PNG
    ds = build_dataset("folder", root=str(tmp_path), split="val", num_classes=2,
                       transform=SegEvalTransform(mean=(0, 0, 0), std=(1, 1, 1)))  # fmt: skip
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2)
    with pytest.raises(ValueError) as caught:
        list(loader)
    assert isinstance(caught.value, DatasetError)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"cannot read image {bad}: ") and "(in DataLoader worker process" in message
    with pytest.raises(DatasetError, match=f"^cannot read image {bad}: "):
        ds[1]  # in the main process


def test_any_decoder_failure_is_a_dataset_error_naming_the_file(tmp_path, monkeypatch):
    import struct

    from hamburger.recipes.seg.data._io import read_image, read_mask

    write_image(tmp_path / "a.png")
    write_mask(tmp_path / "m.png", mask_with([1]))

    def broken_decoder(self):
        raise struct.error("unpack_from requires a buffer of at least 4 bytes")

    monkeypatch.setattr(Image.Image, "load", broken_decoder)
    monkeypatch.setattr(Image.Image, "__array_interface__", property(broken_decoder))
    with pytest.raises(DatasetError, match=r"^cannot read image .*a\.png: struct\.error: unpack_from requires"):
        read_image(tmp_path / "a.png")
    with pytest.raises(DatasetError, match=r"^cannot read mask .*m\.png: struct\.error: unpack_from requires"):
        read_mask(tmp_path / "m.png")


def test_16bit_png_read_as_mode_I_by_older_pillow(tmp_path, monkeypatch):
    from hamburger.recipes.seg.data._io import read_image

    raw = ramp_12bit()
    write_16bit(tmp_path / "a.png", raw)
    real_open = Image.open

    def old_pillow_open(fp, *args, **kwargs):  # Pillow < 10 opens 16-bit grey PNGs in mode "I"
        im = real_open(fp, *args, **kwargs)
        assert im.mode == "I;16"
        converted = im.convert("I")
        converted.format = im.format
        return converted

    monkeypatch.setattr(Image, "open", old_pillow_open)
    image = read_image(tmp_path / "a.png")
    torch.testing.assert_close(image, torch.from_numpy(raw / 65535).float().expand(3, -1, -1), rtol=0, atol=1e-7)
