"""Regenerate tests/models/golden/<name>.safetensors (see tests/models/test_golden.py).

Usage (from the repository root)::

    PYTHONPATH=src python tests/models/make_golden.py [NAME ...]

Without names, every registered model is written. Files are written atomically; commit them together with
the change that moved the outputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from safetensors.torch import save_file  # noqa: E402
from test_golden import GOLDEN_DIR, forward_outputs, golden_path, golden_settings  # noqa: E402

from hamburger.models import list_models  # noqa: E402
from hamburger.utils import atomic_write  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="registered model names (default: all)")
    args = parser.parse_args(argv)
    names = args.names or list_models()
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list_models()}")
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for name in names:
        outputs = forward_outputs(name)
        path = golden_path(name)
        atomic_write(
            path, lambda tmp, outputs=outputs, name=name: save_file(outputs, tmp, metadata=golden_settings(name))
        )
        shapes = ", ".join(f"{key} {tuple(value.shape)}" for key, value in outputs.items())
        print(f"wrote {path} ({shapes})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
