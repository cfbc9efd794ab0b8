"""SegmentationModel: backbone -> head (+ auxiliary head), logits upsampled to the input size.

Follows torchvision's ``_SimpleSegmentationModel``: the model returns a dict, and the loss lives
in the recipe (``out`` + weighted ``aux``), never in the model.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..heads import FCNHead, get_head
from .backbones import FeatureStrides, create_backbone
from .config import ModelConfig
from .hub import read_pretrained, write_pretrained

__all__ = ["SegmentationModel", "aligned_size", "build_model", "from_pretrained", "save_pretrained"]


def aligned_size(size: int, divisor: int, *, align_corners: bool = False) -> int:
    """The smallest input length ``>= size`` at which a stride-``divisor`` model's logits line up with the pixels.

    With ``align_corners=False`` (half-pixel upsampling) that is a multiple of ``divisor``: ``n * s`` pixels
    give ``n`` feature cells of exactly ``s`` pixels each. With ``align_corners=True`` (corner-aligned
    upsampling, official VOC HamNet) it is ``n * s + 1``: the ``n + 1`` feature cells sit on pixels
    ``0, s, ..., n * s``, the DeepLab convention behind crops such as 513 and 769. Any other length stretches the
    upsampled logits by a factor that is not ``s`` and shifts them by an amount that grows across the image.
    """
    if align_corners:
        return -(-max(size - 1, 0) // divisor) * divisor + 1
    return -(-size // divisor) * divisor


class SegmentationModel(nn.Module):
    """Backbone + decode head (+ optional auxiliary head).

    Args:
        backbone: maps images to a list of feature maps; its ``in_channels`` attribute, when
            present, is checked against the input.
        head: maps the feature list to logits (``HamHead``, ``LightHamHead``, ...).
        aux_head: optional second head on the same features (the auxiliary FCN loss).
        align_corners: of the final bilinear upsampling (official VOC HamNet: True).

    Shape:
        ``x``: ``(B, in_channels, H, W)``; returns ``{"out": (B, num_classes, H, W)}`` plus
        ``"aux"`` of the same shape when ``aux_head`` is given. The logits line up with the pixels when
        ``H`` and ``W`` are :func:`aligned <aligned_size>` to :attr:`output_stride` (a multiple of it, or a
        multiple plus one with ``align_corners=True``); :meth:`predict` and the recipe's inference pad to such
        a size and crop the logits back, so callers of those need not care.
    """

    def __init__(
        self, backbone: nn.Module, head: nn.Module, aux_head: nn.Module | None = None, *, align_corners: bool = False
    ) -> None:
        super().__init__()
        self.backbone, self.head, self.aux_head = backbone, head, aux_head
        self.align_corners = bool(align_corners)
        self.config: dict[str, Any] | None = None  # set by create_model; used by save_pretrained

    @property
    def output_stride(self) -> int | None:
        """Stride of the coarsest feature map the backbone returns (``max(backbone.reductions)``), e.g. 8 for the
        dilated HamNet ResNets and ``tiny_*``, 32 for Light-Ham on stages 2-4.

        Inputs padded to a multiple of it (see :func:`aligned_size`) give logits aligned with the pixels. ``None``
        when the backbone does not declare ``reductions``; inference then falls back to 32.
        """
        reductions = getattr(self.backbone, "reductions", None)
        if not reductions:
            return None
        return int(max(reductions))

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        expected = getattr(self.backbone, "in_channels", None)
        if x.dim() != 4 or (expected is not None and x.shape[1] != expected):
            c = expected if expected is not None else "C"
            raise ValueError(f"x must have shape (B, {c}, H, W), got {tuple(x.shape)}")

    def _resize(self, logits: Tensor, size: tuple[int, int]) -> Tensor:
        if tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        self._check_input(x)
        size = (x.shape[-2], x.shape[-1])
        features = self.backbone(x)
        if isinstance(features, Tensor):
            features = [features]
        elif isinstance(features, dict):
            features = list(features.values())
        result = {"out": self._resize(self.head(features), size)}
        if self.aux_head is not None:
            result["aux"] = self._resize(self.aux_head(features), size)
        return result

    def predict(self, x: Tensor) -> Tensor:
        """Class index per pixel, ``(B, H, W)``, of a normalised batch ``x`` at any ``H`` x ``W``.

        Runs in eval mode under ``torch.inference_mode`` whatever the module's mode, and restores ``.training``
        afterwards: BatchNorm statistics are not updated, dropout is off, and two calls give the same result.
        ``x`` is zero-padded at the bottom/right to a size :func:`aligned <aligned_size>` to
        :attr:`output_stride` (32 when unknown) and the logits are cropped back to ``H`` x ``W``.
        """
        self._check_input(x)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                h, w = x.shape[-2:]
                divisor = self.output_stride or 32
                hp = aligned_size(h, divisor, align_corners=self.align_corners)
                wp = aligned_size(w, divisor, align_corners=self.align_corners)
                if (hp, wp) != (h, w):
                    x = F.pad(x, (0, wp - w, 0, hp - h))
                return self.forward(x)["out"][..., :h, :w].argmax(dim=1)
        finally:
            self.train(was_training)

    # ---------------------------------------------------------------- save / load (safetensors)
    def save_pretrained(self, directory: str | os.PathLike, *, card: Mapping[str, Any] | None = None) -> None:
        """Write ``model.safetensors``, ``config.json`` and a ``README.md`` model card to ``directory`` (one atomic
        folder); ``card`` adds what is known: ``training_data``, ``recipe``, ``scores``, ``license``."""
        save_pretrained(self, directory, card=card)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **overrides: Any) -> SegmentationModel:
        """Rebuild a model saved by :meth:`save_pretrained` (a directory, or a hub id online), in eval mode."""
        return from_pretrained(name_or_path, **overrides)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool = False,
        token: str | None = None,
        revision: str | None = None,
        card: Mapping[str, Any] | None = None,
    ) -> str:
        """Upload ``save_pretrained``'s files (with the model card ``card``) to the Hugging Face Hub (needs
        huggingface_hub); ``revision`` is the branch to commit to (created from the default branch if missing;
        None: the default branch)."""
        try:
            from huggingface_hub import HfApi
        except ImportError as err:
            raise ImportError("push_to_hub needs huggingface_hub (pip install huggingface_hub)") from err
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(os.path.join(tmp, "model"), card=card)
            info = api.upload_folder(
                repo_id=repo_id, folder_path=os.path.join(tmp, "model"), commit_message="Upload hamburger model",
                revision=revision,
            )  # fmt: skip
        return str(info)


def _head_kwargs(config: ModelConfig, head_cls: type) -> dict[str, Any]:
    """The config fields that ``head_cls``'s constructor names (``in_index=None`` means the head's default)."""
    params = inspect.signature(head_cls).parameters
    kwargs: dict[str, Any] = {}
    for name in ModelConfig.HEAD_FIELDS:
        value = getattr(config, name)
        if name in params and not (name == "in_index" and value is None):
            kwargs[name] = value
    if "ham" in params:
        kwargs["ham"] = config.hamburger
    return kwargs


def build_model(config: ModelConfig, *, pretrained: bool = False) -> SegmentationModel:
    """Instantiate the backbone, head and auxiliary head described by ``config``."""
    head_cls = get_head(config.head)
    backbone_kwargs = dict(config.backbone_kwargs)
    if config.multi_grid is not None:
        backbone_kwargs["multi_grid"] = config.multi_grid
    strides: FeatureStrides = "deepest" if config.feature_strides is None else config.feature_strides
    backbone = create_backbone(
        config.backbone, in_channels=config.in_channels, out_indices=config.out_indices,
        feature_strides=strides, output_stride=config.output_stride, pretrained=pretrained,
        weights=config.weights, **backbone_kwargs,
    )  # fmt: skip
    channels = backbone.channels
    head = head_cls(channels, config.num_classes, **_head_kwargs(config, head_cls))
    aux_head = None
    if config.aux_index is not None:
        aux_head = FCNHead(
            channels, config.num_classes, in_index=config.aux_index, channels=config.aux_channels,
            norm_layer=config.norm_layer, act_layer=config.act_layer,
        )  # fmt: skip
    return SegmentationModel(backbone, head, aux_head, align_corners=config.align_corners)


def save_pretrained(
    model: SegmentationModel, directory: str | os.PathLike, *, card: Mapping[str, Any] | None = None
) -> None:
    """Save a model built by ``create_model`` to ``directory`` (created if needed; replaced as a whole).

    The folder holds ``model.safetensors``, ``config.json`` and a ``README.md`` model card (architecture and ham
    options from the config; ``card`` adds what is known: ``training_data``, ``recipe``, ``scores`` (a mapping of
    metric to value), ``license``, ``description``; other keys are listed as given).
    """
    if not isinstance(model, SegmentationModel) or model.config is None:
        raise ValueError(
            "save_pretrained needs a SegmentationModel built by hamburger.models.create_model (it stores the "
            "config); for a hand-built model save model.state_dict() with torch.save"
        )
    write_pretrained(directory, model.state_dict(), model.config, card=card)


def from_pretrained(name_or_path: str | os.PathLike, **overrides: Any) -> SegmentationModel:
    """Rebuild and load a model written by :func:`save_pretrained`.

    ``overrides`` change config fields that do not alter the weights' shapes (e.g.
    ``eval_steps=10``, ``grad_mode="bptt"``). Weights that do not fit the config raise ``ValueError``. The model
    is returned in eval mode (as Hugging Face's ``from_pretrained`` does); call ``.train()`` to fine-tune it.
    """
    name, config, state = read_pretrained(name_or_path)
    config = config.replace(**overrides)
    model = build_model(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"the weights in {str(name_or_path)!r} do not belong to its config.json: {err}") from err
    model.config = {"name": name, **config.to_dict(), "weights": None}
    return model.eval()
