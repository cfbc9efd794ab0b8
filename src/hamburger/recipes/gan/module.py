"""``GANModule``: class-conditional GAN training with manual optimisation (hinge loss, TTUR, ``n_critic``, EMA G).

One training step (one batch of ``n_critic * batch_size`` real images) is one *generator* step:

1. ``n_critic`` discriminator steps, each on its own ``batch_size`` reals and fresh fakes ``G(z, y)`` (``z ~ N(0,
   I)``, ``y`` uniform over the classes, no gradient into G):
   ``L_D = mean(relu(1 - D(x, y_x))) + mean(relu(1 + D(G(z, y), y)))``;
2. one generator step on ``batch_size`` fresh fakes: ``L_G = -mean(D(G(z, y), y))``;
3. the EMA generator update (:mod:`.ema`).

With DiffAugment (``diffaug``) the same kind of random augmentation is applied to reals and fakes before D.
``trainer.global_step`` counts generator steps (the discriminator steps go through the strategy's optimiser step,
so they are not counted twice): ``max_steps``, ``every_n_train_steps`` and the sample interval are in generator
steps. Mixed precision (``bf16-mixed`` / ``16-mixed``) goes through Lightning's precision plugin: backward with
``manual_backward`` and every optimiser step through the strategy, so ``16-mixed``'s GradScaler scales, unscales
and skips non-finite steps for both networks.

Random numbers: the noise, fake labels and DiffAugment parameters of step ``t`` come from a ``torch.Generator``
seeded by ``(seed, rank, t, phase)``; they are the same after a resume and differ between DDP ranks. Anything
else the networks draw (random NMF bases) comes from the global stream, which
:class:`~hamburger.training.rng.TrainingRNG` saves and restores.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any, cast

import lightning.pytorch as pl
import torch
from torch import nn

from ...training.hparams import check_plain_hparams, is_import_path
from ...training.rng import TrainingRNG
from ...training.sampling import derive_seed
from ...utils import check_float, check_int, check_positive_int
from .data import to_unit_range
from .diffaug import diff_augment, parse_policy
from .ema import EMA, make_ema_copy
from .losses import hinge_d_loss, hinge_g_loss

__all__ = ["GANModule", "build_gan", "checkpoint_hparams", "is_import_path"]

log = logging.getLogger(__name__)


def build_gan(model: str, model_kwargs: dict[str, Any] | None = None) -> tuple[nn.Module, nn.Module]:
    """``(generator, discriminator)`` of a registered GAN (:func:`hamburger.models.gan.create_gan`) or of an
    import path ``"pkg.module:factory"`` whose factory takes ``**model_kwargs`` and returns the pair.

    An import path is code that gets imported and called: only pass one you typed yourself (checkpoints are
    vetted by :func:`checkpoint_hparams`).
    """
    if not isinstance(model, str) or not model:
        raise TypeError(f"model must be a registered GAN name or 'pkg.module:factory', got {model!r}")
    kwargs = dict(model_kwargs or {})
    if is_import_path(model):
        module_name, _, attr = model.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as err:
            raise ValueError(f"model {model!r}: cannot import {attr!r} from {module_name!r} ({err})") from err
        pair = factory(**kwargs)
    else:
        from ...models.gan import create_gan

        pair = create_gan(model, **kwargs)
    generator, discriminator = pair
    for attr in ("z_dim", "num_classes", "image_size", "out_channels"):
        if not hasattr(generator, attr):
            raise TypeError(f"model {model!r}: the generator has no attribute {attr!r} (see hamburger.models.gan)")
    return generator, discriminator


def checkpoint_hparams(
    hparams: object, *, source: str | os.PathLike = "checkpoint", model: str | None = None
) -> dict[str, Any]:
    """The plain hyper-parameters of a GAN checkpoint; a model import path is refused unless ``model`` (what the
    user typed) names the same path."""
    source = os.fspath(source)
    hp = check_plain_hparams(hparams, source=source)
    name = hp.get("model")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{source}: hyper-parameter model must be a GAN name, got {name!r}")
    if is_import_path(name) and name != model:
        raise ValueError(
            f"{source} names the model import path {name!r}; a checkpoint may only name registered GANs "
            f"(importing code named in a file is refused). If you trust it, give the same path yourself: "
            f"--model.model {name} (fit) or --model {name} (sample / evaluate)"
        )
    return hp


class GANModule(pl.LightningModule):
    """Class-conditional GAN (SAGAN / SNGAN-projection / HamGAN) trained with the hinge loss.

    Args:
        model: registered GAN name (``hamgan_32``, ``sagan_32``, ``sngan_32``, ``hamgan_baby_128``, ...) or
            ``"pkg.module:factory"`` returning ``(generator, discriminator)``.
        model_kwargs: overrides of the GAN config (``g_channels``, ``d_channels``, ``context``, ...).
        lr_g: generator learning rate (TTUR: 1e-4).
        lr_d: discriminator learning rate (TTUR: 4e-4).
        betas: Adam betas of both optimisers (``(0, 0.999)``).
        n_critic: discriminator steps per generator step.
        ema_decay: decay ``d`` of the EMA generator.
        ema_start: generator step from which the EMA averages (before it, it copies the generator).
        diffaug: DiffAugment policy, e.g. ``"color,translation,cutout"`` (``None``: no augmentation).
        seed: seed of the noise, fake labels and augmentation.
    """

    def __init__(
        self,
        model: str = "hamgan_32",
        *,
        model_kwargs: dict[str, Any] | None = None,
        lr_g: float = 1e-4,
        lr_d: float = 4e-4,
        betas: tuple[float, float] = (0.0, 0.999),
        n_critic: int = 1,
        ema_decay: float = 0.999,
        ema_start: int = 0,
        diffaug: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_float("lr_g", lr_g, low=0.0, low_open=True)
        check_float("lr_d", lr_d, low=0.0, low_open=True)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for i, b in enumerate(betas):
            check_float(f"betas[{i}]", b, low=0.0, high=1.0, high_open=True)
        check_positive_int("n_critic", n_critic)
        check_int("seed", seed)
        self.diffaug = parse_policy(diffaug)
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.n_critic = n_critic
        self.generator, self.discriminator = build_gan(model, model_kwargs)
        self.generator_ema = make_ema_copy(self.generator)
        self.ema = EMA(self.generator, self.generator_ema, decay=ema_decay, start_step=ema_start)
        self.class_names: list[str] | None = None

    # ------------------------------------------------------------------ properties of the generator
    @property
    def num_classes(self) -> int:
        return int(cast(Any, self.generator).num_classes)

    @property
    def z_dim(self) -> int:
        return int(cast(Any, self.generator).z_dim)

    @property
    def image_size(self) -> int:
        return int(cast(Any, self.generator).image_size)

    @property
    def out_channels(self) -> int:
        return int(cast(Any, self.generator).out_channels)

    # ------------------------------------------------------------------ sampling
    def rng(self, step: int, phase: int) -> torch.Generator:
        """The generator of step ``step``'s phase ``phase`` (``0..n_critic-1``: D steps, ``n_critic``: G step)."""
        rank = self.global_rank if self._trainer is not None else 0
        seed = cast(Any, self.hparams).seed
        return torch.Generator().manual_seed(derive_seed(seed, rank, step, phase))

    def noise(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``z (batch, z_dim)`` ~ N(0, I) and labels uniform over the classes, on the module's device."""
        z = torch.randn(batch, self.z_dim, generator=generator)
        y = torch.randint(0, self.num_classes, (batch,), generator=generator)
        return z.to(self.device), y.to(self.device)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images of the EMA generator (eval mode) in [-1, 1]."""
        self.generator_ema.eval()
        return self.generator_ema(z, y)

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return diff_augment(x, self.diffaug, generator=generator) if self.diffaug else x

    # ------------------------------------------------------------------ training
    def _uncounted_step(self, optimizer: Any) -> None:
        """An optimiser step through the strategy (precision plugin: GradScaler under 16-mixed) that does not
        advance ``global_step`` (which counts generator steps)."""
        self.trainer.strategy.optimizer_step(optimizer.optimizer, closure=lambda: None, model=self)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        opt_g, opt_d = cast(list, self.optimizers())
        images, labels = to_unit_range(batch["image"]), batch["label"]
        n = self.n_critic
        if images.shape[0] % n:
            raise ValueError(f"a training batch of {images.shape[0]} images does not split into n_critic={n} steps")
        size = images.shape[0] // n
        step = self.global_step
        loss_d = real_mean = fake_mean = torch.zeros((), device=self.device)
        for i, (x, y) in enumerate(zip(images.split(size), labels.split(size), strict=True)):
            g = self.rng(step, i)
            z, y_fake = self.noise(size, g)
            with torch.no_grad():
                fake = self.generator(z, y_fake)
            d_real = self.discriminator(self._augment(x, g), y)
            d_fake = self.discriminator(self._augment(fake.detach(), g), y_fake)
            loss_d = hinge_d_loss(d_real, d_fake)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            self._uncounted_step(opt_d)
            real_mean, fake_mean = d_real.detach().float().mean(), d_fake.detach().float().mean()
        g = self.rng(step, n)
        z, y_fake = self.noise(size, g)
        self.toggle_optimizer(opt_g)
        try:
            loss_g = hinge_g_loss(self.discriminator(self._augment(self.generator(z, y_fake), g), y_fake))
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
            opt_g.step()  # advances global_step
        finally:
            self.untoggle_optimizer(opt_g)
        self.ema.update(self.global_step)
        loss_d, loss_g = loss_d.detach(), loss_g.detach()
        if "16" not in str(self.trainer.precision) and not bool(torch.isfinite(loss_d + loss_g)):
            raise FloatingPointError(f"non-finite GAN loss at step {step}: loss_d {loss_d.item()}, "
                                     f"loss_g {loss_g.item()}")  # fmt: skip
        self.log_dict({"train/loss_d": loss_d, "train/loss_g": loss_g, "train/d_real": real_mean,
                       "train/d_fake": fake_mean}, prog_bar=False)  # fmt: skip
        return {"loss_d": loss_d, "loss_g": loss_g}

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        hp = cast(Any, self.hparams)
        betas = (float(hp.betas[0]), float(hp.betas[1]))
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr_g, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr_d, betas=betas)
        return [opt_g, opt_d]

    # ------------------------------------------------------------------ checks, metadata, resume
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or not hasattr(dm, "num_classes"):
            return
        checks = (("classes", dm.num_classes, self.num_classes), ("channels", dm.channels, self.out_channels),
                  ("image size", dm.image_size, self.image_size))  # fmt: skip
        for what, data_value, model_value in checks:
            if data_value != model_value:
                raise ValueError(
                    f"data ({dm.dataset_name}) has {what} {data_value} but model {cast(Any, self.hparams).model!r} "
                    f"has {model_value}: pick a matching model or set --model.model_kwargs / --data.image_size"
                )
        self.class_names = dm.class_names

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gan_meta"] = {
            "class_names": self.class_names, "num_classes": self.num_classes, "z_dim": self.z_dim,
            "image_size": self.image_size, "out_channels": self.out_channels,
        }  # fmt: skip

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.class_names = (checkpoint.get("gan_meta") or {}).get("class_names") or self.class_names

    def configure_callbacks(self) -> list[pl.Callback]:
        return [TrainingRNG()]
