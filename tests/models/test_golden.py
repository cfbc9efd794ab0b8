"""Golden forward outputs: every registered model, built with a fixed seed, gives the committed output.

A change to a model's structure, initialisation or forward computation changes these numbers. If the
change is intended, regenerate the files and commit them with the change that explains why::

    PYTHONPATH=src python tests/models/make_golden.py            # every registered model
    PYTHONPATH=src python tests/models/make_golden.py tiny_ham   # only some

Each ``golden/<name>.safetensors`` holds the eval-mode outputs (``out``, and ``aux`` where the model has an
auxiliary head) for the fixed input below, float32, with the settings in its metadata.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, safe_open
from test_models import NUM_CLASSES, SMALL, TINY

from hamburger.models import create_model, list_models

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
INPUT_SHAPE = (1, 3, 45, 37)  # not multiples of 8: the resize paths run (and stride-32 backbones still fit)
MODEL_SEED = 0
INPUT_SEED = 1234
RTOL = ATOL = 1e-4


def golden_settings(name: str) -> dict[str, str]:
    """What the golden output of ``name`` depends on (stored as the file's metadata, checked on load)."""
    return {
        "name": name,
        "num_classes": str(NUM_CLASSES),
        "overrides": json.dumps(SMALL.get(name, {}), sort_keys=True),
        "input_shape": json.dumps(list(INPUT_SHAPE)),
        "model_seed": str(MODEL_SEED),
        "input_seed": str(INPUT_SEED),
        "perturbation": "by-name-v1",
    }


def golden_input() -> torch.Tensor:
    generator = torch.Generator().manual_seed(INPUT_SEED)
    return torch.randn(INPUT_SHAPE, generator=generator)


@torch.no_grad()
def perturb_by_name(model: torch.nn.Module) -> None:
    """Add noise to every floating parameter and buffer, drawn from a generator seeded by the tensor's NAME.

    Initialisation leaves paths switched off (a zero-initialised ham gate ``coef_ham``, BatchNorm statistics of
    0 and 1, zero biases), so a change there would not move the output. The noise depends only on the state-dict
    key and shape, not on construction order: 10% of the tensor's spread (0.1 for constant tensors), and running
    variances are scaled by a factor in (0.5, 1.5) so that they stay positive.
    """
    for key, tensor in model.state_dict(keep_vars=True).items():
        if not tensor.is_floating_point():
            continue
        generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32).to(tensor.dtype)
        if key.endswith("running_var"):
            tensor.mul_(1 + 0.5 * noise.tanh())
            continue
        spread = tensor.float().std().item() if tensor.numel() > 1 else 0.0
        tensor.add_(noise, alpha=0.1 * (spread if spread > 0 else 1.0))


def forward_outputs(name: str) -> dict[str, torch.Tensor]:
    """Eval-mode outputs of model ``name``: seed ``MODEL_SEED``, the reduced sizes of test_models, then
    :func:`perturb_by_name`."""
    torch.manual_seed(MODEL_SEED)
    model = create_model(name, num_classes=NUM_CLASSES, **SMALL.get(name, {})).eval()
    perturb_by_name(model)
    with torch.no_grad():
        out = model(golden_input())
    return {key: value.detach().to(torch.float32).contiguous() for key, value in out.items()}


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.safetensors"


def _params(name: str):
    return pytest.param(name, marks=() if name in TINY else (pytest.mark.slow,))


def test_every_registered_model_has_a_golden_file():
    missing = [name for name in list_models() if not golden_path(name).is_file()]
    assert not missing, f"no golden output for {missing}: run PYTHONPATH=src python tests/models/make_golden.py"
    stale = sorted(p.stem for p in GOLDEN_DIR.glob("*.safetensors") if p.stem not in list_models())
    assert not stale, f"golden files for models that are no longer registered: {stale}"


@pytest.mark.parametrize("name", [_params(n) for n in list_models()])
def test_forward_output_matches_golden(name):
    path = golden_path(name)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata == golden_settings(name), f"{path.name} was made with other settings; regenerate it"
    expected = load_file(str(path))
    actual = forward_outputs(name)
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert actual[key].shape == (1, NUM_CLASSES, *INPUT_SHAPE[2:])
        torch.testing.assert_close(
            actual[key], value, rtol=RTOL, atol=ATOL, msg=lambda m, key=key: f"{name}/{key}: {m}"
        )
