"""Does the Hamburger carry context? tiny models on the context/consensus scenes, several seeds, through the CLI.

For every (variant, arm, seed) it runs ``hamburger seg fit --config fashion_scenes_<variant>`` (the path users take)
with ``--seed_everything SEED`` (the data stay the same scenes; initialisation and sample order change), then
``hamburger seg validate`` on the final checkpoint and, for models with a gated Hamburger, on a copy of it whose
gates (``coef_ham``) are zero (the branch removed at eval). Finished runs are kept (``run.json`` per run) and
skipped when the command is repeated, so a killed study resumes. ``--jobs`` runs that many trainings at once,
each with ``--threads`` torch threads.

    python benchmarks/variant_study.py --variants context consensus --seeds 0 1 2 --jobs 2 \
        --out benchmarks/results/variant_study
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from hamburger.utils import atomic_write, atomic_write_text

BACKBONE = "backbone_kwargs: {widths: [16, 48, 128], depth: [1, 1, 1]}"
ARMS = {  # name -> (model, extra model_kwargs in YAML flow syntax)
    "tiny_ham": ("tiny_ham", ""),
    "tiny_ham_one_step": ("tiny_ham", "grad_mode: one_step"),
    "tiny_ham_bptt": ("tiny_ham", "grad_mode: bptt"),
    "tiny_ham_implicit3": ("tiny_ham", "grad_mode: implicit, grad_steps: 3"),
    "tiny_fcn": ("tiny_fcn", ""),
    "tiny_attention": ("tiny_attention", ""),
}


def _hamburger(*args: str, threads: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.run(
        [sys.executable, "-m", "hamburger", *args], env=env, capture_output=True, text=True, check=False
    )


def _validate(config: str, model: list[str], ckpt: Path, root: Path, threads: int) -> float:
    results = root / "scores.json"
    result = _hamburger(
        "seg", "validate", "--config", config, *model, "--ckpt_path", str(ckpt), "--trainer.default_root_dir",
        str(root), "--trainer.logger", "false", "--results_json", str(results), threads=threads,
    )  # fmt: skip
    if result.returncode:
        raise RuntimeError(f"validate {ckpt} failed:\n{result.stderr[-3000:]}")
    return float(json.loads(results.read_text())["mIoU"])


def run_one(variant: str, arm: str, seed: int, out: Path, threads: int) -> dict:
    folder = out / variant / arm / f"seed{seed}"
    done = folder / "run.json"
    if done.exists():
        return json.loads(done.read_text())
    model, extra = ARMS[arm]
    kwargs = "{" + BACKBONE + (", " + extra if extra else "") + "}"
    config = f"fashion_scenes_{variant}"
    fit_root = folder / "fit"
    model_args = ["--model.model", model, "--model.model_kwargs", kwargs]
    t0 = time.perf_counter()
    if not (fit_root / "fit_results.json").exists():  # a finished fit is kept
        result = _hamburger(
            "seg", "fit", "--config", config, *model_args, "--seed_everything", str(seed),
            "--trainer.default_root_dir", str(fit_root), "--checkpoint.overwrite", "true",
            "--progress.every_n_steps", "500", threads=threads,
        )  # fmt: skip
        if result.returncode:
            raise RuntimeError(f"fit {variant}/{arm}/seed{seed} failed:\n{result.stderr[-3000:]}")
    fit_seconds = time.perf_counter() - t0
    final = json.loads((fit_root / "fit_results.json").read_text()).get("final") or {}
    ckpt = fit_root / "checkpoints" / "last.ckpt"
    record = {"variant": variant, "arm": arm, "model": model, "model_kwargs": kwargs, "seed": seed,
              "fit_seconds": fit_seconds, "fit_mIoU": final.get("value"),
              "mIoU": _validate(config, model_args, ckpt, folder / "val", threads)}  # fmt: skip
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    gates = {k: v for k, v in state["state_dict"].items() if k.endswith("coef_ham")}
    if gates:
        record["gates"] = {k: float(v.reshape(-1)[0]) for k, v in gates.items()}
        for key in gates:
            state["state_dict"][key] = torch.zeros_like(state["state_dict"][key])
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            ablated = Path(tmp) / "branch_zeroed.ckpt"
            atomic_write(ablated, lambda f: torch.save(state, f))
            record["mIoU_branch_zeroed"] = _validate(config, model_args, ablated, folder / "val_zeroed", threads)
    atomic_write_text(done, json.dumps(record, indent=2) + "\n")
    return record


def summarise(records: list[dict]) -> str:
    lines = ["| variant | arm | seeds | mIoU % mean +- std | per seed | branch zeroed (mean) | abs(gate) (mean) |",
             "|---|---|---:|---:|---|---:|---:|"]  # fmt: skip
    keys = sorted({(r["variant"], r["arm"]) for r in records}, key=lambda k: (k[0], list(ARMS).index(k[1])))
    for variant, arm in keys:
        rs = sorted((r for r in records if (r["variant"], r["arm"]) == (variant, arm)), key=lambda r: r["seed"])
        vals = [100 * r["mIoU"] for r in rs]
        std = statistics.stdev(vals) if len(vals) > 1 else float("nan")
        zeroed = [100 * r["mIoU_branch_zeroed"] for r in rs if "mIoU_branch_zeroed" in r]
        gates = [statistics.mean(abs(g) for g in r["gates"].values()) for r in rs if r.get("gates")]
        lines.append(
            f"| {variant} | {arm} | {len(vals)} | {statistics.mean(vals):.2f} +- {std:.2f} | "
            + " / ".join(f"{v:.2f}" for v in vals)
            + (f" | {statistics.mean(zeroed):.2f} |" if zeroed else " | - |")
            + (f" {statistics.mean(gates):.3f} |" if gates else " - |")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", default=["context", "consensus"])
    parser.add_argument("--arms", nargs="+", default=["tiny_ham", "tiny_fcn"], choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/variant_study")
    args = parser.parse_args(argv)
    out = Path(args.out)
    tasks = [(v, a, s) for v in args.variants for s in args.seeds for a in args.arms]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        records = list(pool.map(lambda t: run_one(*t, out, args.threads), tasks))
    table = summarise(records)
    print(table)
    command = "python benchmarks/variant_study.py " + " ".join(argv if argv is not None else sys.argv[1:])
    atomic_write_text(
        out / f"summary_{'_'.join(args.variants)}.md", f"`{command}` ({time.perf_counter() - t0:.0f} s)\n\n{table}\n"
    )


if __name__ == "__main__":
    main()
