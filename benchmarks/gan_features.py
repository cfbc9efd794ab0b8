"""Sanity table of the GAN scores on real Fashion-MNIST for each feature network (docs/gan.md, "Evaluation").

Set A: the 2,000 images the fmnist classifier never saw (its held-out split); set B: 2,000 others (from its
training split); noise: uniform random uint8 images; blurred: set B with a Gaussian blur (sigma 1 px). All at
32x32 (28x28 padded by 2 px, as the GAN sees them). Prints a Markdown table: FID, KID, IS, precision/recall of B,
noise and blurred against A, and the feature extraction time per 1,000 images.

    OMP_NUM_THREADS=1 python benchmarks/gan_features.py --features fmnist mobilenet_v2:64 --num 2000
    OMP_NUM_THREADS=1 python benchmarks/gan_features.py --features mobilenet_v2 --num 500
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from hamburger.recipes.gan.features import FeatureNetwork, load_feature_network
from hamburger.recipes.gan.metrics import score_features
from hamburger.recipes.gan.train_features import fashion_tensors, heldout_split


def blur(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian blur (5x5 separable kernel, reflect padding) of uint8 images."""
    x = torch.arange(5, dtype=torch.float32) - 2
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    out = images.float()
    out = F.conv2d(F.pad(out, (2, 2, 0, 0), mode="reflect"), kernel.view(1, 1, 1, 5))
    out = F.conv2d(F.pad(out, (0, 0, 2, 2), mode="reflect"), kernel.view(1, 1, 5, 1))
    return out.round().clamp(0, 255).to(torch.uint8)


def extract(net: FeatureNetwork, images: torch.Tensor, batch_size: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    feats, logits = [], []
    for start in range(0, len(images), batch_size):
        f, lg = net.features_and_logits(images[start : start + batch_size])
        feats.append(f.double())
        logits.append(lg.double())
    return torch.cat(feats), torch.cat(logits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", nargs="+", default=["fmnist", "mobilenet_v2:64"])
    parser.add_argument("--num", type=int, default=2000, help="images per set (at most 2000)")
    args = parser.parse_args()
    images, _ = fashion_tensors()
    images = F.pad(images, (2, 2, 2, 2))
    train_idx, heldout_idx = heldout_split(len(images))
    n = min(args.num, len(heldout_idx))
    sets = {
        "A": images[heldout_idx[:n]],
        "B (real)": images[train_idx[:n]],
        "uniform noise": torch.randint(0, 256, (n, 1, 32, 32), generator=torch.Generator().manual_seed(0)).to(
            torch.uint8
        ),
        "blurred B": blur(images[train_idx[:n]]),
    }
    print(f"| features | set vs A ({n} vs {n}) | FID | KID | IS | precision | recall | s / 1000 images |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in args.features:
        net = load_feature_network(spec)
        extracted, seconds = {}, 0.0
        for name, data in sets.items():
            start = time.perf_counter()
            extracted[name] = extract(net, data)
            seconds += time.perf_counter() - start
        per_1000 = seconds / (len(sets) * n) * 1000
        real_f, real_l = extracted["A"]
        for name in list(sets)[1:]:
            fake_f, fake_l = extracted[name]
            s = score_features(real_f, fake_f, real_logits=real_l, fake_logits=fake_l, kid_subset_size=1000)
            print(
                f"| {net.name} | {name} | {s['fid']:.2f} | {s['kid_mean']:.4f} +- {s['kid_std']:.4f} "
                f"| {s['is_mean']:.2f} +- {s['is_std']:.2f} | {s['precision']:.3f} | {s['recall']:.3f} "
                f"| {per_1000:.1f} |",
                flush=True,
            )
        print(f"| {net.name} | A itself: IS {s['is_real_mean']:.2f} +- {s['is_real_std']:.2f} | | | | | | |")


if __name__ == "__main__":
    main()
