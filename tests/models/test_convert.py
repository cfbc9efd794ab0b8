"""Checkpoint conversion: official key names and shapes in, the same function out.

The official heads are re-implemented here in plain functional PyTorch, straight from the
structure of mmseg's ``ham_head.py`` (``LightHamHead``, ``HamHead``) and Enjoy-Hamburger's
``seg/HamNet`` (``ConvBNReLU``, ``HamburgerV1/V2/V2+``, ``NMF2D``), and fed the same weights and
initial dictionary as the converted head.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from hamburger.blocks import HamOptions
from hamburger.models.convert import convert_state_dict, detect_source, ham_kwargs_to_options, main
from hamburger.solvers._init import draw_bases

torch.set_default_dtype(torch.float32)


# ----------------------------------------------------------------- official structure, functional
def conv_module(sd, name, x, *, norm, act=True, padding=0):
    """mmcv ConvModule / official ConvBNReLU: conv (bias only without norm) -> norm -> ReLU."""
    x = F.conv2d(x, sd[f"{name}.conv.weight"], sd.get(f"{name}.conv.bias"), padding=padding)
    if norm == "gn":
        x = F.group_norm(x, 32, sd[f"{name}.gn.weight"], sd[f"{name}.gn.bias"], eps=1e-5)
    elif norm == "bn":
        bn = [sd[f"{name}.bn.{k}"] for k in ("running_mean", "running_var", "weight", "bias")]
        x = F.batch_norm(x, *bn, training=False, eps=1e-5)
    return F.relu(x) if act else x


def nmf2d(x, bases, steps):
    """Official NMF2D: softmax init of the codes, ``steps`` MU steps, one more code update."""
    b, c, h, w = x.shape
    x = x.view(b, c, h * w)
    coef = F.softmax(torch.bmm(x.transpose(1, 2), bases), dim=-1)
    for _ in range(steps + 1):
        coef = coef * torch.bmm(x.transpose(1, 2), bases) / (coef.bmm(bases.transpose(1, 2).bmm(bases)) + 1e-6)
        if _ == steps:
            break
        bases = bases * torch.bmm(x, coef) / (bases.bmm(coef.transpose(1, 2).bmm(coef)) + 1e-6)
    return torch.bmm(bases, coef.transpose(1, 2)).view(b, c, h, w)


def official_light_ham(sd, feats, bases, steps):
    p = "decode_head."
    feats = [feats[0]] + [F.interpolate(f, size=feats[0].shape[2:], mode="bilinear") for f in feats[1:]]
    x = conv_module(sd, p + "squeeze", torch.cat(feats, dim=1), norm="gn")
    enjoy = F.relu(F.conv2d(x, sd[p + "hamburger.ham_in.conv.weight"], sd[p + "hamburger.ham_in.conv.bias"]))
    enjoy = conv_module(sd, p + "hamburger.ham_out", nmf2d(enjoy, bases, steps), norm="gn", act=False)
    out = conv_module(sd, p + "align", F.relu(x + enjoy), norm="gn")
    return F.conv2d(out, sd[p + "conv_seg.weight"], sd[p + "conv_seg.bias"])


def official_mmseg_ham(sd, x, bases, steps):
    p = "decode_head."
    feats = conv_module(sd, p + "squeeze", x, norm="gn", padding=1)
    enjoy = F.relu(F.conv2d(feats, sd[p + "ham_in.conv.weight"], sd[p + "ham_in.conv.bias"]))
    enjoy = conv_module(sd, p + "ham_out", nmf2d(enjoy, bases, steps), norm="gn", act=False)
    out = conv_module(sd, p + "align", F.relu(feats + enjoy), norm="gn", padding=1)
    out = conv_module(sd, p + "conv_cat", torch.cat([x, out], dim=1), norm="gn", padding=1)
    return F.conv2d(out, sd[p + "conv_seg.weight"], sd[p + "conv_seg.bias"])


def official_fcn(sd, x):
    out = conv_module(sd, "auxiliary_head.convs.0", x, norm="gn", padding=1)
    return F.conv2d(out, sd["auxiliary_head.conv_seg.weight"], sd["auxiliary_head.conv_seg.bias"])


def official_hamnet_head(sd, x, bases, steps, version):
    x = conv_module(sd, "squeeze", x, norm="bn", padding=1)
    enjoy = F.relu(F.conv2d(x, sd["hamburger.lower_bread.0.weight"], sd["hamburger.lower_bread.0.bias"]))
    enjoy = nmf2d(enjoy, bases, steps)
    if version == "v1":
        enjoy = F.conv2d(enjoy, sd["hamburger.upper_bread.0.weight"])
        bn = [sd[f"hamburger.upper_bread.1.{k}"] for k in ("running_mean", "running_var", "weight", "bias")]
        enjoy = F.batch_norm(enjoy, *bn, training=False, eps=1e-5)
    else:
        enjoy = F.conv2d(conv_module(sd, "hamburger.cheese", enjoy, norm="bn"), sd["hamburger.upper_bread.weight"])
    if version == "v2+":
        out = F.relu(sd["hamburger.coef_ham"] * enjoy + sd["hamburger.coef_shortcut"] * x)
    else:
        out = F.relu(x + enjoy)
    out = conv_module(sd, "align", out, norm="bn", padding=1)
    return F.conv2d(out, sd["fc.1.weight"], sd["fc.1.bias"])


# ----------------------------------------------------------------- official state_dicts
def _conv_module_sd(prefix, c_in, c_out, k, norm, bias=False):
    sd = {f"{prefix}.conv.weight": torch.randn(c_out, c_in, k, k) / (c_in * k * k) ** 0.5}
    if bias:
        sd[f"{prefix}.conv.bias"] = torch.randn(c_out) * 0.1
    if norm:
        sd[f"{prefix}.{norm}.weight"] = 1 + 0.1 * torch.randn(c_out)
        sd[f"{prefix}.{norm}.bias"] = 0.1 * torch.randn(c_out)
    if norm == "bn":
        sd[f"{prefix}.bn.running_mean"] = 0.1 * torch.randn(c_out)
        sd[f"{prefix}.bn.running_var"] = 0.5 + torch.rand(c_out)
        sd[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(100)
    return sd


def light_ham_state(in_channels=(16, 24, 32), ham=64, channels=64, classes=7):
    p = "decode_head."
    sd = _conv_module_sd(p + "squeeze", sum(in_channels), ham, 1, "gn")
    sd |= _conv_module_sd(p + "hamburger.ham_in", ham, ham, 1, None, bias=True)
    sd |= _conv_module_sd(p + "hamburger.ham_out", ham, ham, 1, "gn")
    sd |= _conv_module_sd(p + "align", ham, channels, 1, "gn")
    sd[p + "conv_seg.weight"], sd[p + "conv_seg.bias"] = torch.randn(classes, channels, 1, 1), torch.randn(classes)
    sd["backbone.patch_embed1.proj.weight"] = torch.randn(8, 3, 7, 7)  # MSCAN: not a timm model
    return sd


def mmseg_ham_state(c_in=96, ham=64, channels=32, classes=5):
    p = "decode_head."
    sd = _conv_module_sd(p + "squeeze", c_in, ham, 3, "gn")
    sd |= _conv_module_sd(p + "ham_in", ham, ham, 1, None, bias=True)
    sd |= _conv_module_sd(p + "ham_out", ham, ham, 1, "gn")
    sd |= _conv_module_sd(p + "align", ham, channels, 3, "gn")
    sd |= _conv_module_sd(p + "conv_cat", c_in + channels, channels, 3, "gn")
    sd[p + "conv_seg.weight"], sd[p + "conv_seg.bias"] = torch.randn(classes, channels, 1, 1), torch.randn(classes)
    sd |= _conv_module_sd("auxiliary_head.convs.0", 48, 32, 3, "gn")
    sd["auxiliary_head.conv_seg.weight"] = torch.randn(classes, 32, 1, 1)
    sd["auxiliary_head.conv_seg.bias"] = torch.randn(classes)
    return sd


def hamnet_state(version, c_in=96, ham=64, channels=32, classes=21):
    sd = _conv_module_sd("squeeze", c_in, ham, 3, "bn")
    sd["hamburger.lower_bread.0.weight"] = torch.randn(ham, ham, 1, 1) / ham**0.5
    sd["hamburger.lower_bread.0.bias"] = 0.1 * torch.randn(ham)
    if version == "v1":
        sd["hamburger.upper_bread.0.weight"] = torch.randn(ham, ham, 1, 1) / ham**0.5
        norm = _conv_module_sd("x", 1, ham, 1, "bn")
        sd |= {k.replace("x.bn.", "hamburger.upper_bread.1."): v for k, v in norm.items() if k.startswith("x.bn.")}
    else:
        sd |= _conv_module_sd("hamburger.cheese", ham, ham, 1, "bn")
        sd["hamburger.upper_bread.weight"] = torch.randn(ham, ham, 1, 1) / ham**0.5
    if version == "v2+":
        sd["hamburger.coef_ham"], sd["hamburger.coef_shortcut"] = torch.tensor([0.3]), torch.tensor([0.9])
    sd |= _conv_module_sd("align", ham, channels, 3, "bn")
    sd["fc.1.weight"], sd["fc.1.bias"] = torch.randn(classes, channels, 1, 1), torch.randn(classes)
    return {f"module.{k}": v for k, v in sd.items()}  # saved from DataParallel


def _bases(batch, channels, rank):
    return draw_bases((1, channels, rank), distribution="uniform", fixed=True, dtype=torch.float64).repeat(batch, 1, 1)


def _double(sd):
    return {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}


# ----------------------------------------------------------------- tests
@pytest.mark.parametrize("ham_kwargs", [{"MD_R": 16, "EVAL_STEPS": 5}, {"MD_S": 1, "MD_R": 16, "eval_steps": 5}])
def test_light_ham_conversion_computes_the_official_function(ham_kwargs):
    sd = light_ham_state()
    conv = convert_state_dict(sd, ham_kwargs=ham_kwargs, in_channels=[16, 24, 32])
    assert conv.source == "light_ham" and conv.head == "light_ham"
    assert conv.unmatched == ["backbone.patch_embed1.proj.weight"]
    assert conv.options.rank == 16 and conv.options.eval_steps == 5 and conv.options.steps == 6
    assert conv.head_kwargs["norm_layer"] == "group" and conv.options.grad_mode == "bptt"
    head = conv.build_head().double().eval()
    feats = [torch.rand(2, 16, 8, 8), torch.rand(2, 24, 4, 4), torch.rand(2, 32, 2, 2)]
    feats = [f.double() for f in feats]
    expected = official_light_ham(_double(sd), feats, _bases(2, 64, 16), steps=5)
    with torch.no_grad():
        torch.testing.assert_close(head(feats), expected, rtol=1e-9, atol=1e-9)


def test_mmseg_ham_head_and_aux_conversion_compute_the_official_function():
    sd = mmseg_ham_state()
    conv = convert_state_dict({"meta": {}, "state_dict": sd}, ham_kwargs={"MD_R": 64})
    assert conv.options.grad_mode == "bptt" and conv.options.eval_steps == 7
    assert conv.source == "mmseg_ham" and conv.head_kwargs["concat_input"] and conv.head_kwargs["kernel_size"] == 3
    assert conv.unmatched == []
    head, aux = conv.build_head().double().eval(), conv.build_aux_head().double().eval()
    x, x3 = torch.rand(2, 96, 6, 6).double(), torch.rand(2, 48, 6, 6).double()
    with torch.no_grad():
        expected = official_mmseg_ham(_double(sd), x, _bases(2, 64, 64), 7)
        torch.testing.assert_close(head(x), expected, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(aux(x3), official_fcn(_double(sd), x3), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("version", ["v1", "v2", "v2+"])
def test_hamnet_voc_conversion_computes_the_official_function(version):
    sd = hamnet_state(version)
    conv = convert_state_dict(sd, ham_kwargs={"MD_R": 8, "TRAIN_STEPS": 6, "EVAL_STEPS": 6, "INV_T": 1, "ETA": 0.9})
    assert conv.source == "hamnet" and conv.options.version == version and conv.unmatched == []
    assert conv.options.grad_mode == "one_step" and conv.options.momentum == 0.9
    head = conv.build_head().double().eval()
    x = torch.rand(2, 96, 5, 7).double()
    official = {k[len("module.") :]: v for k, v in _double(sd).items()}
    with torch.no_grad():
        torch.testing.assert_close(
            head(x), official_hamnet_head(official, x, _bases(2, 64, 8), 6, version), rtol=1e-9, atol=1e-9
        )


def test_hamnet_backbone_keys_map_onto_timm_deep_stem_resnet():
    timm = pytest.importorskip("timm")
    body = timm.create_model("resnet50s", layers=[1, 1, 1, 1], features_only=True, out_indices=(4,))
    names = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    official = hamnet_state("v2")
    for key, value in body.state_dict().items():
        top, rest = key.split(".", 1)
        official[f"module.backbone.{names[top]}.{rest}"] = value
    conv = convert_state_dict(official, ham_kwargs={"MD_R": 8})
    assert conv.unmatched == []
    assert conv.part("backbone.body.").keys() == body.state_dict().keys()


def test_mmseg_resnet_v1c_backbone_keys_map_onto_timm():
    timm = pytest.importorskip("timm")
    body = timm.create_model("resnet50c", layers=[1, 1, 1, 1], features_only=True, out_indices=(3, 4))
    stem = {"conv1.0.": "stem.0.", "conv1.1.": "stem.1.", "conv1.3.": "stem.3.", "conv1.4.": "stem.4.",
            "conv1.6.": "stem.6.", "bn1.": "stem.7."}  # fmt: skip
    sd = mmseg_ham_state()
    for key, value in body.state_dict().items():
        prefix = next((p for p in stem if key.startswith(p)), None)
        sd["backbone." + (stem[prefix] + key[len(prefix) :] if prefix else key)] = value
    conv = convert_state_dict(sd, ham_kwargs={"MD_R": 64})
    assert conv.unmatched == []
    assert conv.part("backbone.body.").keys() == body.state_dict().keys()


def test_ham_kwargs_are_case_insensitive_and_validated():
    upper = ham_kwargs_to_options({"MD_S": 2, "MD_R": 32, "TRAIN_STEPS": 4, "EVAL_STEPS": 9, "RAND_INIT": False})
    lower = ham_kwargs_to_options({"md_s": 2, "md_r": 32, "train_steps": 4, "eval_steps": 9, "rand_init": False})
    expected = HamOptions(ham="nmf", groups=2, rank=32, steps=4, eval_steps=9, init="online", grad_mode="bptt")
    assert upper == lower == expected
    with pytest.raises(ValueError, match="MD_R"):
        ham_kwargs_to_options(None)
    with pytest.raises(ValueError, match="unknown ham_kwargs key 'MD_Q'"):
        ham_kwargs_to_options({"MD_Q": 1})
    with pytest.raises(ValueError, match="MD_D"):
        convert_state_dict(light_ham_state(), ham_kwargs={"MD_D": 128, "MD_R": 16})
    with pytest.raises(ValueError, match="sum to"):
        convert_state_dict(light_ham_state(), ham_kwargs={"MD_R": 16}, in_channels=[16, 24])


def test_online_bases_are_converted():
    sd = light_ham_state()
    sd["decode_head.hamburger.ham.bases"] = F.normalize(torch.rand(1, 64, 16), dim=1)
    conv = convert_state_dict(sd, ham_kwargs={"MD_R": 16, "RAND_INIT": False})
    head = conv.build_head()
    assert head.context.ham.init == "online"
    torch.testing.assert_close(head.context.ham.bases, sd["decode_head.hamburger.ham.bases"])


def test_detect_source_rejects_unknown_checkpoints():
    with pytest.raises(ValueError, match="cannot detect"):
        detect_source({"fc.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="source must be"):
        convert_state_dict(light_ham_state(), source="segformer")


def test_cli_writes_converted_files_and_reports_unmatched(tmp_path, capsys):
    torch.save({"state_dict": light_ham_state()}, tmp_path / "segnext.pth")
    code = main([str(tmp_path / "segnext.pth"), str(tmp_path / "out"), "--ham-kwargs", '{"md_r": 16}',
                 "--in-channels", "16,24,32"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "unmatched source keys: 1" in printed and "backbone.patch_embed1.proj.weight" in printed
    meta = json.loads((tmp_path / "out" / "conversion.json").read_text())
    assert meta["head"] == "light_ham" and meta["hamburger"]["rank"] == 16 and meta["hamburger"]["grad_mode"] == "bptt"
    assert (tmp_path / "out" / "converted.safetensors").is_file()
    assert main([str(tmp_path / "missing.pth"), str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "missing.pth" in err and err.count("\n") == 1


def test_cli_model_path_reports_missing_backbone_weights(tmp_path, capsys):
    torch.save(light_ham_state(in_channels=(128,)), tmp_path / "head.pth")
    args = [str(tmp_path / "head.pth"), str(tmp_path / "model"), "--ham-kwargs", '{"MD_R": 16}', "--model", "tiny_ham"]
    assert main(args) == 2  # the checkpoint has no weights for the tiny backbone: an error, not silent random weights
    assert "missing" in capsys.readouterr().err and not (tmp_path / "model" / "config.json").exists()


@pytest.mark.slow
def test_cli_converts_a_full_hamnet_checkpoint_into_a_registered_model(tmp_path):
    timm = pytest.importorskip("timm")
    from hamburger.models import SegmentationModel

    body = timm.create_model("resnet50s", layers=[1, 1, 1, 1], features_only=True, out_indices=(4,))
    names = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    sd = {k[len("module.") :]: v for k, v in hamnet_state("v2", c_in=2048).items()}
    for key, value in body.state_dict().items():
        top, rest = key.split(".", 1)
        sd[f"backbone.{names[top]}.{rest}"] = value + 1.0 if value.is_floating_point() else value
    torch.save(sd, tmp_path / "hamnet.pth")
    args = [str(tmp_path / "hamnet.pth"), str(tmp_path / "model"), "--ham-kwargs", '{"MD_R": 8, "EVAL_STEPS": 6}',
            "--model", "hamnet_resnet50", "--set", 'backbone_kwargs={"layers": [1, 1, 1, 1]}']  # fmt: skip
    assert main(args) == 0
    model = SegmentationModel.from_pretrained(tmp_path / "model")
    assert model.config["num_classes"] == 21 and model.config["hamburger"]["rank"] == 8
    torch.testing.assert_close(model.backbone.body.conv1[0].weight, body.conv1[0].weight + 1.0)
    torch.testing.assert_close(model.head.context.cheese[0].weight, sd["hamburger.cheese.conv.weight"])
