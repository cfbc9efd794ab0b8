"""Confusion-matrix scores and test-time inference modes (single, multi-scale + flip, sliding window)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from hamburger.recipes.seg.inference import infer, multiscale_logits, single_logits, slide_logits
from hamburger.recipes.seg.metrics import build_confmat, format_table, scores_from_confmat, write_json


def test_scores_hand_counted() -> None:
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = build_confmat(4)
    cm.update(pred[None], target[None])
    scores = scores_from_confmat(cm.compute(), ["a", "b", "c", "d"])
    # ignore (255) pixels dropped: 6 counted
    # class 0: TP1 FP1 FN1 -> 1/3; class 1: TP2 FP1 -> 2/3; class 2: TP1 FN1 -> 1/2
    assert scores["num_pixels"] == 6
    assert scores["per_class"]["a"]["IoU"] == pytest.approx(1 / 3)
    assert scores["per_class"]["b"]["IoU"] == pytest.approx(2 / 3)
    assert scores["per_class"]["c"]["IoU"] == pytest.approx(1 / 2)
    assert math.isnan(scores["per_class"]["d"]["IoU"])  # absent class: left out of the mean
    assert scores["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert scores["aAcc"] == pytest.approx(4 / 6)
    assert scores["mAcc"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)


def test_confmat_is_additive_over_batches() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 5, (6, 8, 8), generator=g)
    target = torch.randint(0, 5, (6, 8, 8), generator=g)
    target[:, :2] = 255
    whole, parts = build_confmat(5), build_confmat(5)
    whole.update(pred, target)
    for i in range(0, 6, 4):
        parts.update(pred[i : i + 4], target[i : i + 4])
    assert torch.equal(whole.compute(), parts.compute())
    assert int(whole.compute().sum()) == 6 * 6 * 8


def test_table_and_json(tmp_path) -> None:
    cm = torch.tensor([[3, 1, 0], [0, 0, 0], [0, 0, 0]])
    scores = scores_from_confmat(cm, ["bg", "thing", "absent"])
    table = format_table(scores, title="demo")
    assert "bg" in table and "thing" in table and "mIoU  37.50" in table
    write_json(scores, tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["mIoU"] == pytest.approx(0.375) and data["per_class"]["absent"]["IoU"] is None
    assert data["confusion_matrix"] == cm.tolist()


class _PointwiseNet(nn.Module):
    """A 1x1 conv: translation- and flip-equivariant, so every inference mode has a closed form."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> dict:
        return {"out": self.conv(x)}


def test_slide_equals_single_for_pointwise_model() -> None:
    net = _PointwiseNet().eval()
    x = torch.randn(2, 3, 21, 30)
    ref = single_logits(net, x)
    for crop, stride in ((8, 5), ((10, 16), (7, 9)), (32, 32)):  # overlapping, rectangular, larger than image
        torch.testing.assert_close(slide_logits(net, x, crop_size=crop, stride=stride), ref, rtol=1e-5, atol=1e-5)


def test_multiscale_flip_sums_logits() -> None:
    net = _PointwiseNet().eval()
    x = torch.randn(1, 3, 16, 16)
    ref = single_logits(net, x)
    torch.testing.assert_close(multiscale_logits(net, x, scales=(1.0,), flip=True), 2 * ref)
    # a 1x1 conv commutes with bilinear resizing up to interpolation of a constant -> check a constant image
    const = torch.ones(1, 3, 16, 16)
    out = infer(net, const, mode="multiscale", scales=(0.5, 1.0, 1.5), flip=True)
    torch.testing.assert_close(out, 6 * single_logits(net, const), rtol=1e-5, atol=1e-5)


class _ShiftSensitive(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # bare tensor output is accepted too
        return x[:, :2] * torch.arange(x.shape[-1]) / 5  # a ramp from the left edge (unchanged by right padding)


def test_flip_views_are_flipped_back() -> None:
    x = torch.ones(1, 3, 4, 6)
    out = multiscale_logits(_ShiftSensitive(), x, scales=(1.0,), flip=True)
    ramp = torch.arange(6) / 5
    torch.testing.assert_close(out[0, 0, 0], ramp + ramp.flip(0))


def test_infer_bad_arguments() -> None:
    net = _PointwiseNet()
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="mode"):
        infer(net, x, mode="tta")
    with pytest.raises(ValueError, match="crop_size"):
        infer(net, x, mode="slide")
    with pytest.raises(ValueError, match="scales"):
        multiscale_logits(net, x, scales=())


def test_evaluate_loop_counts_all_pixels() -> None:
    from hamburger.recipes.seg.evaluate import evaluate

    net = _PointwiseNet()
    g = torch.Generator().manual_seed(1)
    batches = [{"image": torch.randn(2, 3, 8, 8, generator=g), "mask": torch.randint(0, 4, (2, 8, 8), generator=g)}]
    batches[0]["mask"][0, 0] = 255
    scores = evaluate(net, batches, num_classes=4, mode="slide", crop_size=4, stride=3)
    assert net.training  # mode restored
    ref = build_confmat(4)
    ref.update(single_logits(net.eval(), batches[0]["image"]).argmax(1), batches[0]["mask"])
    assert scores["confusion_matrix"] == ref.compute().tolist()
    assert scores["num_pixels"] == 2 * 64 - 8
