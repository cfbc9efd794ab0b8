"""ModelConfig: the typed description of a segmentation model (built by :func:`~hamburger.models.build_model`).

A registered model name is a ``ModelConfig``; ``create_model(name, **overrides)`` replaces
fields, and ``save_pretrained`` stores the config as JSON next to the weights, so a saved model
is rebuilt without the registry entry that made it. The Hamburger's options are one nested
:class:`~hamburger.blocks.HamOptions` (``config.hamburger``); ``replace`` routes their names
(``ham="vq"``, ``inv_temp=10``, ``grad_mode="bptt"``) there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..blocks import HamOptions


@dataclass(frozen=True)
class ModelConfig:
    """Backbone, head and auxiliary-head settings of a :class:`SegmentationModel`.

    Backbone: ``backbone`` (``"tiny_convnet"`` or a timm name), ``in_channels``,
    ``output_stride`` (8, 16, 32), ``feature_strides`` (the natural strides of the feature levels
    the heads read, e.g. ``(8, 16, 32)`` for Light-Ham; None = the deepest level only), which
    pick the levels from the backbone's ``feature_info`` so that any backbone can be swapped in;
    ``out_indices`` (explicit levels, overriding ``feature_strides``; reset when ``backbone`` is
    replaced without new ones), ``backbone_kwargs`` (extra constructor options, e.g.
    ``{"layers": [1, 1, 1, 1]}``; also reset with the backbone), ``multi_grid`` (ResNet last-stage
    dilation multipliers), ``weights`` (local file).

    Head: ``head`` (a registered head name, :func:`hamburger.heads.list_heads`: ``"ham"`` =
    :class:`~hamburger.heads.HamHead`, ``"light_ham"`` = :class:`~hamburger.heads.LightHamHead`),
    ``in_index`` (int for ``ham``, int, list or None for ``light_ham``), widths ``channels`` /
    ``ham_channels``, ``kernel_size`` and ``concat_input`` (``ham`` only), ``dropout``,
    ``norm_layer``, ``act_layer`` (the head's), ``context`` (context-block name) and ``hamburger``:
    the block's :class:`~hamburger.blocks.HamOptions` (solver and block options; its
    ``norm_layer`` defaults to the head's).

    Auxiliary FCN head: ``aux_index`` (feature index, None for no auxiliary head),
    ``aux_channels``. ``align_corners`` applies to the final upsampling.
    """

    backbone: str = "tiny_convnet"
    num_classes: int = 11
    in_channels: int = 3
    output_stride: int = 32
    feature_strides: tuple[int, ...] | None = None
    out_indices: tuple[int, ...] | None = None
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    multi_grid: tuple[int, ...] | None = None
    weights: str | None = None
    head: str = "light_ham"
    in_index: int | tuple[int, ...] | None = None
    channels: int = 512
    ham_channels: int = 512
    kernel_size: int = 3
    concat_input: bool = False
    dropout: float = 0.1
    norm_layer: str = "group"
    act_layer: str = "relu"
    context: str = "hamburger"
    hamburger: HamOptions = field(default_factory=HamOptions)
    aux_index: int | None = None
    aux_channels: int = 256
    align_corners: bool = False

    HEAD_FIELDS: ClassVar[tuple[str, ...]] = (
        "in_index", "channels", "ham_channels", "kernel_size", "concat_input", "dropout", "norm_layer",
        "act_layer", "context", "align_corners",
    )  # fmt: skip
    _TUPLES: ClassVar[tuple[str, ...]] = ("feature_strides", "out_indices", "multi_grid", "in_index")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **overrides: Any) -> ModelConfig:
        """A copy with ``overrides`` applied.

        Names of :class:`HamOptions` fields that are not model fields (``ham``, ``rank``, ``inv_temp``,
        ``grad_mode``, ...) change ``hamburger``; ``hamburger`` itself takes a ``HamOptions`` or a mapping of its
        fields (merged into the current options). ``norm_layer`` / ``act_layer`` are the head's: set the block's
        with ``hamburger={"norm_layer": ...}``. Unknown names raise ``ValueError`` listing the valid ones.
        """
        names = set(self.field_names())
        ham_names = set(HamOptions.field_names()) - names
        unknown = sorted(set(overrides) - names - ham_names)
        if unknown:
            raise ValueError(
                f"unknown model option(s) {unknown}; valid options are {sorted(names)} and the Hamburger options "
                f"{sorted(ham_names)}"
            )
        ham_overrides = {k: overrides.pop(k) for k in list(overrides) if k in ham_names}
        nested = overrides.pop("hamburger", None)
        ham = self.hamburger
        if isinstance(nested, HamOptions):
            ham = nested
        elif isinstance(nested, Mapping):
            ham = ham.replace(**dict(nested))
        elif nested is not None:
            raise TypeError(f"hamburger must be a HamOptions or a mapping of its fields, got {type(nested).__name__}")
        if ham_overrides:
            ham = ham.replace(**ham_overrides)
        if overrides.get("backbone", self.backbone) != self.backbone:
            # constructor options and explicit levels of the replaced backbone do not carry over
            overrides.setdefault("backbone_kwargs", {})
            overrides.setdefault("out_indices", None)
        for key in self._TUPLES:  # JSON gives lists; keep tuples
            if isinstance(overrides.get(key), list):
                overrides[key] = tuple(overrides[key])
        return dataclasses.replace(self, hamburger=ham, **overrides)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["hamburger"] = self.hamburger.to_dict()
        data["backbone_kwargs"] = dict(self.backbone_kwargs)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, strict: bool = True) -> ModelConfig:
        """Rebuild from :meth:`to_dict`'s output; ``strict`` requires every field, and no other."""
        data = dict(data)
        if strict:
            names = set(cls.field_names())
            missing, unknown = sorted(names - set(data)), sorted(set(data) - names)
            if missing or unknown:
                raise ValueError(
                    f"model config has missing field(s) {missing} and unknown field(s) {unknown}; "
                    f"expected exactly {sorted(names)}"
                )
            ham = data.get("hamburger")
            if not isinstance(ham, Mapping):
                raise ValueError(f"model config field 'hamburger' must be a mapping, got {type(ham).__name__}")
            ham_names = set(HamOptions.field_names())
            missing, unknown = sorted(ham_names - set(ham)), sorted(set(ham) - ham_names)
            if missing or unknown:
                raise ValueError(
                    f"model config 'hamburger' has missing field(s) {missing} and unknown field(s) {unknown}"
                )
        return cls().replace(**data)
