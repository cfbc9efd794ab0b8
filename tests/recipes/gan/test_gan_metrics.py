"""GAN scores: FID/KID/IS through torchmetrics on precomputed features, k-NN precision/recall, format_scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hamburger.recipes.gan.metrics import format_scores, manifold_precision_recall, score_features


def _mixing(d: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(123)
    return torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)  # correlated, O(1) per dimension


def _features(n: int = 600, d: int = 16, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ _mixing(d)


def test_fid_of_a_set_against_itself_is_zero():
    x = _features()
    scores = score_features(x, x, nearest_k=None, kid_subsets=2)
    scale = float(torch.cov(x.T).trace())  # FID of the set vs. a point mass at its mean
    assert abs(scores["fid"]) < 1e-9 * scale


@pytest.mark.parametrize("shift", [0.5, 1.0, 2.0])
def test_fid_of_a_translated_set_is_the_squared_shift(shift):
    x = _features()
    direction = torch.ones(x.shape[1], dtype=torch.float64)
    scores = score_features(x, x + shift * direction, nearest_k=None, kid_subsets=2)
    # same covariance, means apart by shift * 1: FID = ||mu_r - mu_g||^2 = shift^2 * d (float64 throughout)
    assert scores["fid"] == pytest.approx(shift**2 * x.shape[1], rel=1e-9)


def test_fid_and_kid_grow_with_noise():
    x = _features()
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(x.shape, generator=g, dtype=torch.float64)
    fids, kids = [], []
    for sigma in (0.0, 0.5, 1.0, 2.0):
        s = score_features(x, x + sigma * noise, nearest_k=None, kid_subset_size=200, kid_subsets=20)
        fids.append(s["fid"])
        kids.append(s["kid_mean"])
    assert fids[0] < 1e-6 < fids[1] < fids[2] < fids[3]
    assert kids == sorted(kids) and kids[3] > 0


def test_kid_of_identical_distributions_is_zero_and_of_shifted_sets_positive():
    x, y = _features(seed=1), _features(seed=2)  # two independent draws of one distribution
    same = score_features(x, y, nearest_k=None, kid_subset_size=300, kid_subsets=50)
    shifted = score_features(x, y + 1.0, nearest_k=None, kid_subset_size=300, kid_subsets=50)
    # unbiased MMD^2 of one distribution: mean ~0 up to the subset noise; a shift of 1 per dimension is far above
    assert abs(same["kid_mean"]) < 0.01 * shifted["kid_mean"]
    assert abs(same["kid_mean"]) < 3 * same["kid_std"]
    assert shifted["kid_mean"] > 10 * shifted["kid_std"]
    # the very same set: overlapping subsets make the cross term larger, so the estimate is slightly negative
    itself = score_features(x, x, nearest_k=None, kid_subset_size=300, kid_subsets=50)
    assert abs(itself["kid_mean"]) < 0.01 * shifted["kid_mean"]


def test_scores_are_reproducible_with_the_seed():
    x = _features()
    a = score_features(x, x + 0.3, seed=3, kid_subset_size=100, kid_subsets=10)
    b = score_features(x, x + 0.3, seed=3, kid_subset_size=100, kid_subsets=10)
    assert a == b


def _confident_logits(labels: torch.Tensor, num_classes: int = 10, margin: float = 60.0) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, num_classes).double() * margin


def test_inception_score_uniform_confident_is_num_classes_and_one_class_is_one():
    feats = _features(1000, 4)
    labels = torch.arange(1000) % 10
    uniform = score_features(
        feats,
        feats,
        kid_subsets=2,
        kid_subset_size=50,
        fake_logits=_confident_logits(labels),
        is_splits=1,
        nearest_k=None,
    )
    assert uniform["is_mean"] == pytest.approx(10.0, rel=1e-6)
    one = score_features(
        feats,
        feats,
        kid_subsets=2,
        kid_subset_size=50,
        fake_logits=_confident_logits(torch.zeros(1000).long()),
        nearest_k=None,
    )
    assert one["is_mean"] == pytest.approx(1.0, abs=1e-6)
    # 10 splits of 100 random items: still close to 10 (each split's label marginal is nearly uniform)
    split = score_features(
        feats, feats, kid_subsets=2, kid_subset_size=50, fake_logits=_confident_logits(labels), nearest_k=None
    )
    assert 9.3 < split["is_mean"] <= 10.0 and split["is_std"] > 0


def _brute_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def radii(points):
        out = []
        for i, p in enumerate(points):
            d = sorted(math.dist(p, q) for j, q in enumerate(points) if j != i)
            out.append(d[k - 1])
        return out

    def coverage(queries, centres, r):
        return sum(any(math.dist(q, c) <= rc for c, rc in zip(centres, r, strict=True)) for q in queries) / len(queries)

    return coverage(fake, real, radii(real)), coverage(real, fake, radii(fake))


@pytest.mark.parametrize("k, shift", [(3, 0.0), (3, 1.5), (1, 0.7), (5, 3.0)])
def test_precision_recall_matches_brute_force_knn(k, shift):
    g = torch.Generator().manual_seed(k)
    real = torch.randn(120, 5, generator=g, dtype=torch.float64)
    fake = torch.randn(90, 5, generator=g, dtype=torch.float64) * 1.3 + shift
    precision, recall = manifold_precision_recall(real, fake, k=k, chunk=37)  # chunks that do not divide N
    ref_p, ref_r = _brute_precision_recall(real.numpy(), fake.numpy(), k)
    assert (precision, recall) == (pytest.approx(ref_p, abs=1e-12), pytest.approx(ref_r, abs=1e-12))
    if shift == 3.0:
        assert precision < 0.1 and recall < 0.5  # far apart: few fakes in the real manifold


def test_precision_recall_of_a_set_against_itself_is_one():
    x = _features(200, 8)
    assert manifold_precision_recall(x, x, k=3) == (1.0, 1.0)


def test_precision_recall_rejects_too_few_points():
    with pytest.raises(ValueError, match="N > k=3"):
        manifold_precision_recall(torch.zeros(3, 2), torch.zeros(10, 2))


def test_format_scores_one_line():
    result = {
        "fid": 12.3449, "kid_mean": 0.01234, "kid_std": 0.00101, "is_mean": 5.666, "is_std": 0.1234,
        "precision": 0.7071, "recall": 0.65, "features": "fmnist-classifier", "num_real": 10000, "num_fake": 5000,
    }  # fmt: skip
    assert format_scores(result) == (
        "FID 12.34  KID 0.0123 +- 0.0010  IS 5.67 +- 0.12  P 0.707 R 0.650  "
        "(features fmnist-classifier, 5000 fake vs 10000 real)"
    )
    assert "\n" not in format_scores({"fid": 1.0, "features": "x", "num_real": 2, "num_fake": 2})


def test_score_features_argument_errors():
    x = _features(10, 4)
    with pytest.raises(ValueError, match="same D"):
        score_features(x, x[:, :3])
    with pytest.raises(ValueError, match="kid_subset_size"):
        score_features(x, x, kid_subset_size=0)
    with pytest.raises(ValueError, match="at least 2"):
        score_features(x[:1], x)


def test_kid_subset_size_is_capped_at_the_smaller_set():
    x = _features(50, 4)
    scores = score_features(x, x + 1, kid_subset_size=1000, kid_subsets=5, nearest_k=None)
    assert scores["kid_mean"] > 0 and all(math.isfinite(v) for v in scores.values())


def test_all_pairs_helper_sanity():
    # the brute-force reference itself: on a line 0,1,2,3 the 1st neighbour radius is 1 everywhere
    pts = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert _brute_precision_recall(pts, pts + 1.5, 1) == (0.75, 0.75)
    assert manifold_precision_recall(torch.tensor(pts), torch.tensor(pts + 1.5), k=1) == (0.75, 0.75)
