"""Every official ham option survives conversion (issue 10), the rank is never guessed, bad tensors are errors."""

from __future__ import annotations

import json

import pytest
import torch
from test_convert import hamnet_state, light_ham_state

from hamburger.blocks import HamOptions
from hamburger.heads import HamHead, LightHamHead
from hamburger.models import SegmentationModel, create_model
from hamburger.models.convert import convert_state_dict, ham_kwargs_to_options, main, read_mmseg_config

_VOC_NAMES = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}


def _vq_hamnet_checkpoint(path):
    """A VOC HamNet VQ checkpoint (lower bread without the NMF ReLU) on a 1-block ResNet-18, as train.py saves it."""
    timm = pytest.importorskip("timm")
    body = timm.create_model("resnet18", layers=[1, 1, 1, 1], features_only=True, out_indices=(4,))
    sd = hamnet_state("v2", c_in=512)
    sd["module.hamburger.lower_bread.weight"] = sd.pop("module.hamburger.lower_bread.0.weight")
    sd["module.hamburger.lower_bread.bias"] = sd.pop("module.hamburger.lower_bread.0.bias")
    for key, value in body.state_dict().items():
        top, rest = key.split(".", 1)
        sd[f"module.backbone.{_VOC_NAMES[top]}.{rest}"] = value
    torch.save({"net": sd, "step": 100}, path)
    return sd


def _grads(head, features):
    features = [f.clone().requires_grad_(True) for f in features]
    out = head(features)
    out.square().sum().backward()
    return out.detach(), [f.grad for f in features]


def test_vq_checkpoint_with_model_writes_a_vq_model_with_its_inv_temp(tmp_path):
    _vq_hamnet_checkpoint(tmp_path / "vq.pth")
    kwargs = '{"HAM_TYPE": "VQ", "MD_R": 8, "TRAIN_STEPS": 6, "EVAL_STEPS": 6, "INV_T": 10, "BETA": 0.1, "ETA": 0.8}'
    args = [str(tmp_path / "vq.pth"), str(tmp_path / "model"), "--ham-kwargs", kwargs, "--model", "hamnet_resnet50",
            "--set", 'backbone="resnet18"', "--set", 'backbone_kwargs={"layers": [1, 1, 1, 1]}']  # fmt: skip
    assert main(args) == 0
    config = json.loads((tmp_path / "model" / "config.json").read_text())["hamburger"]
    expected = HamOptions(
        ham="vq", rank=8, steps=6, eval_steps=6, inv_temp=10.0, momentum=0.8, grad_mode="one_step", version="v2"
    )
    assert config == expected.to_dict()  # VQ stays VQ, INV_T kept, the VOC one-step gradient
    model = SegmentationModel.from_pretrained(tmp_path / "model").eval()
    reference = HamHead([512], 21, channels=32, ham_channels=64, kernel_size=3, norm_layer="batch", ham=expected)
    reference.load_state_dict(model.head.state_dict())
    reference.eval()
    x = [torch.rand(2, 512, 9, 7, dtype=torch.float32)]
    out, grads = _grads(model.head, x)
    ref_out, ref_grads = _grads(reference, x)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=0)
    torch.testing.assert_close(grads[0], ref_grads[0], rtol=0, atol=0)
    nmf_like = HamHead([512], 21, channels=32, ham_channels=64, norm_layer="batch", ham=expected.replace(inv_temp=1.0))
    nmf_like.load_state_dict(model.head.state_dict())
    assert not torch.allclose(nmf_like.eval()(x), out)  # the temperature matters: dropping it would be caught


def test_light_ham_checkpoint_with_model_runs_bptt_like_the_official_head(tmp_path):
    tiny = create_model("tiny_ham")
    torch.save(tiny.backbone.state_dict(), tmp_path / "backbone.pth")
    sd = light_ham_state(in_channels=(128,), ham=64, channels=64, classes=11)
    torch.save({"state_dict": sd}, tmp_path / "segnext.pth")
    args = [str(tmp_path / "segnext.pth"), str(tmp_path / "model"), "--ham-kwargs",
            '{"MD_S": 1, "MD_R": 16, "train_steps": 6, "eval_steps": 7, "inv_t": 100, "rand_init": true}',
            "--model", "tiny_ham", "--set", f'weights="{tmp_path / "backbone.pth"}"']  # fmt: skip
    assert main(args) == 0
    model = SegmentationModel.from_pretrained(tmp_path / "model").eval()
    expected = HamOptions(rank=16, steps=6, eval_steps=7, grad_mode="bptt")  # NMF: inv_t ignored
    assert model.config["hamburger"] == expected.to_dict()
    x = [torch.rand(2, 128, 9, 7)]
    out, grads = _grads(model.head, x)
    for grad_mode, same in (("bptt", True), ("one_step", False)):
        ref = LightHamHead([128], 11, channels=64, ham_channels=64, ham=expected.replace(grad_mode=grad_mode))
        ref.load_state_dict(model.head.state_dict())
        ref_out, ref_grads = _grads(ref.eval(), x)
        torch.testing.assert_close(out, ref_out, rtol=0, atol=0)  # forward is the same, the gradient is not
        assert torch.allclose(grads[0], ref_grads[0], rtol=1e-5, atol=1e-7) is same
    image = torch.rand(1, 3, 67, 53)
    assert model(image)["out"].shape == (1, 11, 67, 53)


def test_official_ham_kwargs_translate_into_complete_options():
    cd = ham_kwargs_to_options(
        {"HAM_TYPE": "CD", "MD_S": 2, "MD_R": 32, "TRAIN_STEPS": 5, "EVAL_STEPS": 8, "INV_T": 10, "BETA": 0.01,
         "ETA": 0.7, "RAND_INIT": False, "SPATIAL": True, "DUAL": False},
        source="hamnet",
    )  # fmt: skip
    assert cd == HamOptions(
        ham="cd", groups=2, rank=32, steps=5, eval_steps=8, inv_temp=10.0, ridge=0.01, momentum=0.7, init="online"
    )
    voc = ham_kwargs_to_options({"MD_R": 64}, source="hamnet")
    assert (voc.grad_mode, voc.eval_steps, voc.inv_temp) == ("one_step", 6, None)  # VOC settings.py
    light = ham_kwargs_to_options({"MD_R": 64, "INV_T": 100}, source="light_ham")
    assert (light.grad_mode, light.eval_steps) == ("bptt", 7)
    vq = ham_kwargs_to_options({"HAM_TYPE": "vq", "MD_R": 8}, source="hamnet")
    assert vq.inv_temp == 100.0  # the official default INV_T
    with pytest.raises(ValueError, match="NMF only"):
        ham_kwargs_to_options({"HAM_TYPE": "VQ", "MD_R": 8}, source="light_ham")
    with pytest.raises(ValueError, match="SPATIAL"):
        ham_kwargs_to_options({"MD_R": 8, "SPATIAL": False}, source="hamnet")
    with pytest.raises(ValueError, match="MD_R must be an int >= 1"):
        ham_kwargs_to_options({"MD_R": 0})


def test_the_rank_is_required_not_guessed(tmp_path, capsys):
    torch.save({"state_dict": light_ham_state()}, tmp_path / "segnext_b.pth")
    assert main([str(tmp_path / "segnext_b.pth"), str(tmp_path / "out"), "--in-channels", "16,24,32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MD_R" in err and "--ham-kwargs" in err and "--mmseg-config" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="MD_R"):
        convert_state_dict(light_ham_state(), in_channels=[16, 24, 32])


def test_the_rank_is_read_from_an_mmseg_config_without_executing_it(tmp_path, capsys):
    marker = tmp_path / "marker"
    config = tmp_path / "segnext_mscan-t_ade20k.py"
    config.write_text(
        f"import os\nos.system('touch {marker}')\n_base_ = ['../_base_/default_runtime.py']\n"
        "ham_norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)\n"
        "model = dict(\n    decode_head=dict(type='LightHamHead', in_channels=[16, 24, 32], in_index=[1, 2, 3],\n"
        "        channels=64, ham_channels=64, num_classes=7, norm_cfg=ham_norm_cfg,\n"
        "        ham_kwargs=dict(MD_S=1, MD_R=16, train_steps=6, eval_steps=7, inv_t=100, rand_init=True)))\n"
    )
    parsed = read_mmseg_config(config)
    assert parsed.ham_kwargs == {"MD_S": 1, "MD_R": 16, "train_steps": 6, "eval_steps": 7, "inv_t": 100,
                                 "rand_init": True}  # fmt: skip
    assert parsed.head == {"in_channels": [16, 24, 32], "channels": 64, "ham_channels": 64, "num_classes": 7}
    torch.save({"state_dict": light_ham_state()}, tmp_path / "segnext_t.pth")
    assert main([str(tmp_path / "segnext_t.pth"), str(tmp_path / "out"), "--mmseg-config", str(config)]) == 0
    meta = json.loads((tmp_path / "out" / "conversion.json").read_text())
    assert meta["hamburger"]["rank"] == 16 and meta["head_kwargs"]["in_channels"] == [16, 24, 32]
    assert not marker.exists()
    wrong = tmp_path / "other.py"
    wrong.write_text(config.read_text().replace("channels=64, ham_channels=64", "channels=256, ham_channels=256"))
    assert main([str(tmp_path / "segnext_t.pth"), str(tmp_path / "o2"), "--mmseg-config", str(wrong)]) == 2
    capsys.readouterr()
    base = tmp_path / "inherits.py"
    base.write_text("_base_ = ['./segnext_mscan-t_ade20k.py']\nmodel = dict(decode_head=dict(num_classes=7))\n")
    assert main([str(tmp_path / "segnext_t.pth"), str(tmp_path / "o3"), "--mmseg-config", str(base)]) == 2
    err = capsys.readouterr().err
    assert "no ham_kwargs" in err and "--ham-kwargs" in err and err.count("\n") == 1


def _nan(sd):
    sd["decode_head.squeeze.conv.weight"][0, 0] = float("nan")


def _zero_channels(sd):
    sd["decode_head.align.conv.weight"] = torch.zeros(0, 64, 1, 1)


def _no_gn_weight(sd):
    del sd["decode_head.hamburger.ham_out.gn.weight"]


def _no_squeeze_gn_weight(sd):
    del sd["decode_head.squeeze.gn.weight"]


def _wrong_shape(sd):
    sd["decode_head.hamburger.ham_in.conv.weight"] = torch.randn(64, 32, 1, 1)


@pytest.mark.parametrize(
    ("broken", "kwargs", "message"),
    [
        (None, '{"MD_R": 0}', "MD_R must be an int >= 1"),
        (_zero_channels, '{"MD_R": 16}', "align weight has shape"),
        (_nan, '{"MD_R": 16}', "non-finite"),
        (_no_gn_weight, '{"MD_R": 16}', "ham_out.gn.weight"),
        (_no_squeeze_gn_weight, '{"MD_R": 16}', "squeeze.gn.weight"),
        (_wrong_shape, '{"MD_R": 16}', "does not fit"),
    ],
    ids=["rank0", "channels0", "nan", "missing-gn-weight", "missing-squeeze-gn", "wrong-shape"],
)
def test_bad_checkpoints_are_one_line_errors(tmp_path, capsys, broken, kwargs, message):
    sd = light_ham_state()
    if broken is not None:
        broken(sd)
    torch.save({"state_dict": sd}, tmp_path / "bad.pth")
    args = [str(tmp_path / "bad.pth"), str(tmp_path / "out"), "--ham-kwargs", kwargs, "--in-channels", "16,24,32"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("hamburger convert: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
