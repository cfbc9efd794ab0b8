"""What trained tiny models do with their Hamburger: evaluation-time studies on the variant-study checkpoints.

Runs no training: it loads the final checkpoints that ``benchmarks/variant_study.py`` trained (context scenes,
1000 steps, seeds 0-2) and, per model, evaluates on the config's validation split (300 scenes)
- the branch zeroed / replaced by its spatial mean (``hamburger.experiments.diagnostics.branch_ablation``), the
  gate value;
- eval steps K in {1, 3, 6, 7, 12, 20} (trained with K = 6; the default eval K is 7);
- the eval dictionary: ``fixed`` (the default, deterministic) vs ``random`` (the official code), 5 repeats each,
  with the spread of mIoU over the repeats;
- the off-token share of the block's input gradient (train mode, the training gradient) on 8 validation images;
- the singular-value energy of the block's input and output at ranks 1-16 (``hamburger.experiments.spectrum``);
- code maps of the first model (PNG).

    python benchmarks/posthoc.py --studies benchmarks/results/variant_study --out benchmarks/results/posthoc
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

from hamburger.experiments.diagnostics import branch_ablation, find_hamburgers, off_token_gradient_share
from hamburger.experiments.registry import Evaluation
from hamburger.experiments.runner import evaluate
from hamburger.experiments.spectrum import block_spectrum, save_code_maps
from hamburger.recipes.seg.datamodule import SegDataModule
from hamburger.recipes.seg.predict import load_module
from hamburger.utils import atomic_write_text
from hamburger.utils.configs import find_config

ARMS = ("tiny_ham_implicit3", "tiny_ham_bptt", "tiny_ham_one_step")
EVAL_STEPS = (1, 3, 6, 7, 12, 20)


def _stats(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    values = [scale * v for v in values]
    spread = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.{digits}f} +- {spread:.{digits}f}"


def study(ckpt: Path, dataset, images: torch.Tensor, code_maps: Path | None) -> dict:
    module, _ = load_module(str(ckpt))
    model = module.net
    record: dict = {"ckpt": str(ckpt)}
    record["mIoU"] = evaluate(module, dataset, batch_size=50)
    for mode in ("zero", "mean"):
        with branch_ablation(model, mode):
            record[f"branch_{mode}"] = evaluate(module, dataset, batch_size=50)
    record["gate"] = [float(b.coef_ham.detach().reshape(-1)[0]) for _, b in find_hamburgers(model)]
    record["eval_steps"] = {
        k: evaluate(module, dataset, batch_size=50, evaluation=Evaluation(name=f"K{k}", solver={"eval_steps": k}))
        for k in EVAL_STEPS
    }
    record["eval_init"] = {
        init: evaluate(module, dataset, batch_size=50,
                       evaluation=Evaluation(name=init, solver={"eval_init": init}, repeats=5))
        for init in ("fixed", "random")
    }  # fmt: skip
    name = find_hamburgers(model)[0][0]
    model.train()
    record["off_token_share"] = off_token_gradient_share(model, images, block=name, num_points=16)
    model.eval()
    record["spectrum"] = block_spectrum(model, images, ranks=(1, 2, 4, 8, 16))[name]
    if code_maps is not None:
        save_code_maps(model, images[:3], code_maps)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", default="benchmarks/results/variant_study")
    parser.add_argument("--variant", default="context")
    parser.add_argument("--out", default="benchmarks/results/posthoc")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    config = yaml.safe_load(Path(find_config(f"fashion_scenes_{args.variant}")).read_text())
    datamodule = SegDataModule(**config["data"])
    dataset = datamodule.get_dataset("val")
    images = torch.stack([dataset[i]["image"] for i in range(8)])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, list[dict]] = {}
    for arm in ARMS:
        for ckpt in sorted(Path(args.studies, args.variant, arm).glob("seed*/fit/checkpoints/last.ckpt")):
            first = arm == ARMS[0] and not records.get(arm)
            records.setdefault(arm, []).append(study(ckpt, dataset, images, out / "code_maps.png" if first else None))
    lines = [
        "| arm | seeds | mIoU % | branch zeroed | branch -> spatial mean | abs(gate) | off-token grad share "
        "| energy r=1 in -> out | r=4 in -> out |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for arm, rs in records.items():
        e_in = [r["spectrum"]["input"] for r in rs]
        e_out = [r["spectrum"]["output"] for r in rs]
        lines.append(
            f"| {arm} | {len(rs)} | {_stats([r['mIoU']['mIoU'] for r in rs])} | "
            f"{_stats([r['branch_zero']['mIoU'] for r in rs])} | {_stats([r['branch_mean']['mIoU'] for r in rs])} | "
            f"{statistics.mean(abs(r['gate'][0]) for r in rs):.3f} | "
            f"{_stats([r['off_token_share'] for r in rs], scale=1, digits=3)} | "
            f"{statistics.mean(e[0] for e in e_in):.3f} -> {statistics.mean(e[0] for e in e_out):.3f} | "
            f"{statistics.mean(e[2] for e in e_in):.3f} -> {statistics.mean(e[2] for e in e_out):.3f} |"
        )
    lines += ["", "mIoU % by eval steps K (trained with K = 6; the models' default eval K is 7):", "",
              "| arm | " + " | ".join(f"K={k}" for k in EVAL_STEPS) + " |",
              "|---|" + "---:|" * len(EVAL_STEPS)]  # fmt: skip
    for arm, rs in records.items():
        cells = [_stats([r["eval_steps"][k]["mIoU"] for r in rs]) for k in EVAL_STEPS]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += ["", "Eval dictionary, 5 evaluations per model: mIoU % (mean over models) and the spread over the "
              "repeats (mean over models of the std of the 5 evaluations):", "",
              "| arm | fixed (default) | spread | random (official) | spread |",
              "|---|---:|---:|---:|---:|"]  # fmt: skip
    for arm, rs in records.items():
        cells = []
        for init in ("fixed", "random"):
            cells.append(_stats([r["eval_init"][init]["mIoU"] for r in rs]))
            cells.append(f"{100 * statistics.mean(r['eval_init'][init].get('mIoU_spread', 0.0) for r in rs):.3f}")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    command = "python benchmarks/posthoc.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = f"`{command}` ({time.perf_counter() - t0:.0f} s)\n\n" + "\n".join(lines)
    print(text)
    atomic_write_text(out / "summary.md", text + "\n")
    atomic_write_text(out / "summary.json", json.dumps(records, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
