"""Using a trained GAN checkpoint: rebuild its EMA generator, draw sample grids, score it.

:func:`load_generator` reads a checkpoint of ``hamburger gan fit`` with ``torch.load(weights_only=True)``,
vets its hyper-parameters (plain data; a model import path only when the caller names it) and returns the EMA
generator in eval mode. :func:`sample` writes a grid (one row per class), :func:`evaluate` scores the generator
with :func:`hamburger.recipes.gan.metrics.score_generator` against the real images of the checkpoint's data and
writes the scores as JSON next to the checkpoint (or to ``output``), atomically.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...training.cli import json_safe
from ...training.hparams import read_checkpoint
from ...utils import atomic_write_text, check_int, check_positive_int
from .grid import sample_grid, write_png
from .module import build_gan, checkpoint_hparams

__all__ = ["LoadedGenerator", "evaluate", "load_generator", "sample"]

log = logging.getLogger(__name__)


@dataclass
class LoadedGenerator:
    """The EMA generator of a checkpoint and what the checkpoint says about it."""

    generator: Any  # an nn.Module with z_dim, num_classes, image_size, out_channels
    hparams: dict[str, Any]
    data_hparams: dict[str, Any]
    class_names: list[str] | None
    step: int
    path: str

    @property
    def num_classes(self) -> int:
        return int(self.generator.num_classes)

    @property
    def z_dim(self) -> int:
        return int(self.generator.z_dim)

    @torch.no_grad()
    def __call__(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        device = next(iter(self.generator.parameters()), torch.empty(0)).device
        return self.generator(z.to(device), y.to(device))


def load_generator(ckpt_path: str | os.PathLike, *, model: str | None = None, device: str = "cpu") -> LoadedGenerator:
    """The EMA generator of a ``hamburger gan fit`` checkpoint (eval mode, on ``device``).

    Args:
        ckpt_path: the checkpoint file.
        model: the model import path, when the checkpoint names one and you trust it.
        device: where to put the generator.
    """
    path = os.fspath(ckpt_path)
    ckpt = read_checkpoint(path)
    hp = checkpoint_hparams(ckpt.get("hyper_parameters") or {}, source=path, model=model)
    generator, _ = build_gan(hp["model"], hp.get("model_kwargs"))
    prefix = "generator_ema."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise ValueError(f"--ckpt_path {path} holds no EMA generator (no {prefix}* weights): not a GAN checkpoint")
    try:
        generator.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"--ckpt_path {path}: its EMA generator does not fit model {hp['model']!r} "
                         f"({str(err).splitlines()[0]})") from err  # fmt: skip
    generator.eval().requires_grad_(False).to(device)
    meta = ckpt.get("gan_meta") or {}
    data_hp = dict(ckpt.get("datamodule_hyper_parameters") or {})
    return LoadedGenerator(generator, hp, data_hp, meta.get("class_names"), int(ckpt.get("global_step", 0)), path)


def sample(
    ckpt_path: str | os.PathLike,
    *,
    output: str | os.PathLike,
    classes: Sequence[int] | None = None,
    num: int = 8,
    seed: int = 0,
    model: str | None = None,
    device: str = "cpu",
) -> Path:
    """Write a grid of the checkpoint's EMA generator to ``output`` (PNG): one row per class of ``classes``
    (default: every class, at most 10 rows), ``num`` samples per row (the same noise in every row).

    Returns the path written. Unknown class ids are a ``ValueError``; an existing ``output`` is replaced
    atomically (never a checkpoint or the input).
    """
    check_positive_int("num", num)
    check_int("seed", seed)
    out = Path(output)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--output {out}: expected a .png file name")
    if out.is_dir():
        raise IsADirectoryError(f"--output {out} is a folder, expected a .png file name")
    if out.resolve() == Path(ckpt_path).resolve():
        raise ValueError(f"--output {out} is the checkpoint itself")
    loaded = load_generator(ckpt_path, model=model, device=device)
    rows = list(range(min(loaded.num_classes, 10))) if classes is None else [int(c) for c in classes]
    grid = sample_grid(loaded, classes=rows, columns=num, z_dim=loaded.z_dim, num_classes=loaded.num_classes,
                       seed=seed, device=device)  # fmt: skip
    write_png(grid, out)
    return out


def evaluate(
    ckpt_path: str | os.PathLike,
    *,
    num_samples: int = 10000,
    features: str = "fmnist",
    output: str | os.PathLike | None = None,
    seed: int = 0,
    batch_size: int = 250,
    data_root: str | None = None,
    num_real: int | None = None,
    model: str | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score the checkpoint's EMA generator (FID, KID, IS with ``features``) and write the scores as JSON.

    The real images are the training data of the checkpoint (``data_root`` replaces its folder, e.g. after
    moving it); ``num_real`` limits them. The JSON goes to ``output`` or ``<checkpoint stem>_scores.json`` next
    to the checkpoint. Returns the scores with ``"json"``: the file written.
    """
    check_positive_int("num_samples", num_samples)
    check_positive_int("batch_size", batch_size)
    path = Path(output) if output is not None else Path(ckpt_path).with_name(Path(ckpt_path).stem + "_scores.json")
    if path.is_dir():
        raise IsADirectoryError(f"--output {path} is a folder, expected a .json file name")
    if path.resolve() == Path(ckpt_path).resolve():
        raise ValueError(f"--output {path} is the checkpoint itself")
    from .data import GANDataModule

    loaded = load_generator(ckpt_path, model=model, device=device)
    data_hp = {k: v for k, v in loaded.data_hparams.items() if k in ("dataset", "root", "image_size", "flip")}
    data_hp["flip"] = False
    if data_root is not None:
        data_hp["root"] = data_root
    dm = GANDataModule(**data_hp)
    size, channels = int(loaded.generator.image_size), int(loaded.generator.out_channels)
    if (dm.image_size, dm.channels) != (size, channels):
        raise ValueError(f"the data has {dm.channels}-channel {dm.image_size}x{dm.image_size} images but the model "
                         f"makes {channels}-channel {size}x{size} images")  # fmt: skip
    real = dm.real_images(num_real)
    from .features import load_feature_network
    from .metrics import score_generator

    network = load_feature_network(features, device=device)
    scores = score_generator(loaded, real, features=network, num_samples=num_samples, batch_size=batch_size,
                             seed=seed)  # fmt: skip
    result = {"ckpt_path": os.fspath(ckpt_path), "step": loaded.step, "model": loaded.hparams["model"],
              "seed": seed, **scores}  # fmt: skip
    atomic_write_text(path, json.dumps(json_safe(result), indent=2) + "\n")
    result["json"] = str(path)
    return result
