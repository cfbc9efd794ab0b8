"""HamGAN vs SAGAN vs no context (SNGAN-projection) on the embedded Fashion-MNIST, same budget, several seeds.

Every (config, seed) runs ``hamburger gan fit --config fashion_<gan>`` with ``--seed_everything/--model.seed/
--data.seed SEED`` and ``--trainer.max_steps STEPS`` (the path users take), then ``hamburger gan evaluate`` on the
final checkpoint (EMA generator; FID/KID/IS on the shipped Fashion-MNIST classifier features, ``--num_samples``
generated images against the 10k real ones). Finished runs are kept and skipped when the command is repeated.
The generator forward time at 32x32 and 128x128 is measured in this process, the three models interleaved.

    python benchmarks/gan_study.py --steps 500 --seeds 0 1 --jobs 2 --out benchmarks/results/gan_study
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from hamburger.utils import atomic_write_text

GANS = {"hamgan": "hamgan_{}", "sagan": "sagan_{}", "sngan": "sngan_{}"}
NAMES_128 = {"hamgan": "hamgan_baby_128", "sagan": "sagan_128", "sngan": "sngan_128"}  # the paper's architecture


def _hamburger(*args: str, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    result = subprocess.run([sys.executable, "-m", "hamburger", *args], env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"hamburger {' '.join(args)} failed:\n{result.stderr[-3000:]}")


def run_one(gan: str, seed: int, *, steps: int, samples: int, root: Path, threads: int) -> dict:
    folder = root / "runs" / gan / f"seed{seed}"
    done = folder / "run.json"
    if done.exists():
        return json.loads(done.read_text())
    fit_root = folder / "fit"
    t0 = time.perf_counter()
    if not (fit_root / "fit_results.json").exists():
        _hamburger(
            "gan", "fit", "--config", f"fashion_{gan}", "--seed_everything", str(seed), "--model.seed", str(seed),
            "--data.seed", str(seed), "--trainer.max_steps", str(steps), "--trainer.default_root_dir", str(fit_root),
            "--samples.every_n_steps", str(steps), "--checkpoint.overwrite", "true", threads=threads,
        )  # fmt: skip
    fit_seconds = time.perf_counter() - t0
    fit_summary = json.loads((fit_root / "fit_results.json").read_text())
    fit_seconds = fit_summary.get("wall_seconds") or fit_seconds  # the fit's own wall time, also when resumed here
    scores_path = folder / "scores.json"
    _hamburger(
        "gan", "evaluate", "--ckpt_path", str(fit_root / "checkpoints" / "last.ckpt"), "--num-samples",
        str(samples), "--features", "fmnist", "--output", str(scores_path), threads=threads,
    )  # fmt: skip
    scores = json.loads(scores_path.read_text())
    grids = sorted((fit_root / "samples").glob("step*.png"))
    record = {"gan": gan, "seed": seed, "steps": steps, "fit_seconds": fit_seconds, "scores": scores,
              "grid": str(grids[-1]) if grids else None}  # fmt: skip
    atomic_write_text(done, json.dumps(record, indent=2) + "\n")
    return record


def class_accuracy(ckpt_path: str, *, samples: int, seed: int = 0) -> dict:
    """How often the shipped Fashion-MNIST classifier (86 % on held-out real images) assigns the EMA generator's
    images the class they were generated for: the "recognisable class-conditional samples" of the issue, per class
    and overall (``samples`` images, labels cycling over the classes, noise from ``seed``)."""
    from hamburger.recipes.gan.features import load_feature_network, to_uint8
    from hamburger.recipes.gan.generate import load_generator

    loaded = load_generator(ckpt_path)
    g, classifier = loaded.generator, load_feature_network("fmnist")
    y = torch.arange(samples) % g.num_classes
    z = torch.randn(samples, g.z_dim, generator=torch.Generator().manual_seed(seed))
    hits = torch.zeros(g.num_classes)
    with torch.no_grad():
        for zb, yb in zip(z.split(250), y.split(250), strict=True):
            predicted = classifier.logits(to_uint8(g(zb, yb))).argmax(1)
            hits += torch.bincount(yb[predicted == yb], minlength=g.num_classes).float()
    per_class = (hits / torch.bincount(y, minlength=g.num_classes).float()).tolist()
    return {"class_acc": float(hits.sum()) / samples, "class_acc_per_class": per_class}


def forward_times(repeats: int) -> dict:
    """Median G forward (eval, no_grad) per model at 32x32 (batch 16, the fashion configs' widths) and 128x128
    (batch 1, the paper's widths), the models interleaved; parameters of G and D."""
    from hamburger.models.gan import create_gan

    torch.set_num_threads(2)
    out: dict[str, dict] = {}
    for size, batch, kwargs in ((32, 16, {"g_channels": 8, "d_channels": 16}), (128, 1, {})):
        models = {}
        for gan, name in GANS.items():
            g, d = create_gan(name.format(size) if size == 32 else NAMES_128[gan], **kwargs)
            models[gan] = (g.eval(), sum(p.numel() for p in g.parameters()), sum(p.numel() for p in d.parameters()))
        z = torch.randn(batch, models["hamgan"][0].z_dim)
        y = torch.arange(batch) % models["hamgan"][0].num_classes
        times: dict[str, list[float]] = {gan: [] for gan in GANS}
        with torch.no_grad():
            for gan in GANS:
                models[gan][0](z, y)  # warm-up
            for _ in range(repeats):
                for gan in GANS:
                    t0 = time.perf_counter()
                    models[gan][0](z, y)
                    times[gan].append((time.perf_counter() - t0) * 1e3)
        for gan in GANS:
            out.setdefault(gan, {})[f"g_ms@{size}"] = statistics.median(times[gan])
            out[gan][f"g_params@{size}"] = models[gan][1]
            out[gan][f"d_params@{size}"] = models[gan][2]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/gan_study")
    args = parser.parse_args(argv)
    root = Path(args.out)
    t0 = time.perf_counter()
    tasks = [(gan, seed) for seed in args.seeds for gan in GANS]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        records = list(pool.map(lambda t: run_one(*t, steps=args.steps, samples=args.samples, root=root,
                                                  threads=args.threads), tasks))  # fmt: skip
    for r in records:  # cheap (seconds): computed at every call, not stored with the run
        r.update(class_accuracy(r["scores"]["ckpt_path"], samples=args.samples))
    cost = forward_times(args.repeats)
    lines = [
        "| model | seeds | FID | KID x 1e3 | IS | class acc % | G params (32 / 128) | D params (32 / 128) "
        "| G ms @32 (b16) | G ms @128 (b1) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for gan in GANS:
        rs = [r for r in records if r["gan"] == gan]
        fid = [r["scores"]["fid"] for r in rs]
        kid = [1e3 * r["scores"]["kid_mean"] for r in rs]
        inception = [r["scores"]["is_mean"] for r in rs]
        accuracy = [100 * r["class_acc"] for r in rs]

        def cell(values: list[float], digits: int) -> str:
            spread = statistics.stdev(values) if len(values) > 1 else float("nan")
            return f"{statistics.mean(values):.{digits}f} +- {spread:.{digits}f}"

        c = cost[gan]
        lines.append(
            f"| {gan} | {len(rs)} | {cell(fid, 1)} | {cell(kid, 1)} | {cell(inception, 2)} | {cell(accuracy, 1)} | "
            f"{c['g_params@32']:,} / {c['g_params@128']:,} | {c['d_params@32']:,} / {c['d_params@128']:,} | "
            f"{c['g_ms@32']:.1f} | {c['g_ms@128']:.0f} |"
        )
        for r in rs:  # the sample grid of each run next to the results
            if r["grid"] and Path(r["grid"]).exists():
                shutil.copyfile(r["grid"], root / f"grid_{gan}_seed{r['seed']}.png")
    per_seed = [f"- {r['gan']} seed {r['seed']}: FID {r['scores']['fid']:.1f}, KID {r['scores']['kid_mean']:.4f}, "
                f"IS {r['scores']['is_mean']:.2f}, class acc {100 * r['class_acc']:.1f} % (per class "
                f"{' '.join(f'{100 * a:.0f}' for a in r['class_acc_per_class'])}), fit {r['fit_seconds']:.0f} s"
                for r in records]  # fmt: skip
    features = records[0]["scores"].get("features")
    command = "python benchmarks/gan_study.py " + " ".join(argv if argv is not None else sys.argv[1:])
    fits = [r["fit_seconds"] for r in records]
    head = (f"`{command}` ({time.perf_counter() - t0:.0f} s in this call; the {len(fits)} fits took "
            f"{min(fits) / 60:.0f}-{max(fits) / 60:.0f} min each, {args.threads} thread(s), {args.jobs} at a time; "
            f"features {features}, {args.samples} generated vs {records[0]['scores'].get('num_real')} real "
            "images)")  # fmt: skip
    text = head + "\n\n" + "\n".join(lines) + "\n\n" + "\n".join(per_seed)
    print(text)
    atomic_write_text(root / "summary.md", text + "\n")
    atomic_write_text(root / "summary.json", json.dumps({"records": records, "cost": cost}, indent=2) + "\n")


if __name__ == "__main__":
    main()
