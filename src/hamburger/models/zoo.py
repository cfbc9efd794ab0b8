"""Named model configurations (each entry is a ``ModelConfig``; see docs/models.md for sources).

* ``tiny_*``: CPU-sized models for the embedded Fashion-MNIST scenes (64x64, 11 classes); the
  three differ only in the context block (Hamburger NMF, SDPA attention, none).
* ``hamnet_resnet{50,101}``: the official VOC HamNet (``seg/HamNet``): deep-stem ResNet at output
  stride 8 with multi-grid (1, 2, 4), 3x3 squeeze 2048->512, Hamburger V2 (NMF, d=512, r=64, K=6),
  3x3 align 512->256, no auxiliary head, BatchNorm.
* ``hamnet_mmseg_resnet101``: the official mmseg ADE20K HamNet (``seg_mm``): ResNetV1c-101 OS8,
  GroupNorm head with ``concat_input``, V1 structure, auxiliary FCN head on stage 3.
* ``light_ham_*``: the Light-Ham / SegNeXt head on stages at strides 8, 16, 32, GroupNorm, and the gradient
  through every solver step (``grad_mode="bptt"``) as the official Light-Ham head trains (its ``no_grad`` is
  commented out); the one-step gradient has no cross-token part (docs/results.md).
"""

from __future__ import annotations

from ..blocks import HamOptions
from .config import ModelConfig
from .registry import register_model

_TINY = ModelConfig(
    backbone="tiny_convnet", num_classes=11, backbone_kwargs={"widths": [16, 48, 128], "depth": [1, 2, 2]},
    head="light_ham", channels=64, ham_channels=64, norm_layer="batch",
    hamburger=HamOptions(rank=16, steps=6, eval_steps=7),
)  # fmt: skip
_HAMNET_VOC = ModelConfig(
    num_classes=21, output_stride=8, multi_grid=(1, 2, 4), head="ham", channels=256, ham_channels=512,
    kernel_size=3, norm_layer="batch", hamburger=HamOptions(rank=64, steps=6, eval_steps=6, version="v2"),
    align_corners=True,
)  # fmt: skip
_LIGHT_HAM = ModelConfig(
    num_classes=150, head="light_ham", norm_layer="group", feature_strides=(8, 16, 32),
    hamburger=HamOptions(grad_mode="bptt"),
)  # fmt: skip


@register_model
def tiny_ham() -> ModelConfig:
    """Tiny conv net (stride 8, 128 ch) + Light-Ham head (64 wide, BatchNorm, NMF rank 16); ~0.26M params.

    Trains with the implicit (fixed-point) gradient, 3 Neumann terms: on the context scenes it matches BPTT and
    more than doubles the FCN's mIoU, where the one-step gradient (no cross-token part) gains far less
    (benchmarks/results/variant_study, docs/results.md).

    Uses the V2+ Hamburger (zero-initialised gate on the ham branch, the official ``ZERO_HAM``): in
    short CPU runs the V1 block, which adds the normalised low-rank branch at full weight from the first
    step, trained slower than no context at all (figures: docs/benchmark-results.md, "Model zoo figures").
    """
    return _TINY.replace(context="hamburger", version="v2+", grad_mode="implicit", grad_steps=3)


@register_model
def tiny_attention() -> ModelConfig:
    """``tiny_ham`` with the Hamburger swapped for multi-head SDPA self-attention."""
    return _TINY.replace(context="sdpa")


@register_model
def tiny_fcn() -> ModelConfig:
    """``tiny_ham`` without a context block (identity): the plain FCN baseline."""
    return _TINY.replace(context="none")


@register_model
def hamnet_resnet50() -> ModelConfig:
    """Official VOC HamNet on a deep-stem ResNet-50 (timm ``resnet50s``), output stride 8."""
    return _HAMNET_VOC.replace(backbone="resnet50s")


@register_model
def hamnet_resnet101() -> ModelConfig:
    """Official VOC HamNet (the paper's PASCAL VOC test model) on a deep-stem ResNet-101 (timm ``resnet101s``)."""
    return _HAMNET_VOC.replace(backbone="resnet101s")


@register_model
def hamnet_mmseg_resnet101() -> ModelConfig:
    """Official mmseg ADE20K HamNet: ResNetV1c-101 (timm ``resnet101c``) OS8, GN head, aux FCN."""
    return _HAMNET_VOC.replace(
        backbone="resnet101c", num_classes=150, feature_strides=(16, 32), multi_grid=None, channels=512,
        concat_input=True, norm_layer="group", version="v1", eval_steps=7, aux_index=0, align_corners=False,
    )  # fmt: skip


@register_model
def light_ham_mobilenetv2() -> ModelConfig:
    """Light-Ham-D256 head (256 wide, rank 16) on MobileNetV2 (timm ``mobilenetv2_100``)."""
    return _LIGHT_HAM.replace(backbone="mobilenetv2_100", channels=256, ham_channels=256, rank=16)


@register_model
def light_ham_convnext_tiny() -> ModelConfig:
    """Light-Ham head (512 wide, rank 64, as for VAN-B/L) on ConvNeXt-T stages 2-4."""
    return _LIGHT_HAM.replace(backbone="convnext_tiny")
