"""GAN scores on a feature network: FID, KID, Inception Score (torchmetrics) and k-NN precision/recall.

With features :math:`\\phi` of real images :math:`x_r` and generated ones :math:`x_g`:

- FID (Heusel et al. 2017):
  :math:`\\|\\mu_r - \\mu_g\\|^2 + \\mathrm{Tr}(\\Sigma_r + \\Sigma_g - 2(\\Sigma_r\\Sigma_g)^{1/2})`
  of the features' Gaussian fits (``torchmetrics.image.FrechetInceptionDistance``, float64).
- KID (Binkowski et al. 2018): the unbiased MMD with the cubic kernel
  :math:`k(a, b) = (a^\\top b / d + 1)^3`, mean and std over random subsets (``KernelInceptionDistance``).
- IS (Salimans et al. 2016): :math:`\\exp\\, \\mathbb{E}_x \\mathrm{KL}(p(y|x) \\,\\|\\, p(y))` from the feature
  network's logits, mean and std over splits (``InceptionScore``); also reported for the real set (``is_real_*``).
- precision / recall (Kynkaanniemi et al. 2019): the fraction of fakes inside the real manifold (union of balls
  around each real feature with the distance to its k-th nearest real neighbour as radius, k = 3) and of reals
  inside the fake manifold.

Features are extracted once per image (one pass of the feature network gives features and logits) and then fed
to the torchmetrics metrics through a pass-through ``feature=`` module, in float64. Random subsets and splits
use ``seed``, so a score is reproducible. Every result names the feature network and the sample counts: scores
on different feature networks are not comparable (only ``"inception"`` gives the published FID).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from hamburger.utils import check_int, check_positive_int

from .features import FeatureNetwork, load_feature_network, to_uint8

__all__ = ["format_scores", "manifold_precision_recall", "score_features", "score_generator", "score_sets"]


class _Precomputed(nn.Module):
    """Identity ``feature=`` module for torchmetrics: the inputs are features already, returned as float64."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        return x.double()


def _batches(images: Tensor | Iterable[Any], batch_size: int) -> Iterable[Tensor]:
    """``uint8`` batches ``(B, C, H, W)`` from a tensor or an iterable of batches, ``(image, label)`` pairs or dicts."""
    if isinstance(images, Tensor):
        if images.dim() == 3:
            images = images.unsqueeze(1)
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size]
        return
    for item in images:
        if isinstance(item, dict):
            item = item["image"]
        elif isinstance(item, (tuple, list)):
            item = item[0]
        if not isinstance(item, Tensor):
            raise TypeError(f"real_images must yield uint8 Tensors (B, C, H, W), got {type(item).__name__}")
        yield item.unsqueeze(0) if item.dim() == 3 else item


def _extract(
    features: FeatureNetwork, images: Tensor | Iterable[Any], *, batch_size: int, argument: str
) -> tuple[Tensor, Tensor]:
    """Features and logits (float64, CPU) of all images."""
    feats, logits = [], []
    for batch in _batches(images, batch_size):
        if batch.dtype != torch.uint8:
            raise TypeError(f"{argument} must be uint8 images in [0, 255], got dtype {batch.dtype}")
        f, lg = features.features_and_logits(batch)
        feats.append(f.double().cpu())
        logits.append(lg.double().cpu())
    if not feats:
        raise ValueError(f"{argument} holds no images")
    return torch.cat(feats), torch.cat(logits)


def _kth_neighbour_radius(points: Tensor, k: int, chunk: int) -> Tensor:
    """Distance of each point to its k-th nearest other point of the same set."""
    radii = []
    for start in range(0, len(points), chunk):
        d = torch.cdist(points[start : start + chunk], points)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the 1st is the point itself (distance 0)
    return torch.cat(radii)


def _coverage(queries: Tensor, centres: Tensor, radii: Tensor, chunk: int) -> Tensor:
    """Fraction of ``queries`` within ``radii[j]`` of some ``centres[j]``."""
    inside = 0
    for start in range(0, len(queries), chunk):
        d = torch.cdist(queries[start : start + chunk], centres)
        inside += int((d <= radii.unsqueeze(0)).any(dim=1).sum())
    return torch.tensor(inside / len(queries), dtype=torch.float64)


def manifold_precision_recall(
    real_features: Tensor, fake_features: Tensor, *, k: int = 3, chunk: int = 1024
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of ``fake_features`` against ``real_features``.

    precision = share of fakes within some real ball (radius: that real point's k-th nearest real neighbour);
    recall = share of reals within some fake ball. Distances are Euclidean (``torch.cdist``), in chunks.
    """
    check_positive_int("k", k)
    for name, value in (("real_features", real_features), ("fake_features", fake_features)):
        if value.dim() != 2 or len(value) <= k:
            raise ValueError(f"{name} must be (N, D) with N > k={k}, got shape {tuple(value.shape)}")
    real, fake = real_features.double(), fake_features.double()
    precision = _coverage(fake, real, _kth_neighbour_radius(real, k, chunk), chunk)
    recall = _coverage(real, fake, _kth_neighbour_radius(fake, k, chunk), chunk)
    return float(precision), float(recall)


def score_features(
    real_features: Tensor,
    fake_features: Tensor,
    *,
    real_logits: Tensor | None = None,
    fake_logits: Tensor | None = None,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    is_splits: int = 10,
    nearest_k: int | None = 3,
    seed: int = 0,
) -> dict[str, float]:
    """FID, KID, IS and precision/recall from features ``(N, D)`` (and logits ``(N, K)`` for the IS).

    ``kid_subset_size`` is capped at the smaller set's size; ``nearest_k=None`` skips precision/recall.
    """
    # the submodules, not torchmetrics.image: that one exports FID/KID/IS only when torch-fidelity is installed
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    check_positive_int("kid_subset_size", kid_subset_size)
    check_positive_int("kid_subsets", kid_subsets)
    check_positive_int("is_splits", is_splits)
    check_int("seed", seed)
    real, fake = real_features.double().cpu(), fake_features.double().cpu()
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if min(len(real), len(fake)) < 2:
        raise ValueError(f"FID needs at least 2 real and 2 fake images, got {len(real)} and {len(fake)}")
    passthrough = _Precomputed(real.shape[1])
    result: dict[str, float] = {}
    fid = FrechetInceptionDistance(feature=passthrough, reset_real_features=True)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    result["fid"] = float(fid.compute())
    subset = min(kid_subset_size, len(real), len(fake))
    with warnings.catch_warnings():  # "will save all extracted features in buffer": we hold them anyway
        warnings.filterwarnings("ignore", message=".*save all extracted features", category=UserWarning)
        kid = KernelInceptionDistance(feature=passthrough, subsets=kid_subsets, subset_size=subset)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    result["kid_mean"], result["kid_std"] = float(kid_mean), float(kid_std)
    for prefix, logits in (("is", fake_logits), ("is_real", real_logits)):
        if logits is None:
            continue
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.filterwarnings("ignore", message=".*save all extracted features", category=UserWarning)
            warnings.filterwarnings("ignore", message=r"std\(\): degrees of freedom", category=UserWarning)  # 1 split
            inception_score = InceptionScore(feature=_Precomputed(logits.shape[1]), splits=min(is_splits, len(logits)))
            inception_score.update(logits.double().cpu())
            torch.manual_seed(seed)
            is_mean, is_std = inception_score.compute()
        result[f"{prefix}_mean"], result[f"{prefix}_std"] = float(is_mean), float(is_std)
    if nearest_k is not None:
        result["precision"], result["recall"] = manifold_precision_recall(real, fake, k=nearest_k)
    return result


def _feature_network(features: FeatureNetwork | str) -> FeatureNetwork:
    if isinstance(features, FeatureNetwork):
        return features
    return load_feature_network(features)


def score_sets(
    real_images: Tensor | Iterable[Any],
    fake_images: Tensor | Iterable[Any],
    *,
    features: FeatureNetwork | str,
    batch_size: int = 250,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    is_splits: int = 10,
    nearest_k: int | None = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Scores of ``fake_images`` against ``real_images`` (both ``uint8 (N, C, H, W)`` tensors or iterables of batches).

    Args:
        features: a :class:`~hamburger.recipes.gan.features.FeatureNetwork` or a spec for
            :func:`~hamburger.recipes.gan.features.load_feature_network`.
        batch_size: images per feature-network call.
        kid_subset_size, kid_subsets: KID subsets (the size is capped at the smaller set).
        is_splits: Inception Score splits.
        nearest_k: k of precision/recall (``None``: skip them).
        seed: seed of the KID subsets and IS splits.

    Returns:
        ``{"fid", "kid_mean", "kid_std", "is_mean", "is_std", "is_real_mean", "is_real_std", "precision",
        "recall", "features": name, "num_real", "num_fake"}``.
    """
    check_positive_int("batch_size", batch_size)
    network = _feature_network(features)
    real_f, real_l = _extract(network, real_images, batch_size=batch_size, argument="real_images")
    fake_f, fake_l = _extract(network, fake_images, batch_size=batch_size, argument="fake_images")
    scores: dict[str, Any] = score_features(
        real_f,
        fake_f,
        real_logits=real_l,
        fake_logits=fake_l,
        kid_subset_size=kid_subset_size,
        kid_subsets=kid_subsets,
        is_splits=is_splits,
        nearest_k=nearest_k,
        seed=seed,
    )
    scores.update(features=network.name, num_real=len(real_f), num_fake=len(fake_f))
    return scores


class _GeneratedImages:
    """Iterable of ``uint8`` batches from ``generate(z, y)`` with seeded z ~ N(0, I) and uniform labels y."""

    def __init__(
        self,
        generate: Callable[[Tensor, Tensor], Tensor],
        *,
        num_samples: int,
        batch_size: int,
        z_dim: int,
        num_classes: int,
        seed: int,
        device: torch.device,
    ) -> None:
        self.generate, self.num_samples, self.batch_size = generate, num_samples, batch_size
        self.z_dim, self.num_classes, self.seed, self.device = z_dim, num_classes, seed, device

    def __iter__(self) -> Iterator[Tensor]:
        generator = torch.Generator().manual_seed(self.seed)
        for start in range(0, self.num_samples, self.batch_size):
            n = min(self.batch_size, self.num_samples - start)
            z = torch.randn(n, self.z_dim, generator=generator)
            y = torch.randint(0, self.num_classes, (n,), generator=generator)
            with torch.no_grad():
                images = self.generate(z.to(self.device), y.to(self.device))
            if not isinstance(images, Tensor) or images.dim() != 4 or len(images) != n:
                shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
                raise ValueError(f"generate(z, y) must return images (B, C, H, W) in [-1, 1] for B={n}, got {shape}")
            yield to_uint8(images)


def score_generator(
    generate: Callable[[Tensor, Tensor], Tensor],
    real_images: Tensor | Iterable[Any],
    *,
    features: FeatureNetwork | str,
    num_samples: int,
    batch_size: int = 250,
    seed: int = 0,
    kid_subset_size: int = 1000,
    z_dim: int | None = None,
    num_classes: int | None = None,
    nearest_k: int | None = 3,
) -> dict[str, Any]:
    """Scores of ``num_samples`` images of ``generate(z, y)`` (in ``[-1, 1]``, e.g. an EMA Generator) vs real ones.

    ``z ~ N(0, I)`` and labels uniform over ``[0, num_classes)`` are drawn with ``seed``; ``z_dim`` and
    ``num_classes`` default to the generator's attributes of those names. ``real_images``: ``uint8 (N, C, H, W)``
    tensor or an iterable of batches / ``(images, labels)`` pairs. The generator runs under ``torch.no_grad``
    and, if it is a module, in eval mode (its mode is restored afterwards). Returns what :func:`score_sets` returns.
    """
    check_positive_int("num_samples", num_samples)
    check_positive_int("batch_size", batch_size)
    z_dim = getattr(generate, "z_dim", None) if z_dim is None else z_dim
    num_classes = getattr(generate, "num_classes", None) if num_classes is None else num_classes
    if z_dim is None or num_classes is None:
        raise ValueError("z_dim and num_classes are needed: pass them or give generate z_dim/num_classes attributes")
    check_positive_int("z_dim", z_dim)
    check_positive_int("num_classes", num_classes)
    network = _feature_network(features)
    device = torch.device("cpu")
    if isinstance(generate, nn.Module):
        device = next(iter(generate.parameters()), torch.empty(0)).device
    fakes = _GeneratedImages(
        generate,
        num_samples=num_samples,
        batch_size=batch_size,
        z_dim=z_dim,
        num_classes=num_classes,
        seed=seed,
        device=device,
    )
    was_training = isinstance(generate, nn.Module) and generate.training
    if isinstance(generate, nn.Module):
        generate.eval()  # batch-norm statistics fixed while sampling; the mode is restored afterwards
    try:
        return score_sets(
            real_images, fakes, features=network, batch_size=batch_size, kid_subset_size=kid_subset_size,
            nearest_k=nearest_k, seed=seed,
        )  # fmt: skip
    finally:
        if isinstance(generate, nn.Module):
            generate.train(was_training)


def format_scores(result: dict[str, Any]) -> str:
    """One-line summary: ``FID 12.34  KID 0.0123 +- 0.0010  IS 5.67 +- 0.12  P 0.71 R 0.65  (features NAME, ...)``."""
    parts = []
    if "fid" in result:
        parts.append(f"FID {result['fid']:.2f}")
    if "kid_mean" in result:
        parts.append(f"KID {result['kid_mean']:.4f} +- {result.get('kid_std', math.nan):.4f}")
    if "is_mean" in result:
        parts.append(f"IS {result['is_mean']:.2f} +- {result.get('is_std', math.nan):.2f}")
    if "precision" in result and "recall" in result:
        parts.append(f"P {result['precision']:.3f} R {result['recall']:.3f}")
    tail = (
        f"(features {result.get('features', '?')}, {result.get('num_fake', '?')} fake vs "
        f"{result.get('num_real', '?')} real)"
    )
    return "  ".join([*parts, tail])
