"""Contract of every registered model: shapes, gradients, determinism, compile, export, save/load."""

from __future__ import annotations

import json

import pytest
import torch

from hamburger.blocks import CONTEXT_BLOCKS
from hamburger.heads import list_heads
from hamburger.models import SegmentationModel, create_model, get_model_config, list_models

TINY = ["tiny_ham", "tiny_attention", "tiny_fcn"]
# reduced widths / depths so that every registered structure runs at 64x64 on CPU
SMALL = {
    "hamnet_resnet50": {"backbone_kwargs": {"layers": [1, 1, 1, 3]}, "ham_channels": 64, "channels": 32, "rank": 8},
    "hamnet_resnet101": {"backbone_kwargs": {"layers": [1, 1, 2, 3]}, "ham_channels": 64, "channels": 32, "rank": 8},
    "hamnet_mmseg_resnet101": {
        "backbone_kwargs": {"layers": [1, 1, 2, 1]},
        "ham_channels": 64,
        "channels": 32,
        "rank": 8,
        "aux_channels": 32,
    },
    "light_ham_mobilenetv2": {"backbone": "mobilenetv2_035", "ham_channels": 64, "channels": 64, "rank": 8},
    "light_ham_convnext_tiny": {"backbone": "convnext_atto", "ham_channels": 64, "channels": 64, "rank": 8},
}
NUM_CLASSES = 5


def _params(name):
    marks = () if name in TINY else (pytest.mark.slow,)
    return pytest.param(name, marks=marks)


ALL = [_params(n) for n in list_models()]
LIGHT_HAM = [_params(n) for n in list_models() if get_model_config(n).head == "light_ham"]


def _build(name: str, **kwargs) -> SegmentationModel:
    # no skip guard: a registry entry whose context block / head does not exist must FAIL here
    torch.manual_seed(0)
    return create_model(name, **{"num_classes": NUM_CLASSES, **SMALL.get(name, {}), **kwargs})


def test_registry_lists_the_named_models():
    names = list_models()
    for required in TINY + ["hamnet_resnet50", "hamnet_resnet101", "light_ham_mobilenetv2"]:
        assert required in names
    assert list_models("tiny_*") == sorted(TINY)
    assert names == sorted(names)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_names_registered_parts(name):
    # fast (no build): a broken entry fails in the default suite, not only in the slow contract tests
    config = get_model_config(name)
    assert config.context in CONTEXT_BLOCKS, f"{name}: context {config.context!r} not in {sorted(CONTEXT_BLOCKS)}"
    assert config.head in list_heads(), f"{name}: head {config.head!r} not in {list_heads()}"
    assert name in SMALL or name in TINY, f"{name}: add reduced sizes to SMALL so the contract tests can build it"


def test_tiny_models_differ_only_in_context_and_are_small():
    configs = {n: get_model_config(n).to_dict() for n in TINY}
    contexts = {n: c.pop("context") for n, c in configs.items()}
    versions = {n: c["hamburger"].pop("version") for n, c in configs.items()}  # Hamburger options only
    grads = {n: (c["hamburger"].pop("grad_mode"), c["hamburger"].pop("grad_steps")) for n, c in configs.items()}
    assert versions["tiny_ham"] == "v2+" and grads["tiny_ham"] == ("implicit", 3)
    assert contexts["tiny_ham"] == "hamburger" and contexts["tiny_fcn"] == "none"
    assert contexts["tiny_attention"] in ("sdpa", "self_attention")
    assert configs["tiny_ham"] == configs["tiny_attention"] == configs["tiny_fcn"]
    model = _build("tiny_ham", num_classes=11)
    assert model.backbone.reductions == [8] and model.head.classifier.out_channels == 11
    assert sum(p.numel() for p in model.parameters()) < 500_000


@pytest.mark.parametrize("name", ALL)
def test_forward_shapes_and_finite(name):
    model = _build(name)
    x = torch.randn(2, 3, 64, 48)
    for mode in (True, False):
        out = model.train(mode)(x)
        expected = {"out", "aux"} if get_model_config(name).aux_index is not None else {"out"}
        assert set(out) == expected
        for value in out.values():
            assert value.shape == (2, NUM_CLASSES, 64, 48)
            assert torch.isfinite(value).all()


@pytest.mark.parametrize("name", ALL)
def test_backward_reaches_every_parameter(name):
    model = _build(name).train()
    out = model(torch.randn(2, 3, 64, 64))
    torch.manual_seed(1)
    loss = sum((v * torch.randn_like(v)).mean() for v in out.values())
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} received no gradient"
        assert torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.head.context.parameters()) or not list(
        model.head.context.parameters()
    )


@pytest.mark.parametrize("name", ALL)
def test_eval_is_deterministic_and_batch_independent(name):
    model = _build(name).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        first, second, single = model(x)["out"], model(x)["out"], model(x[1:2])["out"]
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(first[1:2], single, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_torch_compile_matches_eager(name):
    model = _build(name).eval()
    x = torch.randn(1, 3, 64, 64)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x)["out"], model(x)["out"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", LIGHT_HAM)
def test_torch_export_matches_eager(name):
    model = _build(name).eval()
    x = torch.randn(1, 3, 64, 64)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x)["out"], model(x)["out"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_save_load_round_trip(name, tmp_path):
    model = _build(name).eval()
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["name"] == name and config["num_classes"] == NUM_CLASSES and config["weights"] is None
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = SegmentationModel.from_pretrained(str(tmp_path / "m")).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["out"], model(x)["out"], rtol=0, atol=0)
    assert loaded.config == model.config


def test_wrong_input_channels_raise():
    model = _build("tiny_ham")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(2, 1, 64, 64\)"):
        model(torch.randn(2, 1, 64, 64))
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(3, 64, 64))


def test_in_channels_override_builds_a_one_channel_model():
    model = _build("tiny_fcn", in_channels=1)
    assert model(torch.randn(1, 1, 32, 32))["out"].shape == (1, NUM_CLASSES, 32, 32)


def test_unknown_names_and_options_raise():
    with pytest.raises(ValueError, match="unknown model 'nope'.*tiny_ham"):
        create_model("nope")
    with pytest.raises(ValueError, match=r"unknown model option\(s\) \['rnak'\].*rank"):
        create_model("tiny_ham", rnak=3)
    with pytest.raises(ValueError, match="unknown context block"):
        create_model("tiny_ham", context="transformer")
    with pytest.raises(ValueError, match="unknown backbone 'not_a_net'"):
        create_model("tiny_ham", backbone="not_a_net")
    with pytest.raises(ValueError, match="no pretrained weights"):
        create_model("tiny_ham", pretrained=True)


def test_overrides_reach_the_head():
    model = _build("tiny_ham", rank=4, steps=3, eval_steps=5, grad_mode="bptt")
    ham = model.head.context.ham
    assert (ham.rank, ham.steps, ham.eval_steps, ham.grad_mode) == (4, 3, 5, "bptt")
    with pytest.raises(ValueError, match="grad_mode"):
        create_model("tiny_ham", grad_mode="sometimes")


def test_save_pretrained_needs_a_registry_model(tmp_path):
    model = _build("tiny_fcn")
    bare = SegmentationModel(model.backbone, model.head)
    with pytest.raises(ValueError, match="create_model"):
        bare.save_pretrained(tmp_path)


def test_from_pretrained_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        SegmentationModel.from_pretrained(tmp_path)
    model = _build("tiny_fcn")
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.safetensors"):
        SegmentationModel.from_pretrained(tmp_path)


def test_from_pretrained_accepts_shape_preserving_overrides(tmp_path):
    model = _build("tiny_ham")
    model.save_pretrained(tmp_path)
    loaded = SegmentationModel.from_pretrained(tmp_path, eval_steps=9)
    assert loaded.head.context.ham.eval_steps == 9


def test_predict_returns_class_indices():
    model = _build("tiny_fcn").eval()
    pred = model.predict(torch.randn(2, 3, 32, 32))
    assert pred.shape == (2, 32, 32) and pred.dtype == torch.int64
    assert int(pred.max()) < NUM_CLASSES


def test_importing_models_does_not_import_heavy_dependencies():
    import subprocess
    import sys

    heavy = "('timm', 'safetensors', 'torchvision')"
    code = f"import sys, hamburger.models; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
