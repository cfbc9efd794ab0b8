"""Train the Fashion-MNIST classifier behind the ``"fmnist"`` GAN-evaluation features (deterministic).

    python -m hamburger.recipes.gan.train_features --out src/hamburger/recipes/gan/weights/fmnist_features.safetensors

Data: the 10,000 t10k images shipped in the package; a seeded permutation holds out 2,000 of them
(:func:`heldout_split`) and the classifier trains on the other 8,000 (28x28 zero-padded to 32x32, random
translations of up to 2 px). The held-out accuracy, the command, the training time and the settings are stored in
the safetensors metadata (read them with ``safetensors.safe_open(path, "pt").metadata()``). One CPU thread;
a few minutes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hamburger.utils import atomic_write

from .features import FMNIST_INPUT_SIZE, FashionClassifier

logger = logging.getLogger(__name__)

DEFAULT_SEED = 0
NUM_HELDOUT = 2000


def heldout_split(num_items: int, *, num_heldout: int = NUM_HELDOUT, seed: int = DEFAULT_SEED) -> tuple[Tensor, Tensor]:
    """Indices ``(train, heldout)`` of a seeded permutation of ``range(num_items)`` (the last ones held out)."""
    order = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed))
    return order[: num_items - num_heldout], order[num_items - num_heldout :]


def fashion_tensors() -> tuple[Tensor, Tensor]:
    """The shipped t10k split as ``uint8 (N, 1, 28, 28)`` images and ``int64 (N,)`` labels."""
    from hamburger.recipes.seg.data.fashion_mnist import load_fashion_mnist

    images, labels = load_fashion_mnist("t10k")
    return torch.from_numpy(np.array(images)).unsqueeze(1), torch.from_numpy(np.array(labels)).long()


def _padded(images: Tensor) -> Tensor:
    """``uint8 (N, 1, 28, 28)`` -> float ``(N, 1, 32, 32)`` in ``[0, 1]`` (zero padding of 2 px)."""
    pad = (FMNIST_INPUT_SIZE - images.shape[-1]) // 2
    return F.pad(images.float() / 255.0, (pad, pad, pad, pad))


def _translate(x: Tensor, generator: torch.Generator, max_shift: int = 2) -> Tensor:
    """Random translation of each image by up to ``max_shift`` px (zero fill)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    shifts = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(shifts.tolist())])


@torch.no_grad()
def accuracy(model: FashionClassifier, images: Tensor, labels: Tensor, *, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` on ``uint8 (N, 1, 28, 28)`` images."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(_padded(images[start : start + batch_size]))
        correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    return correct / len(images)


def train(
    *, epochs: int = 10, batch_size: int = 128, lr: float = 3e-3, seed: int = DEFAULT_SEED, width: int = 32
) -> tuple[FashionClassifier, dict[str, str]]:
    """Train the classifier on the 8,000 non-held-out images; returns it and its metadata (held-out accuracy...)."""
    start_time = time.perf_counter()
    images, labels = fashion_tensors()
    train_idx, heldout_idx = heldout_split(len(images), seed=seed)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = FashionClassifier(width=width)
    steps_per_epoch = (len(train_idx) + batch_size - 1) // batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    train_x, train_y = _padded(images[train_idx]), labels[train_idx]
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_idx), generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            batch = order[step * batch_size : (step + 1) * batch_size]
            x = _translate(train_x[batch], generator)
            loss = F.cross_entropy(model(x), train_y[batch], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        logger.info("epoch %d/%d: mean loss %.4f", epoch + 1, epochs, total / steps_per_epoch)
    heldout_accuracy = accuracy(model, images[heldout_idx], labels[heldout_idx])
    metadata = {
        "architecture": "hamburger.recipes.gan.features.FashionClassifier",
        "width": str(width),
        "num_classes": "10",
        "num_features": str(model.num_features),
        "input": "1x32x32 grey in [0, 1]; Fashion-MNIST 28x28 zero-padded by 2 px",
        "data": f"Fashion-MNIST t10k (shipped): {len(train_idx)} train, {len(heldout_idx)} held out (seed {seed})",
        "heldout_accuracy": f"{heldout_accuracy:.4f}",
        "num_heldout": str(len(heldout_idx)),
        "seed": str(seed),
        "epochs": str(epochs),
        "batch_size": str(batch_size),
        "lr": str(lr),
        "num_parameters": str(sum(p.numel() for p in model.parameters())),
        "train_seconds": f"{time.perf_counter() - start_time:.1f}",
        "torch": torch.__version__,
    }
    return model, metadata


def save(model: FashionClassifier, metadata: dict[str, str], path: str) -> None:
    """Write the weights and metadata as safetensors, atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hamburger.recipes.gan.train_features", description=__doc__)
    parser.add_argument("--out", required=True, help="output .safetensors file")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 keeps the result bit-reproducible)")
    args = parser.parse_args(argv)
    if not args.out.endswith(".safetensors"):
        parser.error(f"--out must end with .safetensors, got {args.out!r}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    model, metadata = train(epochs=args.epochs, seed=args.seed)
    command = "python -m hamburger.recipes.gan.train_features " + " ".join(argv if argv is not None else sys.argv[1:])
    metadata["command"] = command
    metadata["threads"] = str(args.threads)
    save(model, metadata, args.out)
    print(json.dumps(metadata, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
