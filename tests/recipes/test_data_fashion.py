"""FashionScenes: exact masks, determinism, disjoint item pools, the context and consensus variants, IDX reading."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch

from hamburger.recipes.seg.data import DatasetError, FashionScenes, build_dataset
from hamburger.recipes.seg.data.fashion_mnist import load_fashion_mnist
from hamburger.recipes.seg.data.fashion_scenes import VAL_START, _resize_matrix


def scenes(split="train", **kwargs):
    kwargs.setdefault("num_scenes", 64)
    kwargs.setdefault("fashion_root", "embedded")
    return FashionScenes(split, **kwargs)


def write_idx(folder, prefix, images, labels):
    n = len(labels)
    header = (2051).to_bytes(4, "big") + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + images.astype(np.uint8).tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write((2049).to_bytes(4, "big") + n.to_bytes(4, "big") + labels.astype(np.uint8).tobytes())


def test_shipped_test_split():
    images, labels = load_fashion_mnist()
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8 and labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [1000] * 10
    assert labels[:5].tolist() == [9, 2, 1, 1, 6]  # the well-known first test labels


def test_item_format_and_metadata():
    ds = build_dataset("fashion_scenes", split="val", num_scenes=10)
    assert len(ds) == 10 and ds.num_classes == 11 and ds.ignore_index == 255
    assert ds.class_names[0] == "background" and ds.class_names[10] == "Ankle boot"
    assert ds.palette.dtype == torch.uint8 and ds.palette.shape == (11, 3) and ds.palette[0].tolist() == [0, 0, 0]
    item = ds[3]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 64, 64)
    assert item["mask"].dtype == torch.int64 and item["mask"].shape == (64, 64)
    assert item["name"] == "fashion_plain_val_000003"
    assert 0 <= int(item["mask"].min()) and int(item["mask"].max()) < 11
    assert (item["mask"] > 0).any() and (item["mask"] == 0).any()
    assert ds[-1]["name"] == "fashion_plain_val_000009"
    with pytest.raises(IndexError):
        ds[10]


def test_single_item_mask_is_class_plus_one_above_threshold():
    ds = scenes("val", items=(1, 1), scale=(1.0, 1.6), canvas_size=48)
    images, labels = load_fashion_mnist()
    for index in range(8):
        (p,) = ds.layout(index)
        matrix = _resize_matrix(p["size"])
        value = matrix @ (images[p["item"]].astype(np.float32) / 255) @ matrix.T
        expected = np.zeros((48, 48), dtype=np.int64)
        expected[p["top"] : p["top"] + p["size"], p["left"] : p["left"] + p["size"]] = np.where(
            value > ds.threshold, labels[p["item"]] + 1, 0
        )
        assert torch.equal(ds[index]["mask"], torch.from_numpy(expected))
        assert p["cls"] == labels[p["item"]]


def test_resize_matrix_is_bilinear():
    m = _resize_matrix(28)
    assert np.allclose(m, np.eye(28))  # identity at scale 1
    m = _resize_matrix(56)  # 2x upsampling: rows sum to 1, interior weights 0.25 / 0.75
    assert np.allclose(m.sum(1), 1) and np.allclose(m[1, :2], [0.75, 0.25]) and np.allclose(m[2, :2], [0.25, 0.75])


def test_deterministic_independent_of_order_instance_and_pickling():
    a, b = scenes(num_scenes=20), scenes(num_scenes=20)
    forward = [a[i] for i in range(20)]
    backward = [b[i] for i in reversed(range(20))][::-1]
    clone = pickle.loads(pickle.dumps(a))  # what a spawned DataLoader worker receives
    assert clone._images is not None
    for x, y, z in zip(forward, backward, [clone[i] for i in range(20)], strict=True):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])
        assert torch.equal(x["image"], z["image"]) and torch.equal(x["mask"], z["mask"])
    # a longer dataset starts with the same scenes
    assert torch.equal(scenes(num_scenes=500)[7]["image"], forward[7]["image"])


def test_seed_split_and_variant_change_scenes():
    base = scenes()[0]["image"]
    assert not torch.equal(base, scenes(seed=1)[0]["image"])
    assert not torch.equal(base, scenes("val")[0]["image"])
    assert not torch.equal(base, scenes(variant="context")[0]["image"])
    assert not torch.equal(base, scenes(variant="consensus")[0]["image"])


def test_embedded_pools_are_disjoint():
    train, val = scenes("train", num_scenes=300), scenes("val", num_scenes=300)
    assert train.pool.tolist() == list(range(VAL_START)) and val.pool.tolist() == list(range(VAL_START, 10000))
    used_train = {p["item"] for i in range(300) for p in train.layout(i)}
    used_val = {p["item"] for i in range(300) for p in val.layout(i)}
    assert used_train <= set(range(VAL_START)) and used_val <= set(range(VAL_START, 10000))
    assert len(used_train) > 500 and len(used_val) > 500


def test_full_dataset_root_used_for_training_scenes(tmp_path):
    rng = np.random.default_rng(0)
    images = np.zeros((30, 28, 28), dtype=np.uint8)
    images[:, 4:24, 6:22] = rng.integers(100, 256, size=(30, 20, 16))
    labels = np.arange(30) % 10
    write_idx(tmp_path, "train", images, labels)
    train = build_dataset("fashion_scenes", split="train", num_scenes=16, fashion_root=str(tmp_path))
    assert len(train.pool) == 30 and str(tmp_path) in train.source
    for i in range(16):
        for p in train.layout(i):
            assert p["cls"] == labels[p["item"]]
        assert int(train[i]["mask"].max()) <= 10
    # root= is accepted as the full-data folder as well; val scenes always use the shipped split
    assert torch.equal(build_dataset("fashion_scenes", root=str(tmp_path), split="train", num_scenes=16)[3]["mask"],
                       train[3]["mask"])  # fmt: skip
    val = build_dataset("fashion_scenes", split="val", num_scenes=4, fashion_root=str(tmp_path))
    assert val.pool[0] == VAL_START
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        FashionScenes("train", num_scenes=4, fashion_root=str(tmp_path / "missing"))


def test_corrupt_idx_file_names_file(tmp_path):
    write_idx(tmp_path, "train", np.zeros((2, 28, 28)), np.zeros(2))
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01" + bytes(20))  # labels magic in the images file
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz is not an IDX file"):
        load_fashion_mnist("train", str(tmp_path))


def test_context_variant_labels_every_item_with_the_marked_class():
    ds = scenes("val", variant="context", num_scenes=40)
    images, labels = load_fashion_mnist()
    for index in range(40):
        layout = ds.layout(index)
        marked = [p for p in layout if p["marked"]]
        assert len(marked) == 1 and layout[-1]["marked"]  # exactly one, pasted last (never covered)
        others = [p for p in layout if not p["marked"]]
        assert all(p["cls"] != marked[0]["cls"] for p in others)  # local appearance never tells the label
        item = ds[index]
        assert set(item["mask"].unique().tolist()) <= {0, marked[0]["cls"] + 1}
        image = item["image"].float()
        saturation = image.max(0).values - image.min(0).values
        p = marked[0]
        window = (slice(p["top"], p["top"] + p["size"]), slice(p["left"], p["left"] + p["size"]))
        matrix = _resize_matrix(p["size"])
        value = matrix @ (images[p["item"]] / 255.0) @ matrix.T
        on, opaque = value > 0.5, value > ds.threshold
        assert saturation[window][torch.from_numpy(on)].max() < 30  # the marked item is grey-white
        for q in others:
            qm = _resize_matrix(q["size"])
            q_on = np.zeros((64, 64), dtype=bool)
            q_on[q["top"] : q["top"] + q["size"], q["left"] : q["left"] + q["size"]] = (
                qm @ (images[q["item"]] / 255.0) @ qm.T
            ) > 0.5
            q_on[window][opaque] = False  # covered by the marked item
            if q_on.sum() > 20:
                assert saturation[torch.from_numpy(q_on)].float().median() > 40  # other items are colourful
                assert (item["mask"][torch.from_numpy(q_on)] == marked[0]["cls"] + 1).all()


def test_consensus_variant_shares_one_class_per_scene_with_distinct_instances():
    ds = scenes("val", variant="consensus", num_scenes=40, items=(3, 4))
    scene_classes = set()
    for index in range(40):
        layout = ds.layout(index)
        classes = {p["cls"] for p in layout}
        assert len(classes) == 1 and not any(p["marked"] for p in layout)
        assert all(VAL_START <= p["item"] for p in layout)  # validation pool only
        scene_classes |= classes
        item = ds[index]
        assert set(item["mask"].unique().tolist()) == {0, layout[0]["cls"] + 1}  # each item: its own (shared) class
    assert len(scene_classes) >= 8  # the scene class is drawn uniformly, not fixed
    instances = [len({p["item"] for p in ds.layout(i)}) for i in range(40)]
    assert np.mean(instances) > 2.9  # different items of the class, not one item repeated


def test_plain_variant_has_several_classes_and_colourful_items():
    ds = scenes("val", num_scenes=50, items=(3, 3))
    classes_per_scene = [len({p["cls"] for p in ds.layout(i)}) for i in range(50)]
    assert max(classes_per_scene) == 3 and np.mean(classes_per_scene) > 2
    labels_seen = set()
    for i in range(50):
        labels_seen |= set(ds[i]["mask"].unique().tolist())
    assert labels_seen == set(range(11))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"canvas_size": 40}, "canvas_size must be an int >= 42"),
        ({"variant": "global"}, "variant must be one of"),
        ({"items": (3, 2)}, "items must be"),
        ({"num_scenes": 0}, "num_scenes must be a positive int"),
        ({"threshold": 1.5}, "threshold"),
        ({"seed": -1}, "seed must be a non-negative int"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scenes(**kwargs)
    with pytest.raises(ValueError, match="split must be one of"):
        scenes("test")


def test_preview_grid_and_colorize():
    from hamburger.recipes.seg.data.preview import colorize, scene_grid

    ds = scenes("val", num_scenes=3)
    picture = scene_grid(ds, range(3), zoom=2, gap=4)
    assert picture.size == (2 * (3 * 64 + 2 * 4), 2 * (2 * 64 + 4))
    mask = torch.tensor([[0, 3], [255, 10]])
    colours = colorize(mask, ds.palette)
    assert colours.dtype == np.uint8 and colours.shape == (2, 2, 3)
    assert colours[0, 1].tolist() == ds.palette[3].tolist() and colours[1, 0].tolist() == [255, 255, 255]
