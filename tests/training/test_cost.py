"""``training.cost.model_cost`` against hand counts: FLOPs of a single conv at two sizes, the peak memory of a
training step against the bytes it must hold, and a measured model left exactly as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hamburger.training.cost import default_loss, model_cost

CPU = torch.device("cpu")


def _conv_flops(c_in: int, c_out: int, k: int, h: int, w: int) -> int:
    """2 FLOPs per multiply-add, one multiply-add per weight and output pixel (stride 1, 'same' padding)."""
    return 2 * c_in * c_out * k * k * h * w


def test_flops_of_a_single_conv_equal_the_hand_formula_at_both_sizes() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    cost = model_cost(conv, input_size=(67, 53), batch_size=2, large_size=97, latency_repeats=1)
    assert cost["flops"] == _conv_flops(3, 8, 3, 67, 53)  # one image at the training size
    assert cost["flops_large"] == _conv_flops(3, 8, 3, 97, 97)
    assert cost["gflops"] == pytest.approx(cost["flops"] / 1e9, abs=1e-6)
    assert (cost["input_size"], cost["large_size"], cost["batch_size"]) == ([67, 53], [97, 97], 2)
    assert cost["latency_large_ms"] > 0 and cost["latency_repeats"] == 1 and cost["device"] == "cpu"


def test_flops_of_attention_grow_quadratically_with_the_tokens() -> None:
    """A model made of one SDPA over its h*w tokens: 2 matmuls of n x n x c, so 4 * n^2 * c FLOPs."""

    class Attend(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = x.flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1, n, c)
            return nn.functional.scaled_dot_product_attention(t, t, t)

    cost = model_cost(Attend(), input_size=8, batch_size=1, large_size=16, latency_repeats=1)
    assert (cost["flops"], cost["flops_large"]) == (4 * 64**2 * 3, 4 * 256**2 * 3)


def test_train_peak_grows_with_the_batch_and_holds_the_activations_and_gradients() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    params = sum(p.numel() for p in conv.parameters()) * 4
    peaks = {}
    for batch in (1, 2, 4):
        peaks[batch] = model_cost(conv, input_size=64, batch_size=batch, large_size=8, latency_repeats=1)[
            "train_peak_bytes"
        ]
        # the conv's output (alive until backward) and the weight and bias gradients backward creates
        assert peaks[batch] >= batch * 8 * 64 * 64 * 4 + params
    assert peaks[1] < peaks[2] < peaks[4]
    # the input batch and the parameters are allocated before the step: not counted
    assert peaks[4] < 4 * 8 * 64 * 64 * 4 + 4 * 3 * 64 * 64 * 4


def test_train_peak_counts_the_backward() -> None:
    """Two stacked convs: backward needs the gradient of the hidden map on top of what the forward kept."""
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 4, 3, padding=1))
    hidden, out = 2 * 16 * 32 * 32 * 4, 2 * 4 * 32 * 32 * 4
    peak = model_cost(net, input_size=32, batch_size=2, large_size=8, latency_repeats=1)["train_peak_bytes"]
    assert peak >= 2 * hidden + out  # the hidden map, its gradient, the output


def test_the_measured_model_is_left_as_it_was() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 2, 1))
    net.train()
    net(torch.randn(2, 3, 16, 16)).mean().backward()  # a gradient from "training"
    state = {k: v.clone() for k, v in net.state_dict().items()}
    grads = [p.grad.clone() for p in net.parameters()]
    rng = torch.get_rng_state()
    model_cost(net, input_size=(21, 19), batch_size=3, large_size=33, latency_repeats=1)
    assert net.training
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())  # BN statistics untouched
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, net.parameters(), strict=True))
    assert torch.equal(rng, torch.get_rng_state())
    net.eval()
    model_cost(net, input_size=8, batch_size=1, large_size=8, latency_repeats=1)
    assert not net.training
    net.train()
    net[1].eval()  # a frozen norm inside a training model stays frozen
    model_cost(net, input_size=8, batch_size=1, large_size=8, latency_repeats=1)
    assert [m.training for m in net] == [True, False, True, True]


def test_custom_loss_sees_the_batch_and_default_loss_takes_dicts() -> None:
    seen = []

    def make_loss(batch: torch.Tensor):
        seen.append(tuple(batch.shape))
        return lambda out: out["out"].square().mean()

    model = nn.Conv2d(3, 2, 1)
    wrapped = nn.ModuleDict({"m": model})

    class Dict(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = wrapped

        def forward(self, x: torch.Tensor) -> dict:
            return {"out": self.inner["m"](x), "aux": None}

    model_cost(Dict(), input_size=(5, 7), batch_size=3, large_size=9, make_loss=make_loss, latency_repeats=1)
    assert seen == [(3, 3, 5, 7)]
    x = torch.ones(2, 2)
    assert default_loss({"out": x, "aux": 3 * x, "none": None}).item() == 4.0
    with pytest.raises(ValueError, match="no floating-point tensor"):
        default_loss({"labels": torch.ones(2, dtype=torch.long)})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"input_size": (64, 0)}, ValueError, "input_size"),
        ({"large_size": "512"}, TypeError, "large_size"),
        ({"latency_repeats": 0}, ValueError, "latency_repeats"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match) -> None:
    options = {"input_size": 8, "batch_size": 1, "large_size": 8, **kwargs}
    with pytest.raises(error, match=match):
        model_cost(nn.Conv2d(3, 1, 1), **options)
    with pytest.raises(TypeError, match="nn.Module"):
        model_cost(lambda x: x, input_size=8, batch_size=1)  # type: ignore[arg-type]
