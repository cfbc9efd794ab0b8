"""Singular-value energy of features around the Hamburger, and the code-map figure (issue 13)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hamburger.experiments.spectrum import (
    block_spectrum,
    save_code_maps,
    singular_value_energies,
    singular_value_energy,
)
from hamburger.models import create_model


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _reference(features: torch.Tensor, rank: int, center: bool = False) -> float:
    values = []
    for sample in features.double().numpy().reshape(features.shape[0], features.shape[1], -1):
        if center:
            sample = sample - sample.mean(axis=1, keepdims=True)
        s2 = np.linalg.svd(sample, compute_uv=False) ** 2
        values.append(s2[:rank].sum() / s2.sum())
    return float(np.mean(values))


@pytest.mark.parametrize("center", [False, True])
def test_energy_matches_a_float64_svd_reference(center):
    features = _x(3, 12, 7, 9).relu() + 0.1  # non-negative, as NMF features are
    for rank in (1, 2, 5, 12):
        expected = _reference(features, rank, center)
        assert singular_value_energy(features, rank, center=center) == pytest.approx(expected, rel=1e-12)
    assert singular_value_energies(features, [1, 5], center=center) == pytest.approx(
        [_reference(features, 1, center), _reference(features, 5, center)], rel=1e-12
    )


def test_energy_of_known_spectra():
    u, v = _x(6, 1), _x(1, 11, seed=1)
    assert singular_value_energy(u @ v, 1) == pytest.approx(1.0, abs=1e-12)  # a rank-1 (d, n) matrix
    assert singular_value_energy(torch.diag(torch.tensor([3.0, 2.0, 1.0])), 1) == pytest.approx(9 / 14)
    assert singular_value_energy(torch.diag(torch.tensor([3.0, 2.0, 1.0])), 2) == pytest.approx(13 / 14)
    assert singular_value_energy(_x(2, 4, 3, 3), 100) == pytest.approx(1.0)  # rank above min(d, n)
    assert singular_value_energy(torch.zeros(2, 4, 3, 3), 1) == 1.0
    # a spatially constant map is rank one, and nothing is left of it after centring
    constant = _x(1, 5, 1, 1).expand(1, 5, 4, 6)
    assert singular_value_energy(constant, 1) == pytest.approx(1.0)
    assert singular_value_energy(constant, 1, center=True) == 1.0


def test_energy_errors():
    with pytest.raises(ValueError, match="rank must be a positive int"):
        singular_value_energy(_x(4, 5), 0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        singular_value_energy([[1.0]], 1)
    with pytest.raises(ValueError, match="NaN or inf"):
        singular_value_energy(torch.tensor([[1.0, float("nan")]]), 1)
    with pytest.raises(ValueError, match="non-empty"):
        singular_value_energy(torch.ones(5), 1)


def test_block_spectrum_of_a_tiny_model_uses_the_block_input_and_output():
    torch.manual_seed(0)
    model = create_model("tiny_ham", gate_init=0.5, norm_layer="batch").train()
    images = _x(2, 3, 67, 53)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    seen = {}
    handle = model.head.context.register_forward_hook(lambda m, a, o: seen.update(x=a[0], y=o))
    with torch.no_grad():
        model.eval()(images)
    handle.remove()
    model.train()
    result = block_spectrum(model, images, ranks=(1, 2, 4, 8, 16))
    assert list(result) == ["head.context"]
    entry = result["head.context"]
    assert entry["ranks"] == [1, 2, 4, 8, 16]
    for key, features in (("input", seen["x"]), ("output", seen["y"])):
        values = entry[key]
        assert values == pytest.approx([_reference(features, r) for r in (1, 2, 4, 8, 16)], rel=1e-9)
        assert all(0 < a <= b <= 1 for a, b in zip(values, values[1:], strict=False))
    assert model.training and model.head.context.training  # modes restored
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())
    with pytest.raises(ValueError, match="no Hamburger"):
        block_spectrum(create_model("tiny_fcn"), images)


def test_save_code_maps_writes_one_row_per_image_with_the_code_columns(tmp_path: Path):
    torch.manual_seed(0)
    model = create_model("tiny_ham", gate_init=0.5)
    images = _x(3, 3, 67, 53)
    out = tmp_path / "maps" / "codes.png"
    info = save_code_maps(model, images, out, max_images=2, max_codes=5)
    assert info == {"block": "head.context", "images": 2, "codes": 5, "path": str(out)}
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size == (int(1.6 * 8 * 100), int((1.6 * 2 + 0.4) * 100))
        pixels = np.asarray(png.convert("L"))
    assert pixels.std() > 10  # something is drawn
    assert sorted(p.name for p in out.parent.iterdir()) == ["codes.png"]  # no temporary file left
    # the identity ham has no codes: only the image, input and output columns
    ident = create_model("tiny_ham", context="identity_ham")
    assert save_code_maps(ident, images, tmp_path / "ident.png")["codes"] == 0
    with pytest.raises(ValueError, match="not a Hamburger"):
        save_code_maps(create_model("tiny_fcn"), images, tmp_path / "x.png")
