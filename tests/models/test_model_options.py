"""The ham options travel unchanged from create_model / YAML / CLI through the config to the solver and back out
through save_pretrained; heads come from a registry; backbones give the levels the head needs or say why not."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
from torch import nn

from hamburger.blocks import HamOptions
from hamburger.heads import HEADS, register_head
from hamburger.models import ModelConfig, build_model, create_model, from_pretrained, get_model_config
from hamburger.solvers import CD, VQ

CONFIG = pathlib.Path(__file__).resolve().parents[2] / "src" / "hamburger" / "configs" / "seg" / "fashion_scenes.yaml"
SMALL_TINY = {"backbone_kwargs": {"widths": [8, 16, 32], "depth": 1}, "channels": 16, "ham_channels": 16}


def test_create_model_reaches_every_ham_option():
    model = create_model("tiny_ham", ham="vq", inv_temp=10.0, grad_mode="bptt", eps=1e-5, rank=4, **SMALL_TINY)
    block = model.head.context
    assert isinstance(block.ham, VQ)
    assert (block.ham.inv_temp, block.ham.grad_mode, block.ham.eps, block.ham.rank) == (10.0, "bptt", 1e-5, 4)
    assert block.version == "v2+" and block.coef_ham is not None  # the template's block options are kept
    cd = create_model("tiny_ham", ham="cd", ridge=0.01, solve="newton_schulz", **SMALL_TINY).head.context.ham
    assert isinstance(cd, CD) and (cd.ridge, cd.solve) == (0.01, "newton_schulz")


def test_block_norm_is_independent_of_the_head_norm():
    model = create_model("tiny_ham", norm_layer="group", hamburger={"norm_layer": "batch"}, **SMALL_TINY)
    assert model.config["norm_layer"] == "group"  # the head's
    assert isinstance(model.head.squeeze[1], nn.GroupNorm)
    cheese_norm = model.head.context.cheese[1]  # v2+ block: its norm sits in the cheese
    assert isinstance(cheese_norm, nn.BatchNorm2d)
    inherited = create_model("tiny_ham", norm_layer="group", **SMALL_TINY).head.context.cheese[1]
    assert isinstance(inherited, nn.GroupNorm)
    default = create_model("tiny_ham", **SMALL_TINY)  # the tiny models: BatchNorm head and block (local baselines)
    assert isinstance(default.head.squeeze[1], nn.BatchNorm2d)
    assert isinstance(default.head.context.cheese[1], nn.BatchNorm2d)


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model option\(s\) \['inv_tmp'\]"):
        create_model("tiny_ham", inv_tmp=10)
    with pytest.raises(ValueError, match=r"inv_temp=10 does not apply to ham='nmf'"):
        create_model("tiny_ham", inv_temp=10)


def test_save_pretrained_round_trip_keeps_the_ham(tmp_path):
    model = create_model("tiny_ham", ham="vq", inv_temp=10.0, rank=4, grad_mode="bptt", **SMALL_TINY).eval()
    model.save_pretrained(tmp_path / "m")
    raw = json.loads((tmp_path / "m" / "config.json").read_text())
    assert raw["format_version"] == 2
    assert raw["hamburger"]["ham"] == "vq" and raw["hamburger"]["inv_temp"] == 10.0
    again = from_pretrained(tmp_path / "m").eval()
    assert isinstance(again.head.context.ham, VQ) and again.head.context.ham.inv_temp == 10.0
    assert again.head.context.ham.grad_mode == "bptt"
    x = torch.randn(1, 3, 40, 48)
    assert torch.equal(model(x)["out"], again(x)["out"])


def test_config_json_with_missing_or_unknown_keys_is_an_error(tmp_path):
    model = create_model("tiny_ham", **SMALL_TINY)
    model.save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    good = json.loads(path.read_text())
    for broken in ({k: v for k, v in good.items() if k != "channels"}, {**good, "chanels": 3}):
        path.write_text(json.dumps(broken))
        with pytest.raises(ValueError, match="missing field|unknown field"):
            from_pretrained(tmp_path / "m")
    ham = dict(good["hamburger"])
    ham.pop("rank")
    path.write_text(json.dumps({**good, "hamburger": ham}))
    with pytest.raises(ValueError, match=r"'hamburger' has missing field\(s\) \['rank'\]"):
        from_pretrained(tmp_path / "m")


def test_format_1_flat_config_is_still_read(tmp_path):
    model = create_model("tiny_ham", rank=4, **SMALL_TINY)
    model.save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    new = json.loads(path.read_text())
    ham = new.pop("hamburger")
    old = {**new, "format_version": 1, **{k: ham[k] for k in ("ham", "rank", "steps", "eval_steps", "groups",
                                                                "grad_mode", "init", "version")}}  # fmt: skip
    old.pop("feature_strides")
    path.write_text(json.dumps(old))
    from safetensors.torch import load_file, save_file  # hamburger 0.1 wrote no config fingerprint

    weights = str(tmp_path / "m" / "model.safetensors")
    save_file(load_file(weights), weights, metadata={"format": "pt"})
    again = from_pretrained(tmp_path / "m")
    assert again.head.context.ham.rank == 4 and again.head.context.version == "v2+"


def test_cli_model_kwargs_reach_the_solver():
    from hamburger.recipes.seg.cli import build_cli

    cli = build_cli(
        ["--config", str(CONFIG), "--data.num_workers=0",
         "--model.model_kwargs={ham: vq, inv_temp: 10.0, rank: 4, hamburger: {norm_layer: batch}}"],
        run=False,
    )  # fmt: skip
    block = cli.model.net.head.context
    assert isinstance(block.ham, VQ) and block.ham.inv_temp == 10.0 and block.ham.rank == 4
    assert isinstance(block.cheese[1], nn.BatchNorm2d)


def test_a_new_head_is_one_registered_class():
    @register_head("test_plain")
    class PlainHead(nn.Module):
        def __init__(self, in_channels, num_classes, *, channels: int = 8, norm_layer: str = "batch") -> None:
            super().__init__()
            self.norm_layer = norm_layer
            self.conv = nn.Conv2d(in_channels[-1], num_classes, 1)

        def forward(self, features):
            return self.conv(features[-1])

    try:
        config = get_model_config("tiny_fcn", head="test_plain", norm_layer="batch", **SMALL_TINY)
        model = build_model(config)
        assert isinstance(model.head, PlainHead) and model.head.norm_layer == "batch"
        assert model(torch.randn(1, 3, 33, 47))["out"].shape == (1, 11, 33, 47)
    finally:
        HEADS.pop("test_plain")
    with pytest.raises(ValueError, match=r"unknown head 'test_plain'"):
        build_model(config)


def test_swapped_backbone_gives_the_head_its_strides():
    model = create_model("light_ham_mobilenetv2", backbone="convnext_atto", channels=32, ham_channels=32, rank=4)
    assert model.backbone.reductions == [8, 16, 32]
    assert model.head.in_channels == [80, 160, 320]  # convnext_atto stages 2-4
    assert model.config["backbone"] == "convnext_atto" and model.config["feature_strides"] == (8, 16, 32)
    assert model(torch.randn(1, 3, 67, 53))["out"].shape == (1, 150, 67, 53)


def test_single_level_head_takes_the_deepest_level_of_any_backbone():
    model = create_model("tiny_ham", backbone="resnet18", backbone_kwargs={"layers": [1, 1, 1, 1]})
    assert model.backbone.reductions == [32] and model.backbone.channels == [512]  # layer4, not layer2


def test_backbone_without_the_strides_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"has feature levels at strides \[16, 16.*the head needs strides \[8, 16, 32\]"
    ):
        create_model("light_ham_mobilenetv2", backbone="vit_tiny_patch16_224")
    with pytest.raises(ValueError, match=r"has feature levels at strides \[2, 4, 8\]"):
        create_model("tiny_ham", feature_strides=(16,))


def test_model_config_replace_routes_and_keeps_tuples():
    config = ModelConfig().replace(ham="vq", inv_temp=5.0, feature_strides=[8, 16], hamburger={"rank": 3})
    assert config.hamburger == HamOptions(ham="vq", inv_temp=5.0, rank=3)
    assert config.feature_strides == (8, 16)
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_a_failed_save_leaves_the_previous_pair_intact(tmp_path, monkeypatch):
    import pathlib as _pathlib

    old = create_model("tiny_ham", rank=16, **SMALL_TINY).eval()
    old.save_pretrained(tmp_path / "m")
    new = create_model("tiny_ham", ham="vq", rank=4, **SMALL_TINY)

    def broken(self, *args, **kwargs):  # the config write fails after the weights were written
        raise OSError("disk full")

    monkeypatch.setattr(_pathlib.Path, "write_text", broken)
    with pytest.raises(OSError, match="disk full"):
        new.save_pretrained(tmp_path / "m")
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folder left behind
    again = from_pretrained(tmp_path / "m").eval()
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(again(x)["out"], old(x)["out"])


def test_weights_that_do_not_belong_to_the_config_are_refused(tmp_path):
    create_model("tiny_ham", rank=16, **SMALL_TINY).save_pretrained(tmp_path / "a")
    create_model("tiny_ham", rank=4, **SMALL_TINY).save_pretrained(tmp_path / "b")
    (tmp_path / "b" / "config.json").replace(tmp_path / "a" / "config.json")  # rank-16 weights, rank-4 config
    with pytest.raises(ValueError, match="do not belong to its config.json"):  # same shapes: the fingerprint tells
        from_pretrained(tmp_path / "a")
    create_model(
        "tiny_ham", channels=32, ham_channels=32, backbone_kwargs=SMALL_TINY["backbone_kwargs"]
    ).save_pretrained(tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").replace(tmp_path / "a" / "model.safetensors")
    with pytest.raises(ValueError, match="do not belong to its config.json"):
        from_pretrained(tmp_path / "a")
