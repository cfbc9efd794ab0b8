"""``hamburger seg compare``: Hamburger vs baselines, trained and evaluated the same way.

Runs ``hamburger seg fit`` once per model with one config (same data, seed, schedule, head width), changing
only ``--model.model``, evaluates every final model on the same validation split and prints the scores side by
side (also written to ``<root>/compare.json``) with each model's cost, measured on the trained model right
after its fit (:func:`seg_cost`: peak memory of a training step, forward GFLOPs at the crop size and at
``--cost_size``, forward latency at ``--cost_size``; ``--no_cost`` skips it). The loop itself is the training core's
(:func:`hamburger.training.compare.compare_runs`); this module holds what is about segmentation: the model
names, the scores kept per run and the table.

    hamburger seg compare --config fashion_scenes [--baseline tiny_attention [tiny_fcn ...]]
        [--timing_warmup N] [--cost_size S | --no_cost] [overrides ...]
"""

from __future__ import annotations

from typing import Any

from ...training.compare import BuildCLI, compare_main, compare_runs
from ...training.cost import DEFAULT_COST_SIZE, model_cost

__all__ = ["DEFAULT_BASELINES", "format_comparison", "main", "run_compare", "seg_cost", "seg_scores"]

DEFAULT_BASELINES = ("tiny_attention",)


def seg_scores(cli: Any) -> dict[str, Any]:
    """The scores kept per run: mIoU, aAcc, mAcc and the per-class IoU (class name -> IoU) of the last validation."""
    scores = cli.model.last_scores
    return {
        "mIoU": scores["mIoU"],
        "aAcc": scores["aAcc"],
        "mAcc": scores["mAcc"],
        "per_class_IoU": {k: v["IoU"] for k, v in scores["per_class"].items()},
    }


def seg_cost(cli: Any, *, large_size: int | tuple[int, int] = DEFAULT_COST_SIZE) -> dict[str, Any]:
    """:func:`~hamburger.training.cost.model_cost` of a fitted run's network, the way it was trained.

    The training step is the recipe's: a batch of ``data.batch_size`` RGB images at ``data.crop_size``, the
    network's forward in train mode, the loss of :class:`~hamburger.recipes.seg.module.SegModule` (cross-entropy
    of ``out`` plus ``aux_weight`` times that of ``aux``, against random labels) and backward. FLOPs and latency
    are those of the network's forward on one image (eval mode, no test-time augmentation).
    """
    import torch

    module, data = cli.model, cli.datamodule
    aux_weight = float(module.hparams.aux_weight)

    def make_loss(batch: torch.Tensor) -> Any:
        g = torch.Generator().manual_seed(0)
        labels = torch.randint(0, module.hparams.num_classes, (batch.shape[0], *batch.shape[-2:]), generator=g)
        labels = labels.to(batch.device)

        def loss(output: Any) -> torch.Tensor:
            output = output if isinstance(output, dict) else {"out": output}
            total = module._ce(output["out"], labels)
            if output.get("aux") is not None and aux_weight > 0:
                total = total + aux_weight * module._ce(output["aux"], labels)
            return total

        return loss

    return model_cost(
        module.net, input_size=data.crop_size, batch_size=data.batch_size, large_size=large_size,
        device=module.device, make_loss=make_loss,
    )  # fmt: skip


def check_model_names(models: list[str]) -> None:
    """Refuse names that are not registered models (before anything is trained)."""
    from ...models import list_models

    unknown = [m for m in models if m not in list_models()]
    if unknown:
        raise ValueError(f"unknown model name(s) {unknown}; registered models: {list_models()}")


def run_compare(
    config: str, *, models: list[str], root: str, overrides: list[str], build_cli: BuildCLI, cost: bool = True
) -> list[dict]:
    """Fit each of ``models`` with ``config`` + ``overrides`` under ``root/<model>``; return their results (with
    :func:`seg_cost` at the default large size unless ``cost=False``)."""
    return compare_runs(
        build_cli, config=config, models=models, root=root, overrides=overrides, score=seg_scores,
        cost=seg_cost if cost else None,
    )  # fmt: skip


def _pct(value: float | None, width: int) -> str:
    if value is None or value != value:  # no IoU: the class is neither in the labels nor predicted
        return f"{'-':>{width}}"
    return f"{100 * value:>{width}.2f}"


def _size_label(size: Any) -> str:
    h, w = size
    return str(h) if h == w else f"{h}x{w}"


def _number(value: float | None, width: int, spec: str) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"


def _fixed(values: list[Any]) -> str:
    """A fixed-point format for a column: 4 decimals below 1, one fewer per decade above, at least 1."""
    top = max((abs(v) for v in values if v is not None), default=0.0)
    decimals = 4 if top < 1 else 3 if top < 10 else 2 if top < 100 else 1
    return f".{decimals}f"


def format_comparison(results: list[dict]) -> str:
    """The summary table (one row per model, with footnotes defining the columns), then the per-class IoU (one
    row per class, one column per model).

    ``s/step`` is the mean time of a training step after the untimed warm-up steps (see
    :class:`hamburger.training.compare.StepTimer`), ``train s`` the whole ``trainer.fit``. When the rows have a
    ``cost`` (:func:`seg_cost`): ``peak MiB`` (one training step), ``GFLOPs@S`` (forward of one image at the crop
    size and at the large size) and ``ms@L`` (forward latency at the large size L).
    """
    costs = [r["cost"] for r in results if r.get("cost")]
    first = costs[0] if costs else None
    width = max([len("model"), *(len(r["model"]) for r in results)])
    header = f"{'model':<{width}} {'params':>9} {'steps':>6} {'s/step':>7} {'train s':>7}"
    if first is not None:
        small, large = _size_label(first["input_size"]), _size_label(first["large_size"])
        cost_heads = ["peak MiB", f"GFLOPs@{small}", f"GFLOPs@{large}", f"ms@{large}"]
        cost_widths = [max(8, len(h)) for h in cost_heads]
        header += "".join(f" {h:>{w}}" for h, w in zip(cost_heads, cost_widths, strict=True))
        specs = [".1f", *(_fixed([c.get(k) for c in costs]) for k in ("gflops", "gflops_large")), ".1f"]
    lines = [header + f" {'mIoU %':>6} {'aAcc %':>6} {'mAcc %':>6}"]
    for r in results:
        seconds = r["train_seconds"] if r["train_seconds"] is not None else float("nan")
        step = r.get("step_seconds")
        step_text = f"{step:>7.4f}" if step is not None else f"{'n/a':>7}"
        line = f"{r['model']:<{width}} {r['params']:>9,d} {r['steps']:>6d} {step_text} {seconds:>7.1f}"
        if first is not None:
            c = r.get("cost") or {}
            keys = ("train_peak_mib", "gflops", "gflops_large", "latency_large_ms")
            line += "".join(
                f" {_number(c.get(k), w, spec)}" for k, w, spec in zip(keys, cost_widths, specs, strict=True)
            )
        lines.append(line + f" {100 * r['mIoU']:>6.2f} {100 * r['aAcc']:>6.2f} {100 * r['mAcc']:>6.2f}")
    timed = [r for r in results if r.get("warmup_steps") is not None]
    if timed:
        warmups = sorted({r["warmup_steps"] for r in timed})
        lines.append(
            f"s/step: mean over the steps after {'/'.join(map(str, warmups))} untimed warm-up step(s); "
            "train s: the whole fit, validation included"
        )
    if first is not None:
        crop = "x".join(map(str, first["input_size"]))
        lines.append(
            f"peak MiB: one training step (forward+backward, batch {first['batch_size']} at {crop}) above the memory "
            f"held before it ({first['device']})"
        )
        lines.append("GFLOPs@S: forward FLOPs of one image of size S (matmuls and convolutions, 2 per multiply-add)")
        lines.append(
            f"ms@{large}: median forward latency of one {'x'.join(map(str, first['large_size']))} image "
            f"({first['latency_repeats']} runs after {first.get('latency_warmup', 1)} warm-up, {first['device']})"
        )
    classes = list(dict.fromkeys(name for r in results for name in r.get("per_class_IoU", {})))
    if classes:
        width = max([len("class"), *map(len, classes)])
        columns = [max(len(r["model"]), 6) for r in results]
        lines.append("")
        lines.append("IoU % per class")
        lines.append(
            f"{'class':<{width}}" + "".join(f"  {r['model']:>{w}}" for r, w in zip(results, columns, strict=True))
        )
        for name in classes:
            cells = "".join(
                f"  {_pct(r.get('per_class_IoU', {}).get(name), w)}" for r, w in zip(results, columns, strict=True)
            )
            lines.append(f"{name:<{width}}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, *, build_cli: BuildCLI) -> int:
    """``hamburger seg compare``; ``build_cli`` builds and runs one ``fit`` (the seg CLI's ``build_cli``)."""
    return compare_main(
        argv,
        prog="hamburger seg compare",
        build_cli=build_cli,
        score=seg_scores,
        format_results=format_comparison,
        check_models=check_model_names,
        cost=seg_cost,
        default_model="tiny_ham",
        default_baselines=DEFAULT_BASELINES,
        default_root="runs/seg",
    )
