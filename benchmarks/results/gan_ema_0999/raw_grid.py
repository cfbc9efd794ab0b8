"""Grids of a GAN checkpoint's raw generator and its EMA generator side by side (same noise; one row per class).

    python benchmarks/results/gan_ema_0999/raw_grid.py CKPT OUT_PREFIX

writes ``OUT_PREFIX_generator.png`` and ``OUT_PREFIX_generator_ema.png`` and prints each generator's output mean,
std and the spread of the images over the classes (0 = the labels change nothing)."""

from __future__ import annotations

import sys

import torch
from torchvision.utils import save_image

from hamburger.recipes.gan.module import build_gan
from hamburger.training.hparams import read_checkpoint


def main(ckpt_path: str, prefix: str) -> None:
    ckpt = read_checkpoint(ckpt_path)
    hp = ckpt["hyper_parameters"]
    for name in ("generator", "generator_ema"):
        g, _ = build_gan(hp["model"], hp.get("model_kwargs"))
        g.load_state_dict({k[len(name) + 1 :]: v for k, v in ckpt["state_dict"].items() if k.startswith(name + ".")})
        g.eval()
        z = torch.randn(8, g.z_dim, generator=torch.Generator().manual_seed(0)).repeat(g.num_classes, 1)
        y = torch.arange(g.num_classes).repeat_interleave(8)
        with torch.no_grad():
            x = g(z, y)
        save_image((x + 1) / 2, f"{prefix}_{name}.png", nrow=8, padding=2)
        spread = x.view(g.num_classes, 8, -1).std(0).mean().item()
        print(f"{name}: mean {x.mean().item():.3f} std {x.std().item():.3f} spread over classes {spread:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
