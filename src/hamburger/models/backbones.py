"""Feature backbones: any timm model through ``features_only=True``, and a tiny CPU-sized conv net.

Every backbone maps ``(B, in_channels, H, W)`` to a list of feature maps and exposes
``in_channels``, ``channels`` (per map) and ``reductions`` (stride of each map). timm is imported
only when a timm backbone is built, so ``import hamburger.models`` stays light.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, cast

from torch import Tensor, nn

from ..layers import LayerType, get_norm_layer

if TYPE_CHECKING:
    from timm.models import FeatureInfo

logger = logging.getLogger(__name__)

OUTPUT_STRIDES = (8, 16, 32)


def _check_output_stride(output_stride: int) -> int:
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {list(OUTPUT_STRIDES)}, got {output_stride!r}")
    return output_stride


FeatureStrides = Sequence[int] | Literal["deepest"] | None


def select_levels(reductions: Sequence[int], feature_strides: FeatureStrides, *, name: str) -> list[int]:
    """Indices of the levels with the natural strides ``feature_strides``: all for None, the last for "deepest".

    ``reductions`` are the backbone's strides per level (timm's ``feature_info``); where several levels share a
    stride, the deepest is taken. A stride the backbone does not have raises ``ValueError`` naming both.
    """
    if not reductions:
        raise ValueError(f"backbone {name!r} reports no feature levels")
    if feature_strides is None:
        return list(range(len(reductions)))
    if feature_strides == "deepest":
        return [len(reductions) - 1]
    if isinstance(feature_strides, str):
        raise ValueError(f"feature_strides must be a sequence of strides, 'deepest' or None, got {feature_strides!r}")
    indices = []
    for stride in feature_strides:
        matches = [i for i, r in enumerate(reductions) if r == stride]
        if not matches:
            raise ValueError(
                f"backbone {name!r} has feature levels at strides {list(reductions)}; the head needs strides "
                f"{list(feature_strides)} (set feature_strides to strides it has, or out_indices to explicit levels)"
            )
        indices.append(matches[-1])
    return indices


def _conv_bn_act(c_in: int, c_out: int, *, stride: int, dilation: int, norm_layer: LayerType) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
    return nn.Sequential(conv, get_norm_layer(norm_layer)(c_out), nn.ReLU())


class TinyConvNet(nn.Module):
    """A plain conv-BN-ReLU stack for CPU-sized experiments (no pretrained weights).

    Stage ``i`` halves the resolution with a stride-2 3x3 conv and adds ``depth - 1`` more 3x3
    convs, so ``widths=(24, 48, 96)`` gives features at strides 2, 4 and 8. Stages past
    ``output_stride`` keep the resolution and dilate instead.

    Args:
        in_channels: image channels.
        widths: channels of each stage.
        depth: 3x3 convs per stage (an int, or one per stage).
        out_indices: stages returned (default: by ``feature_strides``).
        feature_strides: natural strides of the stages to return (stage ``i`` has stride ``2 ** (i + 1)``),
            ``"deepest"`` for the last stage, None for all (used when ``out_indices`` is None).
        output_stride: largest stride (8, 16 or 32, at most ``2 ** len(widths)``).
        norm_layer: norm of every conv.

    Shape:
        ``(B, in_channels, H, W)`` -> list of ``(B, widths[i], H / s_i, W / s_i)``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        *,
        widths: Sequence[int] = (24, 48, 96),
        depth: int | Sequence[int] = 2,
        out_indices: Sequence[int] | None = None,
        feature_strides: FeatureStrides = None,
        output_stride: int = 32,
        norm_layer: LayerType = "batch",
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        natural = 2 ** len(widths)
        output_stride = _check_output_stride(output_stride)
        if output_stride > natural:
            output_stride = natural  # a shallow net's natural stride is below the requested maximum
        depths = [depth] * len(widths) if isinstance(depth, int) else list(depth)
        if len(depths) != len(widths) or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in depths):
            raise ValueError(f"depth must be an int >= 1 or one per stage ({len(widths)}), got {depth!r}")
        self.in_channels = in_channels
        if out_indices is None and feature_strides is not None:
            natural_strides = [2 ** (i + 1) for i in range(len(widths))]
            out_indices = select_levels(natural_strides, feature_strides, name="tiny_convnet")
        indices = list(range(len(widths)) if out_indices is None else out_indices)
        if not indices or any(isinstance(i, bool) or not -len(widths) <= i < len(widths) for i in indices):
            raise ValueError(f"out_indices must index the {len(widths)} stages, got {out_indices!r}")
        self.out_indices = [i % len(widths) for i in indices]
        stages, reductions, stride, dilation, c_in = [], [], 1, 1, in_channels
        for width, n in zip(widths, depths, strict=True):
            if stride * 2 <= output_stride:
                stride, s, d_first = stride * 2, 2, dilation
            else:
                s, d_first, dilation = 1, dilation, dilation * 2
            layers = [_conv_bn_act(c_in, width, stride=s, dilation=d_first, norm_layer=norm_layer)]
            layers += [
                _conv_bn_act(width, width, stride=1, dilation=dilation, norm_layer=norm_layer) for _ in range(n - 1)
            ]
            stages.append(nn.Sequential(*layers))
            reductions.append(stride)
            c_in = width
        self.stages = nn.ModuleList(stages)
        self.channels = [widths[i] for i in self.out_indices]
        self.reductions = [reductions[i] for i in self.out_indices]

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.stages[: max(self.out_indices) + 1]:
            x = stage(x)
            features.append(x)
        return [features[i] for i in self.out_indices]


class TimmBackbone(nn.Module):
    """Any timm model as a multi-scale feature extractor (``features_only=True``).

    Args:
        name: a timm model name (``timm.list_models()``).
        in_channels: image channels (timm adapts the stem, also for pretrained weights).
        out_indices: feature levels to return (timm's indices); default: chosen by ``feature_strides``.
        feature_strides: natural strides of the levels to return, matched against timm's ``feature_info``
            (``(8, 16, 32)`` for Light-Ham), ``"deepest"`` for the last level, None for all. A backbone without
            those strides raises ``ValueError``.
        output_stride: 8, 16 or 32; the last stages are dilated instead of strided. A model
            that cannot dilate raises ``ValueError``.
        pretrained: load timm's ImageNet weights (downloads; needs internet).
        multi_grid: ResNet only: dilation multipliers of the blocks of the last stage after the
            first (official HamNet: ``(1, 2, 4)`` at output stride 8 gives dilations 2, 8, 16).
        **kwargs: passed to ``timm.create_model`` (e.g. ``layers=(1, 1, 1, 1)`` for a ResNet).

    Shape:
        ``(B, in_channels, H, W)`` -> list of ``(B, channels[i], H / reductions[i], ...)``.
    """

    def __init__(
        self,
        name: str,
        *,
        in_channels: int = 3,
        out_indices: Sequence[int] | None = None,
        feature_strides: FeatureStrides = None,
        output_stride: int = 32,
        pretrained: bool = False,
        multi_grid: Sequence[int] | None = None,
        **kwargs,
    ) -> None:
        super().__init__()
        import timm
        import torch

        if not timm.is_model(name):
            raise ValueError(f"unknown backbone {name!r}: not a timm model name (see timm.list_models())")
        output_stride = _check_output_stride(output_stride)
        if out_indices is None and feature_strides is not None:  # natural strides from a weightless copy
            try:
                with torch.device("meta"):
                    probe = timm.create_model(
                        name, features_only=True, pretrained=False, in_chans=in_channels, **kwargs
                    )
            except RuntimeError as err:
                raise ValueError(f"backbone {name!r} cannot return feature maps (timm features_only: {err})") from err
            natural = [int(level["reduction"]) for level in cast("FeatureInfo", probe.feature_info).info]
            out_indices = select_levels(natural, feature_strides, name=name)
            del probe
        options = {"features_only": True, "pretrained": pretrained, "in_chans": in_channels, **kwargs}
        if out_indices is not None:
            options["out_indices"] = tuple(out_indices)
        if output_stride != 32:
            options["output_stride"] = output_stride
        try:
            self.body = timm.create_model(name, **options)
        except (TypeError, AssertionError, ValueError) as err:
            if output_stride != 32 and ("output_stride" in str(err) or isinstance(err, AssertionError)):
                raise ValueError(
                    f"backbone {name!r} cannot give output_stride={output_stride} (timm: {err}); use 32"
                ) from err
            raise
        self.name, self.in_channels = name, in_channels
        info = cast("FeatureInfo", self.body.feature_info)  # features_only models carry one
        self.channels = list(info.channels())
        self.reductions = list(info.reduction())
        deepest = max(self.reductions)
        if output_stride < 32 and deepest > output_stride:
            raise ValueError(
                f"backbone {name!r} cannot give output_stride={output_stride}: its features have strides "
                f"{self.reductions}"
            )
        if multi_grid is not None:
            set_multi_grid(self.body, multi_grid)

    def forward(self, x: Tensor) -> list[Tensor]:
        out = self.body(x)
        return list(out.values()) if isinstance(out, dict) else list(out)


def set_multi_grid(body: nn.Module, grid: Sequence[int]) -> None:
    """Multiply the 3x3 dilation of ResNet ``layer4`` blocks ``i >= 1`` by ``grid[i % len(grid)]``.

    The first block keeps the previous stage's dilation, as in the official HamNet ResNet.
    """
    stage = getattr(body, "layer4", None)
    if stage is None or not all(hasattr(block, "conv2") for block in stage):
        raise ValueError("multi_grid needs a ResNet backbone with a 'layer4' stage of residual blocks")
    grid = [int(g) for g in grid]
    if not grid or any(g < 1 for g in grid):
        raise ValueError(f"multi_grid must be a non-empty sequence of positive ints, got {grid!r}")
    base = stage[-1].conv2.dilation[0]
    for i, block in enumerate(stage):
        if i == 0:
            continue
        conv = block.conv2
        d = base * grid[i % len(grid)]
        conv.dilation = (d, d)
        conv.padding = (d * (conv.kernel_size[0] // 2), d * (conv.kernel_size[1] // 2))


LOCAL_BACKBONES = {"tiny_convnet": TinyConvNet}


def create_backbone(
    name: str,
    *,
    in_channels: int = 3,
    out_indices: Sequence[int] | None = None,
    feature_strides: FeatureStrides = None,
    output_stride: int = 32,
    pretrained: bool = False,
    weights: str | None = None,
    **kwargs,
) -> TinyConvNet | TimmBackbone:
    """Build a backbone by name: ``"tiny_convnet"`` or any timm model name.

    ``weights`` is a local file (timm or torchvision key layout, ``.pth`` or ``.safetensors``)
    loaded into the backbone; ``pretrained=True`` downloads timm's weights instead.
    """
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    if pretrained and weights is not None:
        raise ValueError("give either pretrained=True (timm download) or weights=PATH (local file), not both")
    if name in LOCAL_BACKBONES:
        if pretrained:
            raise ValueError(f"backbone {name!r} has no pretrained weights; use pretrained=False")
        backbone: TinyConvNet | TimmBackbone = LOCAL_BACKBONES[name](
            in_channels,
            out_indices=out_indices,
            feature_strides=feature_strides,
            output_stride=output_stride,
            **kwargs,
        )
    else:
        backbone = TimmBackbone(
            name, in_channels=in_channels, out_indices=out_indices, feature_strides=feature_strides,
            output_stride=output_stride, pretrained=pretrained, **kwargs,
        )  # fmt: skip
    if weights is not None:
        from .weights import load_backbone_weights

        load_backbone_weights(backbone, weights)
    return backbone
