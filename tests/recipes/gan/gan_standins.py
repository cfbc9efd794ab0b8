"""Tiny stand-in GANs for the recipe tests (``--model.model gan_standins:tiny_gan``), honouring the interface of
``hamburger.models.gan``: ``Generator(z, y) -> (B, C, S, S)`` in [-1, 1] with ``z_dim``, ``num_classes``,
``image_size``, ``out_channels``; ``Discriminator(x, y) -> (B,)``."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
#: environment of a subprocess running this tree's ``hamburger`` with the stand-ins importable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE.parents[2] / "src"), str(HERE)])}


class TinyGenerator(nn.Module):
    def __init__(self, *, z_dim: int = 8, num_classes: int = 10, image_size: int = 32, out_channels: int = 1,
                 width: int = 8) -> None:  # fmt: skip
        super().__init__()
        self.z_dim, self.num_classes, self.image_size, self.out_channels = z_dim, num_classes, image_size, out_channels
        self.embed = nn.Embedding(num_classes, z_dim)
        self.fc = nn.Linear(z_dim, width * 8 * 8)
        self.bn = nn.BatchNorm2d(width)  # running statistics: buffers the EMA copies
        self.conv = nn.Conv2d(width, out_channels, 3, padding=1)
        self.width = width

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.dtype != torch.int64 or ((y < 0) | (y >= self.num_classes)).any():
            raise ValueError(f"y must hold class ids in [0, {self.num_classes})")
        h = self.fc(z * self.embed(y)).view(-1, self.width, 8, 8)
        h = nn.functional.interpolate(torch.relu(self.bn(h)), size=self.image_size, mode="nearest")
        return torch.tanh(self.conv(h))


class TinyDiscriminator(nn.Module):
    def __init__(self, *, num_classes: int = 10, in_channels: int = 1, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 4, stride=4)
        self.fc = nn.Linear(width, 1)
        self.embed = nn.Embedding(num_classes, width)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return self.fc(h).squeeze(1) + (self.embed(y) * h).sum(1)  # projection discriminator


def tiny_gan(**kwargs) -> tuple[TinyGenerator, TinyDiscriminator]:
    num_classes = kwargs.get("num_classes", 10)
    out_channels = kwargs.get("out_channels", 1)
    g = TinyGenerator(**kwargs)
    return g, TinyDiscriminator(num_classes=num_classes, in_channels=out_channels)


class LabelPainter(nn.Module):
    """A 'generator' whose image is the constant grey level ``-1 + 2 * y / (K - 1)``: its label, visibly."""

    def __init__(self, *, num_classes: int = 10, image_size: int = 32, out_channels: int = 1) -> None:
        super().__init__()
        self.z_dim, self.num_classes, self.image_size, self.out_channels = 4, num_classes, image_size, out_channels
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if ((y < 0) | (y >= self.num_classes)).any():
            raise ValueError(f"y must hold class ids in [0, {self.num_classes})")
        level = -1.0 + 2.0 * y.float() / (self.num_classes - 1)
        shape = (len(y), self.out_channels, self.image_size, self.image_size)
        return (self.scale * level).view(-1, 1, 1, 1).expand(shape).clone()


def painter_gan(**kwargs) -> tuple[LabelPainter, TinyDiscriminator]:
    g = LabelPainter(**kwargs)
    return g, TinyDiscriminator(num_classes=g.num_classes, in_channels=g.out_channels)


try:
    import lightning.pytorch as pl
except ImportError:  # the tests that use lightning skip themselves
    pass
else:

    class RankParams(pl.Callback):
        """``--trainer.callbacks+=gan_standins.RankParams``: each rank's state (G, D, EMA G) after training, to
        ``<default_root_dir>/params_rank<R>.pt``."""

        def on_train_end(self, trainer, module) -> None:
            state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            torch.save(state, Path(trainer.default_root_dir) / f"params_rank{trainer.global_rank}.pt")
