"""ModelConfig: the typed description of a segmentation model, and ``build_model`` from it.

A registered model name is a ``ModelConfig``; ``create_model(name, **overrides)`` replaces
fields, and ``save_pretrained`` stores the config as JSON next to the weights, so a saved model
is rebuilt without the registry entry that made it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ..heads import FCNHead, HamHead, LightHamHead
from .backbones import create_backbone
from .segmentation import SegmentationModel

HEADS = ("ham", "light_ham")


@dataclass(frozen=True)
class ModelConfig:
    """Backbone, head and auxiliary-head settings of a :class:`SegmentationModel`.

    Backbone: ``backbone`` (``"tiny_convnet"`` or a timm name), ``in_channels``,
    ``output_stride`` (8, 16, 32), ``out_indices`` (levels the backbone returns),
    ``backbone_kwargs`` (extra constructor options, e.g. ``{"layers": [1, 1, 1, 1]}``; reset to
    ``{}`` when ``backbone`` is replaced without giving new ones),
    ``multi_grid`` (ResNet last-stage dilation multipliers), ``weights`` (local file).

    Head: ``head`` (``"ham"`` = :class:`~hamburger.heads.HamHead`, ``"light_ham"`` =
    :class:`~hamburger.heads.LightHamHead`), ``in_index`` (int for ``ham``, list or None for
    ``light_ham``), widths ``channels`` / ``ham_channels``, ``kernel_size`` and ``concat_input``
    (``ham`` only), ``dropout``, ``norm_layer``, ``act_layer``, ``context`` (context-block name) and
    the Hamburger options ``ham``, ``rank``, ``steps``, ``eval_steps``, ``groups``, ``grad_mode``,
    ``init``, ``version``.

    Auxiliary FCN head: ``aux_index`` (feature index, None for no auxiliary head),
    ``aux_channels``. ``align_corners`` applies to the final upsampling.
    """

    backbone: str = "tiny_convnet"
    num_classes: int = 11
    in_channels: int = 3
    output_stride: int = 32
    out_indices: tuple[int, ...] | None = None
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    multi_grid: tuple[int, ...] | None = None
    weights: str | None = None
    head: Literal["ham", "light_ham"] = "light_ham"
    in_index: int | tuple[int, ...] | None = None
    channels: int = 512
    ham_channels: int = 512
    kernel_size: int = 3
    concat_input: bool = False
    dropout: float = 0.1
    norm_layer: str = "group"
    act_layer: str = "relu"
    context: str = "hamburger"
    ham: str = "nmf"
    rank: int = 64
    steps: int = 6
    eval_steps: int | None = 7
    groups: int = 1
    grad_mode: str = "one_step"
    init: str = "random"
    version: str = "v1"
    aux_index: int | None = None
    aux_channels: int = 256
    align_corners: bool = False

    def replace(self, **overrides: Any) -> ModelConfig:
        """A copy with ``overrides`` applied; unknown names raise ``ValueError`` listing the fields."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown model option(s) {unknown}; valid options are {sorted(names)}")
        if overrides.get("backbone", self.backbone) != self.backbone and "backbone_kwargs" not in overrides:
            overrides["backbone_kwargs"] = {}  # constructor options of the replaced backbone do not carry over
        for key in ("out_indices", "multi_grid", "in_index"):  # JSON gives lists; keep tuples
            if isinstance(overrides.get(key), list):
                overrides[key] = tuple(overrides[key])
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_model(config: ModelConfig, *, pretrained: bool = False) -> SegmentationModel:
    """Instantiate the backbone, head and auxiliary head described by ``config``."""
    if config.head not in HEADS:
        raise ValueError(f"head must be one of {list(HEADS)}, got {config.head!r}")
    backbone_kwargs = dict(config.backbone_kwargs)
    if config.multi_grid is not None:
        backbone_kwargs["multi_grid"] = config.multi_grid
    backbone = create_backbone(
        config.backbone, in_channels=config.in_channels, out_indices=config.out_indices,
        output_stride=config.output_stride, pretrained=pretrained, weights=config.weights, **backbone_kwargs,
    )  # fmt: skip
    common = dict(
        channels=config.channels, ham_channels=config.ham_channels, dropout=config.dropout,
        norm_layer=config.norm_layer, act_layer=config.act_layer, context=config.context, ham=config.ham,
        rank=config.rank, steps=config.steps, eval_steps=config.eval_steps, groups=config.groups,
        grad_mode=config.grad_mode, init=config.init, version=config.version,
    )  # fmt: skip
    channels = backbone.channels
    if config.head == "ham":
        in_index = -1 if config.in_index is None else config.in_index
        if not isinstance(in_index, int):
            raise ValueError(f"in_index of a 'ham' head must be an int, got {in_index!r}")
        head = HamHead(
            channels, config.num_classes, in_index=in_index, kernel_size=config.kernel_size,
            concat_input=config.concat_input, **common,
        )  # fmt: skip
    else:
        in_index = (config.in_index,) if isinstance(config.in_index, int) else config.in_index
        head = LightHamHead(
            channels, config.num_classes, in_index=in_index, align_corners=config.align_corners, **common
        )
    aux_head = None
    if config.aux_index is not None:
        aux_head = FCNHead(
            channels, config.num_classes, in_index=config.aux_index, channels=config.aux_channels,
            norm_layer=config.norm_layer, act_layer=config.act_layer,
        )  # fmt: skip
    return SegmentationModel(backbone, head, aux_head, align_corners=config.align_corners)
