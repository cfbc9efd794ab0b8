"""``from_pretrained`` returns an eval-mode model; ``predict`` runs in eval mode without changing the module."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hamburger.models import SegmentationModel, create_model, from_pretrained

SMALL = {"backbone_kwargs": {"widths": [8, 16, 32], "depth": 1}, "channels": 16, "ham_channels": 16, "rank": 4}


def _model() -> SegmentationModel:
    return create_model("tiny_ham", num_classes=5, **SMALL)


def test_from_pretrained_returns_eval_mode(tmp_path) -> None:
    model = _model()
    assert model.training  # built for training
    model.save_pretrained(tmp_path)
    for loaded in (from_pretrained(tmp_path), SegmentationModel.from_pretrained(tmp_path)):
        assert loaded.training is False
        assert not any(m.training for m in loaded.modules())
        x = torch.randn(1, 3, 40, 40)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x)["out"], loaded(x)["out"], rtol=0, atol=0)


def _buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in model.named_buffers()}


def test_predict_leaves_a_training_model_untouched() -> None:
    model = _model()
    model.train()
    before = _buffers(model)
    assert sum("running_mean" in n for n in before) >= 3  # BatchNorm statistics a train-mode forward would update
    x = torch.randn(2, 3, 67, 53)
    rng = torch.get_rng_state()
    first = model.predict(x)
    second = model.predict(x)
    assert torch.equal(first, second)
    assert model.training and all(m.training for m in model.modules())  # the flag of every submodule restored
    after = _buffers(model)
    assert before.keys() == after.keys()
    for name, value in before.items():
        assert torch.equal(value, after[name]), name
    assert torch.equal(torch.get_rng_state(), rng)  # no dropout draw, no random NMF bases
    # the same answer as an eval-mode forward on the input padded to the output stride (67 x 53 -> 72 x 56)
    model.eval()
    with torch.no_grad():
        ref = model(F.pad(x, (0, 3, 0, 5)))["out"][..., :67, :53].argmax(1)
    assert torch.equal(first, ref) and first.shape == (2, 67, 53)
    assert not model.training  # an eval-mode model stays in eval mode
    model.predict(x)
    assert not model.training


def test_predict_restores_the_mode_when_forward_fails(monkeypatch) -> None:
    model = _model().train()
    seen = []

    def failing_head(features):
        seen.append(model.training)
        raise RuntimeError("head failed")

    monkeypatch.setattr(model.head, "forward", failing_head)
    with pytest.raises(RuntimeError, match="head failed"):
        model.predict(torch.randn(1, 3, 32, 32))
    assert seen == [False] and model.training
