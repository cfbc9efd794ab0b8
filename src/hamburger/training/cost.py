"""What a model costs: peak memory of a training step, forward FLOPs at two resolutions, forward latency.

:func:`model_cost` measures a model in place (for example the model a ``compare`` run has just trained) without
changing it: its parameters, buffers (BatchNorm statistics), gradients, train/eval mode and the global RNG
streams are the same afterwards. The primitives are :mod:`hamburger.utils.measure`'s:

* **train peak**: the bytes one training step allocates above what was allocated before it (the model, the
  optimiser state and the input batch are not counted): forward of a ``batch_size x in_channels x h x w`` batch
  in train mode, the loss, backward (the gradients included, as after ``zero_grad(set_to_none=True)``). CUDA:
  ``torch.cuda.max_memory_allocated``; CPU: every tensor storage the step's aten ops create, followed until freed.
* **forward FLOPs** of one image in eval mode, at the training resolution and at a large one: matmuls and
  convolutions only, 2 FLOPs per multiply-add (:func:`~hamburger.utils.measure.count_flops`), so the cost of a
  matrix-decomposition ham grows with its ``K`` steps and that of attention with ``(hw)^2``.
* **forward latency** of one image at the large resolution in eval mode without autograd: the median of
  ``latency_repeats`` calls after ``latency_warmup`` untimed ones.

    cost = model_cost(model, input_size=64, batch_size=16, large_size=512)
    cost["train_peak_mib"], cost["gflops"], cost["gflops_large"], cost["latency_large_ms"]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from ..utils import check_int, check_pair, check_positive_int
from ..utils.measure import count_flops, peak_memory, time_fn

__all__ = ["DEFAULT_COST_SIZE", "default_loss", "model_cost"]

DEFAULT_COST_SIZE = 512
"""Side of the large square input at which the forward FLOPs and latency are measured."""

Loss = Callable[[Any], torch.Tensor]


def default_loss(output: Any) -> torch.Tensor:
    """Sum of the means of every floating tensor in ``output`` (a tensor, or a dict / tuple of tensors)."""
    leaves = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not leaves:
        raise ValueError(f"the model's output holds no floating-point tensor to take a loss of: {type(output)}")
    return torch.stack([t.float().mean() for t in leaves]).sum()


def _device_of(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def model_cost(
    model: nn.Module,
    *,
    input_size: int | tuple[int, int],
    batch_size: int,
    large_size: int | tuple[int, int] = DEFAULT_COST_SIZE,
    device: torch.device | str | None = None,
    in_channels: int = 3,
    make_loss: Callable[[torch.Tensor], Loss] | None = None,
    latency_warmup: int = 1,
    latency_repeats: int = 5,
) -> dict[str, Any]:
    """Peak memory of a training step, forward FLOPs at ``input_size`` and ``large_size``, latency at ``large_size``.

    Args:
        model: the model, already on ``device``; it is left as it was (see the module docstring).
        input_size: training resolution ``(h, w)`` (or a side): the train step and the first FLOP count.
        batch_size: training batch size of the step whose peak memory is measured.
        large_size: the large resolution ``(H, W)`` (or a side) of the second FLOP count and the latency.
        device: where the inputs are made (default: the model's device).
        in_channels: channels of the input images.
        make_loss: ``make_loss(batch)`` returns the training loss as a function of the model's output for
            that input ``batch`` (e.g. a cross-entropy against labels it makes once, outside the measured step);
            default: :func:`default_loss` for any batch.
        latency_warmup: untimed forward calls before the timed ones.
        latency_repeats: timed forward calls (the median is reported).

    Returns:
        A JSON-ready dict: ``device``, ``batch_size``, ``input_size``, ``large_size``, ``train_peak_bytes``,
        ``train_peak_mib``, ``memory_method``, ``flops``, ``gflops`` (at ``input_size``, one image),
        ``flops_large``, ``gflops_large``, ``latency_large_ms`` (median), ``latency_large_min_ms``,
        ``latency_repeats``, ``latency_warmup``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    h, w = check_pair("input_size", input_size)
    big_h, big_w = check_pair("large_size", large_size)
    batch_size = check_positive_int("batch_size", batch_size)
    in_channels = check_positive_int("in_channels", in_channels)
    latency_warmup = check_int("latency_warmup", latency_warmup, 0)
    latency_repeats = check_positive_int("latency_repeats", latency_repeats)
    device = torch.device(device) if device is not None else _device_of(model)
    modes = [(m, m.training) for m in model.modules()]  # submodules may differ (e.g. a frozen norm)
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    grads = {name: p.grad for name, p in model.named_parameters()}
    rng_devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=rng_devices):
            # one training step: forward (train mode), loss, backward; gradients start unallocated
            batch = torch.randn(batch_size, in_channels, h, w, device=device)
            loss_fn = make_loss(batch) if make_loss is not None else default_loss
            for p in model.parameters():
                p.grad = None
            model.train()

            def train_step() -> None:
                value = loss_fn(model(batch))
                if value.requires_grad:  # a model without trainable parameters has no backward
                    value.backward()

            train_peak = peak_memory(train_step, device=device)
            for p in model.parameters():
                p.grad = None
            # one image, eval mode, no autograd
            model.eval()
            small = torch.randn(1, in_channels, h, w, device=device)
            large = torch.randn(1, in_channels, big_h, big_w, device=device)
            with torch.no_grad():
                flops = count_flops(lambda: model(small))
                flops_large = count_flops(lambda: model(large))
                timing = time_fn(lambda: model(large), device=device, warmup=latency_warmup, repeats=latency_repeats)
    finally:
        for module, training in modes:
            module.training = training
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
        for name, p in model.named_parameters():
            p.grad = grads.get(name)
    return {
        "device": str(device),
        "batch_size": batch_size,
        "input_size": [h, w],
        "large_size": [big_h, big_w],
        "train_peak_bytes": train_peak,
        "train_peak_mib": round(train_peak / 2**20, 3),
        "memory_method": "cuda max_memory_allocated" if device.type == "cuda" else "live tensor storages",
        "flops": flops,
        "gflops": round(flops / 1e9, 6),
        "flops_large": flops_large,
        "gflops_large": round(flops_large / 1e9, 6),
        "latency_large_ms": round(timing.median_ms, 3),
        "latency_large_min_ms": round(timing.min_ms, 3),
        "latency_repeats": timing.repeats,
        "latency_warmup": latency_warmup,
    }
