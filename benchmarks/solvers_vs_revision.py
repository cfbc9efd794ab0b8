"""The solvers of this tree against those of an earlier git revision: speed ratios and bit-identity.

Loads ``hamburger`` twice in one process (this tree's ``src`` and ``git archive REV src``), builds the same
solver from both and times them alternately (new, old, new, ...) so both see the same machine state:
forward (eval, no_grad) and forward+backward (train, one-step gradient) on ``1 x C x S x S`` input with
the same initial dictionary, plus whether the outputs are bit-identical.

    python benchmarks/solvers_vs_revision.py --rev 3ebc785 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def load_hamburger(src: Path):
    """Import ``hamburger`` from ``src`` as a fresh module tree (the previous one stays alive through its objects)."""
    for name in [m for m in sys.modules if m == "hamburger" or m.startswith("hamburger.")]:
        del sys.modules[name]
    sys.path.insert(0, str(src))
    try:
        module = importlib.import_module("hamburger")
    finally:
        sys.path.pop(0)
    assert Path(module.__file__).is_relative_to(src), module.__file__
    return module


def paired_times(fns: list, *, warmup: int, repeats: int) -> list[list[float]]:
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append((time.perf_counter() - t0) * 1e3)
    return times


def calls(ham: torch.nn.Module, x: torch.Tensor, bases: torch.Tensor):
    xg = x.clone().requires_grad_()

    def fwd():
        ham.eval()
        with torch.no_grad():
            return ham(x, bases=bases)

    def train():
        ham.train()
        xg.grad = None
        out = ham(xg, bases=bases)
        out.backward(torch.ones_like(out))
        return out.detach(), xg.grad

    return fwd, train


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", required=True, help="git revision to compare against")
    p.add_argument("--hams", nargs="+", default=["nmf", "vq", "cd"])
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 128])
    p.add_argument("--channels", type=int, default=512)
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, help="folder for solvers_vs_revision.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(f"git -C {ROOT} archive {args.rev} src | tar -x -C {tmp}", shell=True, check=True)
        old = load_hamburger(Path(tmp) / "src")
        new = load_hamburger(ROOT / "src")
        rows = []
        for ham_name in args.hams:
            for size in args.sizes:
                torch.manual_seed(0)
                x = torch.randn(1, args.channels, size, size)
                x = x.relu_() if ham_name == "nmf" else x
                draw = torch.rand if ham_name == "nmf" else torch.randn
                bases = torch.nn.functional.normalize(draw(1, args.channels, args.rank), dim=1)
                hams = [
                    m.create_solver(ham_name, rank=args.rank, steps=args.steps, eval_steps=args.steps)
                    for m in (new, old)
                ]
                (n_fwd, n_train), (o_fwd, o_train) = (calls(h, x, bases) for h in hams)
                identical = torch.equal(n_fwd(), o_fwd()) and all(
                    torch.equal(a, b) for a, b in zip(n_train(), o_train(), strict=True)
                )
                samples = paired_times([n_fwd, o_fwd, n_train, o_train], warmup=args.warmup, repeats=args.repeats)
                med = [statistics.median(t) for t in samples]
                mins = [min(t) for t in samples]
                row = {
                    "ham": ham_name, "size": size, "bit_identical": identical,
                    "new_fwd_ms": med[0], "old_fwd_ms": med[1], "new_train_ms": med[2], "old_train_ms": med[3],
                    "fwd_ratio": med[0] / med[1], "train_ratio": med[2] / med[3],
                    "fwd_ratio_min": mins[0] / mins[1], "train_ratio_min": mins[2] / mins[3],
                }  # fmt: skip
                rows.append(row)
                print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "args": {k: str(v) for k, v in vars(args).items()},
            "note": "ratios are new / old of medians (and of mins) over alternating repeats; < 1 is faster",
        }
        (args.out / "solvers_vs_revision.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
