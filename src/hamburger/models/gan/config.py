"""``GANConfig``: the typed, validated description of a class-conditional HamGAN / SAGAN / SNGAN pair."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ...blocks import HamOptions
from ...utils import check_choice, check_int, check_positive_int

IMAGE_SIZES = (32, 64, 128)
CONTEXTS = ("hamburger", "self_attention", "none")

# Channel multipliers of gf_dim / df_dim per image size. 128 and 64: the SAGAN / HamGAN ImageNet networks
# (official gan/HamGAN/generator.py, discriminator.py); 32: the StudioGAN CIFAR-10 ResNet (constant width).
G_WIDTHS = {32: (4, 4, 4, 4), 64: (16, 8, 4, 2, 1), 128: (16, 16, 8, 4, 2, 1)}  # 4x4 input, then each up-block
D_WIDTHS = {32: (2, 2, 2, 2), 64: (1, 2, 4, 8, 16), 128: (1, 2, 4, 8, 16, 16)}  # each down-block
D_DOWN = {32: (True, True, False, False), 64: (True, True, True, True, False), 128: (True,) * 5 + (False,)}

_LAYER_FIELDS = ("norm_layer", "act_layer", "out_act", "conv_layer")


def g_sizes(image_size: int) -> tuple[int, ...]:
    """Feature-map sides after each generator up-block (from 4x4)."""
    return tuple(4 * 2 ** (i + 1) for i in range(len(G_WIDTHS[image_size]) - 1))


def d_sizes(image_size: int) -> tuple[int, ...]:
    """Feature-map sides after each discriminator block."""
    sizes, side = [], image_size
    for down in D_DOWN[image_size]:
        side = side // 2 if down else side
        sizes.append(side)
    return tuple(sizes)


def default_g_ham() -> HamOptions:
    """The official HamGAN generator ham: NMF, v1, rank 32, K = 6 in training and eval, one-step gradient,
    spectral-norm breads, sigma (``gate_init``) 0, no output activation."""
    return HamOptions(
        ham="nmf", rank=32, steps=6, eval_steps=6, version="v1", gate_init=0.0, out_act=None, conv_layer="spectral"
    )


def default_d_ham() -> HamOptions:
    """The official HamGAN discriminator ham: as the generator's with rank 16."""
    return default_g_ham().replace(rank=16)


_DEFAULT_HAMS = {"g_ham": default_g_ham, "d_ham": default_d_ham}


@dataclass(frozen=True, kw_only=True)
class GANConfig:
    """Every option of a class-conditional generator / projection-discriminator pair.

    Fields:
        image_size: ``S``, 32, 64 or 128.
        num_classes: number of classes of the labels ``y``.
        out_channels: image channels (3, or 1 for grey).
        z_dim: latent size.
        g_channels, d_channels: ``gf_dim``, ``df_dim``, the base widths (stage widths are multiples, see
            ``G_WIDTHS`` / ``D_WIDTHS``).
        context: the global-context block in G and D: ``"hamburger"``, ``"self_attention"`` (SAGAN) or ``"none"``
            (SNGAN-projection).
        g_context_size, d_context_size: the feature-map side after which the context block sits (the official
            HamGAN: 32 in both at 128x128).
        g_ham, d_ham: the hams and their blocks (:class:`~hamburger.blocks.HamOptions`); ``norm_layer="inherit"``
            means class-conditional BatchNorm in G and no norm in D, ``conv_layer="spectral"`` orthogonally
            initialised spectral-norm 1x1 breads. Layer fields must be names (the config serialises).
        g_ham_channels, d_ham_channels: the ham width ``S * d`` (None: the feature width ``C``, as the official
            G ``d = 256`` and D ``d = 128``).
        bn_eps: epsilon of the generator's batch norms.
    """

    image_size: int
    num_classes: int
    out_channels: int = 3
    z_dim: int = 128
    g_channels: int = 64
    d_channels: int = 64
    context: str = "hamburger"
    g_context_size: int = 32
    d_context_size: int = 32
    g_ham: HamOptions = field(default_factory=default_g_ham)  # a mapping: changes to these defaults
    d_ham: HamOptions = field(default_factory=default_d_ham)
    g_ham_channels: int | None = None
    d_ham_channels: int | None = None
    bn_eps: float = 1e-5

    HAM_FIELDS: ClassVar[tuple[str, ...]] = ("g_ham", "d_ham")

    def __post_init__(self) -> None:
        check_int("image_size", self.image_size)
        check_choice("image_size", self.image_size, IMAGE_SIZES)
        check_positive_int("num_classes", self.num_classes)
        check_positive_int("out_channels", self.out_channels)
        check_positive_int("z_dim", self.z_dim)
        check_positive_int("g_channels", self.g_channels)
        check_positive_int("d_channels", self.d_channels)
        check_choice("context", self.context, CONTEXTS)
        for name, sizes in (("g_context_size", g_sizes(self.image_size)), ("d_context_size", d_sizes(self.image_size))):
            check_int(name, getattr(self, name))
            if getattr(self, name) not in sizes:
                raise ValueError(
                    f"{name} must be a feature-map side of the {self.image_size}x{self.image_size} network, "
                    f"one of {sorted(set(sizes))}, got {getattr(self, name)!r}"
                )
        for name in self.HAM_FIELDS:
            ham = getattr(self, name)
            if isinstance(ham, Mapping):  # a dict (YAML, to_dict): changes to the official GAN defaults
                try:
                    ham = _DEFAULT_HAMS[name]().replace(**ham)
                except TypeError as err:
                    raise ValueError(f"{name}: {err}") from None
                object.__setattr__(self, name, ham)
            if not isinstance(ham, HamOptions):
                raise TypeError(f"{name} must be a HamOptions or a mapping of its fields, got {type(ham).__name__}")
            for layer in _LAYER_FIELDS:
                value = getattr(ham, layer)
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"{name}.{layer} must be a layer name or None (to serialise), got {value!r}")
        for name in ("g_ham_channels", "d_ham_channels"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        if isinstance(self.bn_eps, bool) or not isinstance(self.bn_eps, (int, float)) or not self.bn_eps > 0:
            raise ValueError(f"bn_eps must be a positive float, got {self.bn_eps!r}")

    @property
    def g_widths(self) -> tuple[int, ...]:
        """Generator widths: the 4x4 input, then the output of each up-block."""
        return tuple(m * self.g_channels for m in G_WIDTHS[self.image_size])

    @property
    def d_widths(self) -> tuple[int, ...]:
        """Discriminator widths: the output of each block."""
        return tuple(m * self.d_channels for m in D_WIDTHS[self.image_size])

    # ------------------------------------------------------------------ construction / serialisation
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **overrides: Any) -> GANConfig:
        """A copy with ``overrides``; ``g_ham`` / ``d_ham`` may be a mapping of fields to change in the current one."""
        unknown = sorted(set(overrides) - set(self.field_names()))
        if unknown:
            raise ValueError(f"unknown GANConfig field(s) {unknown}; valid fields are {sorted(self.field_names())}")
        for name in self.HAM_FIELDS:
            value = overrides.get(name)
            if isinstance(value, Mapping):
                try:
                    overrides[name] = getattr(self, name).replace(**value)
                except TypeError as err:
                    raise ValueError(f"{name}: {err}") from None
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-able dict (``from_dict`` rebuilds the same config)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in self.HAM_FIELDS:
            data[name] = getattr(self, name).to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GANConfig:
        """Rebuild from a mapping of fields; unknown keys (also inside ``g_ham`` / ``d_ham``) are a ValueError."""
        if not isinstance(data, Mapping):
            raise TypeError(f"GANConfig.from_dict needs a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"unknown GANConfig field(s) {unknown}; valid fields are {sorted(cls.field_names())}")
        missing = sorted({"image_size", "num_classes"} - set(data))
        if missing:
            raise ValueError(f"GANConfig needs the field(s) {missing}")
        return cls(**data)
