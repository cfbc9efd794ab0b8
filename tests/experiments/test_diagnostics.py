"""Diagnostics of Hamburger blocks (issue 13): ablation, training statistics, gradient locality and norms."""

from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hamburger.blocks import Hamburger, HamburgerTokens, create_context_block
from hamburger.cli import main
from hamburger.experiments.diagnostics import (
    BranchStatsCallback,
    block_gradient_norms,
    branch_ablation,
    find_hamburgers,
    off_token_gradient_share,
    receptive_field_share,
)
from hamburger.models import create_model


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _gated_model(**overrides) -> nn.Module:
    torch.manual_seed(0)
    return create_model("tiny_ham", gate_init=0.5, **overrides)


# ---------------------------------------------------------------------------------------------- find / ablation
def test_find_hamburgers_names_every_block():
    model = create_model("tiny_ham")
    assert [(n, type(m).__name__) for n, m in find_hamburgers(model)] == [("head.context", "Hamburger")]
    assert find_hamburgers(create_model("tiny_fcn")) == []
    tokens = nn.Sequential(HamburgerTokens(8, rank=2), Hamburger(8, rank=2))
    assert [n for n, _ in find_hamburgers(tokens)] == ["0.block", "1"]
    with pytest.raises(TypeError, match="nn.Module"):
        find_hamburgers("tiny_ham")


@pytest.mark.parametrize("training", [False, True])
def test_zero_ablation_equals_the_gate_set_to_zero_and_restores_exactly(training):
    model = _gated_model(norm_layer="batch").train(training)
    images = _x(2, 3, 67, 53)
    by_hand = copy.deepcopy(model)
    with torch.no_grad():
        by_hand.head.context.coef_ham.zero_()
    torch.manual_seed(5)
    before = model(images)["out"]
    torch.manual_seed(5)
    reference = by_hand(images)["out"]
    with branch_ablation(model, "zero") as names:
        assert names == ["head.context"]
        torch.manual_seed(5)
        ablated = model(images)["out"]
    torch.manual_seed(5)
    after = model(images)["out"]
    assert torch.equal(ablated, reference)
    assert not torch.allclose(ablated, before)  # the branch did something (gate 0.5)
    if not training:  # in training the BatchNorm statistics moved between the calls
        assert torch.equal(after, before)
    assert "_branch" not in model.head.context.__dict__


def test_mean_ablation_replaces_the_branch_by_its_spatial_mean():
    torch.manual_seed(0)
    block = Hamburger(8, rank=3, version="v2+", gate_init=0.7, norm_layer="none").eval()
    with torch.no_grad():
        block.coef_shortcut.fill_(0.9)
    x = _x(2, 8, 13, 7).abs()
    branch = block._branch(x)
    expected = F.relu(0.9 * x + branch.mean(dim=(2, 3), keepdim=True))
    with branch_ablation(block, "mean"):
        torch.testing.assert_close(block(x), expected)
        with branch_ablation(block, "zero"):  # nested: the inner one wins and the outer one comes back
            torch.testing.assert_close(block(x), F.relu(0.9 * x))
        torch.testing.assert_close(block(x), expected)
    torch.testing.assert_close(block(x), F.relu(0.9 * x + branch))


def test_mean_ablation_of_padded_tokens_averages_over_the_real_tokens():
    torch.manual_seed(0)
    tokens = HamburgerTokens(8, rank=2, version="v2+", gate_init=1.0, norm_layer="layer", branch_only=True).eval()
    x = _x(2, 6, 8)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    branch = tokens(x, mask)
    with branch_ablation(tokens, "mean"):
        ablated = tokens(x, mask)
    torch.testing.assert_close(ablated[1, :4], branch[1, :4].mean(0, keepdim=True).expand(4, -1))
    torch.testing.assert_close(ablated[0], branch[0].mean(0, keepdim=True).expand(6, -1))


def test_ablation_errors():
    with pytest.raises(ValueError, match=r"mode must be one of \['zero', 'mean'\]"):
        with branch_ablation(create_model("tiny_ham"), "median"):
            pass
    with pytest.raises(ValueError, match="contains no Hamburger"):
        with branch_ablation(create_model("tiny_fcn")):
            pass


# ---------------------------------------------------------------------------------------------- training statistics
class _Fit(pl.LightningModule):
    def __init__(self, block: nn.Module, data: torch.Tensor) -> None:
        super().__init__()
        self.block, self.data = block, data

    def training_step(self, batch, batch_idx):
        return self.block(batch).square().mean()

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.data, batch_size=len(self.data))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def _trainer(steps: int, callback: pl.Callback) -> pl.Trainer:
    return pl.Trainer(
        max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[callback],
    )  # fmt: skip


def test_branch_stats_callback_records_gates_and_rms(tmp_path: Path):
    torch.manual_seed(0)
    block = Hamburger(8, rank=2, version="v2+", gate_init=0.5, norm_layer="none", init="online")
    data = _x(4, 8, 9, 7).abs()
    with torch.no_grad():
        branch0 = copy.deepcopy(block)._branch(data)  # a fixed initial dictionary: no random draw
    callback = BranchStatsCallback(every_n_steps=2, path=tmp_path / "stats.csv")
    module = _Fit(block, data)
    _trainer(5, callback).fit(module)
    assert [row["step"] for row in callback.rows] == [0, 2, 4]
    first = callback.rows[0]
    assert first["block"] == "block" and first["gate"] == 0.5 and first["shortcut_gate"] == 1.0
    assert first["branch_rms"] == pytest.approx(float(branch0.square().mean().sqrt()), rel=1e-5)
    assert first["shortcut_rms"] == pytest.approx(float(data.square().mean().sqrt()), rel=1e-6)
    assert first["ratio"] == pytest.approx(first["branch_rms"] / first["shortcut_rms"])
    assert callback.rows[-1]["gate"] != 0.5  # the gate trained
    assert "_branch" not in block.__dict__  # nothing left patched
    with open(tmp_path / "stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 2, 4] and float(rows[0]["gate"]) == 0.5
    assert float(rows[2]["branch_rms"]) == pytest.approx(callback.rows[2]["branch_rms"])
    restored = BranchStatsCallback(every_n_steps=2)
    restored.load_state_dict(callback.state_dict())
    assert restored.rows == callback.rows


def test_branch_stats_csv_has_empty_cells_without_gates(tmp_path: Path):
    callback = BranchStatsCallback(every_n_steps=1)
    module = _Fit(Hamburger(8, rank=2, version="v1", norm_layer="none"), _x(2, 8, 5, 5).abs())
    _trainer(1, callback).fit(module)
    callback.write_csv(tmp_path / "s.csv")
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "step,block,gate,shortcut_gate,branch_rms,shortcut_rms,ratio"
    assert lines[1].startswith("0,block,,,")
    with pytest.raises(ValueError, match="every_n_steps must be a positive int"):
        BranchStatsCallback(every_n_steps=0)


def test_branch_stats_callback_from_the_seg_cli(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = {"class_path": "hamburger.experiments.diagnostics.BranchStatsCallback",
            "init_args": {"every_n_steps": 1, "path": "stats.csv"}}  # fmt: skip
    code = main([
        "seg", "fit", "--config", "fashion_scenes", "--trainer.max_steps=2", "--trainer.val_check_interval=2",
        "--trainer.enable_progress_bar=false", "--checkpoint.every_n_train_steps=2", "--data.batch_size=2",
        "--data.val_batch_size=2", "--data.crop_size=32", "--data.num_workers=2",
        "--data.train_kwargs={num_scenes: 4}", "--data.val_kwargs={num_scenes: 2}",
        "--model.model_kwargs={backbone_kwargs: {widths: [8, 16, 32], depth: 1}, channels: 16, ham_channels: 16, "
        "rank: 4}", f"--trainer.callbacks+={json.dumps(spec)}",
    ])  # fmt: skip
    assert code == 0
    with open(tmp_path / "stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["block"]) for r in rows] == [("0", "net.head.context"), ("1", "net.head.context")]
    assert float(rows[0]["gate"]) == 0.0 and float(rows[0]["branch_rms"]) == 0.0  # tiny_ham: V2+, zero gate
    assert float(rows[0]["shortcut_rms"]) > 0


# ---------------------------------------------------------------------------------------------- gradient locality
class _PlusMean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x.mean(dim=(2, 3), keepdim=True)


def test_off_token_share_matches_the_closed_form_of_a_mean_block():
    # y = x + mean_hw(x): g at the point's token is v (1 + 1/n), at the n - 1 others v / n
    n = 7 * 5
    share = off_token_gradient_share(_PlusMean(), _x(2, 4, 7, 5).double(), num_points=5)
    assert share == pytest.approx(((n - 1) / n**2) / ((1 + 1 / n) ** 2 + (n - 1) / n**2), rel=1e-12)


def test_off_token_share_is_exactly_zero_for_one_step_and_positive_for_bptt_and_attention():
    x = _x(2, 16, 7, 5)
    one_step = Hamburger(16, rank=4, grad_mode="one_step", norm_layer="batch")
    assert off_token_gradient_share(one_step.eval(), x) == 0.0
    assert off_token_gradient_share(Hamburger(16, rank=4, norm_layer="layer").train(), x) == 0.0
    assert off_token_gradient_share(nn.Conv2d(16, 16, 1), x) == 0.0
    assert off_token_gradient_share(Hamburger(16, ham="identity", norm_layer="batch").eval(), x) == 0.0
    assert off_token_gradient_share(Hamburger(16, rank=4, grad_mode="bptt", norm_layer="batch").eval(), x) > 0.05
    assert off_token_gradient_share(Hamburger(16, rank=4, grad_mode="truncated", norm_layer="none"), x) > 0.01
    assert off_token_gradient_share(create_context_block("self_attention", 16).eval(), x) > 0
    assert off_token_gradient_share(create_context_block("gap", 16, gate_init=1.0).eval(), x) > 0
    # BatchNorm in training mixes the tokens through its batch statistics, even with the one-step gradient
    assert off_token_gradient_share(one_step.train(), x) > 0


def test_off_token_share_of_a_model_probes_its_block_without_side_effects():
    images = _x(2, 3, 67, 53)
    for grad_mode, positive in (("one_step", False), ("bptt", True)):
        model = _gated_model(norm_layer="batch", grad_mode=grad_mode).train()
        buffers = {k: v.clone() for k, v in model.state_dict().items()}
        rng = torch.get_rng_state()
        share = off_token_gradient_share(model, images, num_points=8)
        assert (share > 0.01) if positive else (share > 0)  # train mode: BatchNorm in the block
        model.eval()
        share_eval = off_token_gradient_share(model, images, num_points=8, block="head.context")
        assert (share_eval > 1e-4) if positive else (share_eval == 0.0)
        assert torch.equal(torch.get_rng_state(), rng)
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())
        assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="not a submodule name"):
        off_token_gradient_share(model, images, block="head.nope")


def test_receptive_field_share_of_a_circular_conv_is_its_off_centre_weight():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 1, 3, padding=1, padding_mode="circular", bias=False)
    w = conv.weight.detach().double()
    images = _x(2, 3, 9, 11)
    expected = 1 - float(w[0, :, 1, 1].square().sum() / w.square().sum())
    assert receptive_field_share(conv, images, radius=0, num_points=6) == pytest.approx(expected, rel=1e-9)
    # zero padding: nothing outside the 3 x 3 window (circular padding would wrap border pixels around)
    assert receptive_field_share(nn.Conv2d(3, 2, 3, padding=1), images, radius=1) == 0.0


def test_group_norm_heads_are_not_local_and_batch_norm_heads_in_eval_are():
    images = _x(2, 3, 67, 53)
    torch.manual_seed(0)
    bn = create_model("tiny_fcn", norm_layer="batch")
    gn = create_model("tiny_fcn")  # the GroupNorm(32) head
    radius = 30  # the tiny backbone's receptive field fits in it
    assert receptive_field_share(bn.eval(), images, radius=radius, num_points=8) == 0.0
    assert receptive_field_share(bn.train(), images, radius=radius, num_points=8) > 0
    assert receptive_field_share(gn.eval(), images, radius=radius, num_points=8) > 0
    assert receptive_field_share(gn.train(), images, radius=radius, num_points=8) > 0
    assert all(p.grad is None for p in gn.parameters())


# ---------------------------------------------------------------------------------------------- gradient norms
def test_block_gradient_norms_split_the_input_gradient_into_shortcut_and_branch():
    torch.manual_seed(0)
    block = Hamburger(8, rank=3, version="v2+", gate_init=0.5, norm_layer="none", eval_steps=None)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), block, nn.Conv2d(8, 4, 1)).eval()
    images, targets = _x(2, 3, 13, 7), torch.randint(4, (2, 13, 7), generator=torch.Generator().manual_seed(1))
    norms = block_gradient_norms(model, (images, targets), F.cross_entropy)["2"]
    # by hand: separate leaves for the shortcut and the branch inputs
    z = model[1](model[0](images)).detach()
    zs, zb = z.clone().requires_grad_(), z.clone().requires_grad_()
    out = block.out_act(block.coef_shortcut * zs + block._branch(zb))
    loss = F.cross_entropy(model[3](out), targets)
    g_s, g_b, g_gate, g_short_gate = torch.autograd.grad(loss, [zs, zb, block.coef_ham, block.coef_shortcut])
    assert norms["shortcut"] == pytest.approx(float(g_s.norm()), rel=1e-4)
    assert norms["branch"] == pytest.approx(float(g_b.norm()), rel=1e-5)
    assert norms["input"] == pytest.approx(float((g_s + g_b).norm()), rel=1e-5)
    assert norms["gate"] == pytest.approx(abs(float(g_gate)), rel=1e-5)
    assert norms["shortcut_gate"] == pytest.approx(abs(float(g_short_gate)), rel=1e-5)
    assert norms["loss"] == pytest.approx(float(loss.detach()), rel=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_block_gradient_norms_at_a_zero_gate_reach_only_the_gate():
    model = create_model("tiny_ham", norm_layer="batch").train()
    batch = {"image": _x(2, 3, 67, 53), "mask": torch.randint(11, (2, 67, 53))}
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    norms = block_gradient_norms(model, batch, F.cross_entropy)["head.context"]
    assert norms["branch"] == 0.0 and norms["gate"] > 0 and norms["shortcut"] > 0
    assert norms["shortcut"] == pytest.approx(norms["input"])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())
    with pytest.raises(TypeError, match="batch must be"):
        block_gradient_norms(model, batch["image"], F.cross_entropy)


def test_block_gradient_norms_of_token_blocks():
    torch.manual_seed(0)
    tokens = HamburgerTokens(8, rank=2, version="v2+", gate_init=1.0, norm_layer="layer")
    model = nn.Sequential(nn.Linear(4, 8), tokens, nn.Linear(8, 3))
    x, y = _x(2, 5, 4), torch.randint(3, (2, 5), generator=torch.Generator().manual_seed(2))
    loss_fn = lambda logits, t: F.cross_entropy(logits.transpose(1, 2), t)  # noqa: E731
    norms = block_gradient_norms(model, (x, y), loss_fn)["1.block"]
    z = model[0](x).detach().transpose(1, 2)
    zs, zb = z.clone().requires_grad_(), z.clone().requires_grad_()
    inner = tokens.block
    out = inner.out_act(inner.coef_shortcut * zs + inner._branch(zb)).transpose(1, 2)
    g_s, g_b = torch.autograd.grad(loss_fn(model[2](out), y), [zs, zb])
    assert norms["shortcut"] == pytest.approx(float(g_s.norm()), rel=1e-4)
    assert norms["branch"] == pytest.approx(float(g_b.norm()), rel=1e-5)
    assert math.isfinite(norms["gate"])
