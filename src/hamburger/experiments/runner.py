"""Run an :class:`~hamburger.experiments.registry.Experiment`: train every (arm, seed), evaluate, measure, write.

Each run goes through the seg recipe in process, the path users take: the base config with the budget, the
user's ``--set`` overrides and the arm's overrides merged in is written to ``OUTPUT/runs/ARM/seedS/config.yaml``
and trained with ``hamburger seg fit --config`` that file (:func:`hamburger.recipes.seg.cli.build_cli`). The
trained model is evaluated on the validation scenes (mIoU, aAcc, mAcc and "ctx acc", the accuracy on the
context-dependent pixels, :mod:`hamburger.experiments.metrics`) once per evaluation of the experiment, then
measured (cost, memory, diagnostics). Everything is written atomically under ``OUTPUT``:

* ``runs/ARM__seedS.json``: one file per finished (arm, seed). A rerun skips the runs whose file exists with the
  same run config (a killed experiment resumes without losing finished runs; a changed budget retrains);
* ``results.json`` (every run and the aggregate), ``results.csv`` (one row per run and evaluation), ``table.md``
  (mean +- std over seeds per arm, n seeds, the paper's number where there is one, wall time) and PNG plots.

``jobs > 1`` runs (arm, seed) pairs in that many spawned worker processes, each with
``torch.set_num_threads(max(1, cores // jobs))``; a run depends only on its config and seed, so the results are
those of ``jobs=1``.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import io
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from ..training.cli import json_safe
from ..utils import atomic_write_text, check_int
from ..utils.configs import resolve_config
from .metrics import aggregate, ctx_counts, item_class_mask
from .registry import Budget, Evaluation, Experiment

__all__ = [
    "QUICK_BUDGET",
    "RunSettings",
    "available_measures",
    "evaluate",
    "format_table",
    "measure_cost",
    "parse_sets",
    "run_config",
    "run_experiment",
    "run_path",
    "set_dotted",
    "summarise",
    "write_outputs",
]

log = logging.getLogger(__name__)

QUICK_BUDGET = Budget(steps=3, val_scenes=4, batch_size=4)
"""``--quick``: checks the outputs' structure, not the science."""
SCALARS = ("mIoU", "aAcc", "mAcc", "ctx_acc")
DIAGNOSTIC_MEASURES = ("gradient", "ablation", "branch_stats")
SPECTRUM_MEASURES = ("spectrum", "code_maps")


@dataclass(frozen=True)
class RunSettings:
    """How an experiment is run (everything but the experiment itself).

    Attributes:
        output: results folder.
        seeds: seeds per arm (``None``: the experiment's).
        budget: the training budget (``None``: the experiment's).
        sets: dotted config overrides for every run (``--set key=value``), applied before the arm's.
        jobs: worker processes.
        quick: tiny budget and one seed (unless ``seeds`` is given).
        arms: run only these arms (``None``: all).
    """

    output: str
    seeds: int | None = None
    budget: Budget | None = None
    sets: Mapping[str, Any] = field(default_factory=dict)
    jobs: int = 1
    quick: bool = False
    arms: tuple[str, ...] | None = None


# --------------------------------------------------------------------------- configs
def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """``config[a][b][c] = value`` for ``key="a.b.c"`` (missing levels are created; a non-mapping on the way is an
    error naming the key)."""
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise ValueError(f"config key must be dotted names like 'trainer.max_steps', got {key!r}")
    node = config
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ValueError(f"cannot set {key!r}: {where!r} is {child!r}, not a mapping")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1, 2]"]`` -> ``{"a.b": 1, "c": [1, 2]}`` (values read as YAML: numbers, lists, booleans)."""
    import yaml

    sets: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value (e.g. trainer.max_steps=100), got {item!r}")
        try:
            sets[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"--set {item!r}: the value is not valid YAML ({' '.join(str(err).split())})") from err
    return sets


def _load_config(name: str) -> dict[str, Any]:
    import yaml

    path = resolve_config(name)
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict):
        raise ValueError(f"config {name!r} ({path}): expected a YAML mapping of options")
    return config


def run_config(experiment: Experiment, arm: str, seed: int, *, budget: Budget, sets: Mapping[str, Any]) -> dict:
    """The seg config of run (``arm``, ``seed``): the base config, the budget, ``sets``, then the arm's overrides.

    Seed ``s`` adds ``s`` to the config's ``seed_everything`` and ``data.seed``; validation happens once, at the
    end of training, on ``budget.val_scenes`` scenes.
    """
    config = _load_config(experiment.base_config)
    base_seed = int(config.get("seed_everything") or 0)
    data_seed = int((config.get("data") or {}).get("seed") or 0)
    val_batch = int((config.get("data") or {}).get("val_batch_size") or 1)
    for key, value in {
        "trainer.max_steps": budget.steps,
        "trainer.val_check_interval": budget.steps,
        "trainer.check_val_every_n_epoch": None,
        "checkpoint.every_n_train_steps": budget.steps,
        "data.batch_size": budget.batch_size,
        "data.val_kwargs.num_scenes": budget.val_scenes,
        "data.val_batch_size": min(val_batch, budget.val_scenes),
    }.items():
        set_dotted(config, key, value)
    for key, value in sets.items():
        set_dotted(config, key, value)
    for key, value in experiment.arms[arm].items():
        set_dotted(config, key, value)
    set_dotted(config, "seed_everything", base_seed + seed)
    set_dotted(config, "data.seed", data_seed + seed)
    return config


def _fingerprint(config: Mapping[str, Any], experiment: Experiment) -> str:
    spec = {
        "config": config,
        "evaluations": [[e.name, dict(e.solver), e.repeats] for e in experiment.evaluations],
        "measures": list(experiment.measures),
    }
    return hashlib.sha256(json.dumps(json_safe(spec), sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- evaluation
@contextlib.contextmanager
def _solver_attributes(model: torch.nn.Module, values: Mapping[str, Any]) -> Iterator[int]:
    """Set ``values`` on every solver (``MatrixDecomposition``) in ``model``; restore on exit. Yields the count."""
    from ..solvers.base import MatrixDecomposition

    solvers = [m for m in model.modules() if isinstance(m, MatrixDecomposition)]
    saved = [{k: getattr(m, k) for k in values} for m in solvers]
    try:
        for m in solvers:
            for k, v in values.items():
                setattr(m, k, v)
        yield len(solvers)
    finally:
        for m, old in zip(solvers, saved, strict=True):
            for k, v in old.items():
                setattr(m, k, v)


def _scene_dataset(dataset: Any) -> Any | None:
    from ..recipes.seg.data.fashion_scenes import FashionScenes

    return dataset if isinstance(dataset, FashionScenes) else None


def evaluate(module: Any, dataset: Any, *, batch_size: int, evaluation: Evaluation | None = None) -> dict[str, Any]:
    """mIoU, aAcc, mAcc and ctx acc of ``module`` (a :class:`SegModule`) on ``dataset`` (mean over repeats).

    With ``evaluation.repeats > 1`` each repeat runs after ``torch.manual_seed(repeat)`` inside
    :func:`torch.random.fork_rng` (the caller's RNG state is kept) and ``mIoU_spread`` is the standard deviation
    of the repeats' mIoU. ``ctx_acc`` is ``None`` when the dataset is not FashionScenes or has no
    context-dependent pixel.
    """
    from ..recipes.seg.metrics import build_confmat, scores_from_confmat

    evaluation = evaluation if evaluation is not None else Evaluation()
    scenes = _scene_dataset(dataset)
    num_classes = int(module.hparams.num_classes)
    ignore = int(module.hparams.ignore_index)
    own = {i: item_class_mask(scenes, i) for i in range(len(dataset))} if scenes is not None else {}
    was_training = module.training
    module.eval()
    repeats: list[dict[str, Any]] = []
    try:
        with torch.no_grad(), _solver_attributes(module, evaluation.solver):
            for repeat in range(evaluation.repeats):
                confmat = build_confmat(num_classes, ignore_index=ignore)
                correct = total = 0
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(repeat)
                    for start in range(0, len(dataset), batch_size):
                        indices = range(start, min(start + batch_size, len(dataset)))
                        items = [dataset[i] for i in indices]
                        images = torch.stack([it["image"] for it in items])
                        masks = torch.stack([it["mask"] for it in items])
                        pred = module(images).argmax(1)
                        confmat.update(pred, masks)
                        for j, i in enumerate(indices):
                            if i in own:
                                c, t = ctx_counts(pred[j], masks[j], own[i], ignore_index=ignore)
                                correct, total = correct + c, total + t
                scores = scores_from_confmat(confmat.compute())
                repeats.append(
                    {"mIoU": scores["mIoU"], "aAcc": scores["aAcc"], "mAcc": scores["mAcc"],
                     "ctx_acc": correct / total if total else None, "ctx_pixels": total}
                )  # fmt: skip
    finally:
        module.train(was_training)
    result: dict[str, Any] = {
        key: aggregate(r[key] for r in repeats)["mean"] for key in ("mIoU", "aAcc", "mAcc", "ctx_acc")
    }
    result["ctx_pixels"] = repeats[0]["ctx_pixels"]
    if evaluation.repeats > 1:
        result["mIoU_spread"] = aggregate(r["mIoU"] for r in repeats)["std"]
        result["mIoU_repeats"] = [r["mIoU"] for r in repeats]
    return result


# --------------------------------------------------------------------------- measures
def _diagnostics_module() -> Any:
    try:
        from . import diagnostics
    except ImportError as err:
        raise NotImplementedError(
            "this measure needs hamburger.experiments.diagnostics (branch 'diagnostics'), which is not merged yet"
        ) from err
    return diagnostics


def _spectrum_module() -> Any:
    try:
        from . import spectrum
    except ImportError as err:
        raise NotImplementedError(
            "this measure needs hamburger.experiments.spectrum (branch 'diagnostics'), which is not merged yet"
        ) from err
    return spectrum


def available_measures(measures: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The measures that can run here, and the others with the reason (a module not merged yet)."""
    ok, missing = [], {}
    for name in measures:
        try:
            if name in DIAGNOSTIC_MEASURES:
                _diagnostics_module()
            elif name in SPECTRUM_MEASURES:
                _spectrum_module()
        except NotImplementedError as err:
            missing[name] = str(err)
            continue
        ok.append(name)
    return ok, missing


def _context_input(module: Any, images: torch.Tensor) -> tuple[torch.nn.Module | None, torch.Tensor | None]:
    """The head's context block and its input for ``images`` (captured by a forward hook)."""
    block = getattr(getattr(module.net, "head", None), "context", None)
    if not isinstance(block, torch.nn.Module):
        return None, None
    seen: list[torch.Tensor] = []
    handle = block.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        with torch.no_grad():
            module.net.eval()
            module.net(images)
    finally:
        handle.remove()
    return block, (seen[0] if seen else None)


def measure_cost(module: Any, images: torch.Tensor) -> dict[str, Any]:
    """FLOPs, median latency (eval, batch 1), parameters and peak memory of the head's context block."""
    from ..bench.measure import count_flops, peak_memory, time_fn

    block, x = _context_input(module, images[:1])
    if block is None or x is None:
        return {}
    block.eval()
    device = x.device

    def call() -> object:
        with torch.no_grad():
            return block(x)

    return {
        "context_mflops": count_flops(call) / 1e6,
        "context_latency_ms": time_fn(call, device=device, warmup=2, repeats=10).median_ms,
        "context_params": sum(p.numel() for p in block.parameters()),
        "context_memory_kb": peak_memory(call, device=device) / 1024,
        "context_tokens": int(x.shape[-2] * x.shape[-1]),
    }


def measure_train_memory(module: Any, batch: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Peak memory (MB) of one forward + backward of the whole model on ``batch`` (gradients discarded)."""
    from ..bench.measure import peak_memory

    net = module.net
    was_training = net.training
    net.train()

    def step() -> None:
        out = net(batch["image"])
        logits = out["out"] if isinstance(out, dict) else out
        logits.float().mean().backward()

    try:
        peak = peak_memory(step, device=batch["image"].device)
    finally:
        net.zero_grad(set_to_none=True)
        net.train(was_training)
    return {"train_memory_mb": peak / 2**20}


def _scalar(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _branch_records(callback: Any) -> list[dict[str, Any]]:
    for name in ("records", "rows", "history"):
        records = getattr(callback, name, None)
        if isinstance(records, list):
            return [dict(r) for r in records if isinstance(r, Mapping)]
    return []


def _run_measures(
    cli: Any, module: Any, measures: Sequence[str], *, dataset: Any, batch: dict, run_dir: str, batch_size: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    net = module.net
    if "cost" in measures:
        out.update(measure_cost(module, batch["image"]))
    if "train_memory" in measures:
        out.update(measure_train_memory(module, batch))
    if "gradient" in measures:
        diag = _diagnostics_module()
        out["off_token_share"] = _scalar(diag.off_token_gradient_share(net, batch["image"], num_points=16))
        ignore = int(module.hparams.ignore_index)

        def loss_fn(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            if logits.shape[-2:] != mask.shape[-2:]:
                logits = torch.nn.functional.interpolate(logits, size=mask.shape[-2:], mode="bilinear")
            return torch.nn.functional.cross_entropy(logits.float(), mask, ignore_index=ignore)

        norms = diag.block_gradient_norms(net, batch, loss_fn)
        out["block_gradient_norms"] = json_safe(norms)
        for name, values in (norms or {}).items():  # one block in the tiny models: its norms as columns
            for key, value in (values or {}).items():
                scalar = _scalar(value)
                if scalar is not None:
                    out[f"grad_{key}" if len(norms) == 1 else f"grad_{name}_{key}"] = scalar
    if "ablation" in measures:
        diag = _diagnostics_module()
        for mode in ("zero", "mean"):
            with diag.branch_ablation(module, mode=mode):
                out[f"mIoU_{mode}"] = evaluate(module, dataset, batch_size=batch_size)["mIoU"]
        gates = [_scalar(getattr(m, "coef_ham", None)) for _, m in diag.find_hamburgers(net)]
        out["gate"] = next((g for g in gates if g is not None), None)
    if "branch_stats" in measures:
        diag = _diagnostics_module()
        callback = next((cb for cb in cli.trainer.callbacks if isinstance(cb, diag.BranchStatsCallback)), None)
        out["branch_stats"] = json_safe(_branch_records(callback)) if callback is not None else []
    if "spectrum" in measures:
        spec = _spectrum_module()
        spectrum = spec.block_spectrum(net, batch["image"])  # {block: {"ranks", "input", "output"}}
        out["spectrum"] = json_safe(spectrum)
        first = next(iter(spectrum.values()), None) if isinstance(spectrum, Mapping) else None
        if first:
            ranks = list(first["ranks"])
            for key, side in (("before", "input"), ("after", "output")):
                energies = list(first[side])
                out[f"energy_{key}"] = energies[ranks.index(1)] if 1 in ranks else energies[0]  # rank 1
                for rank, energy in zip(ranks, energies, strict=True):
                    out[f"energy_{key}_r{rank}"] = energy
    if "code_maps" in measures:
        spec = _spectrum_module()
        path = os.path.join(run_dir, "code_maps.png")
        spec.save_code_maps(net, batch["image"][:4], path)
        out["code_maps"] = path
    return out


# --------------------------------------------------------------------------- one run
def _train(config_path: str, extra: Sequence[str]) -> Any:
    """``hamburger seg fit --config config_path *extra`` in process; returns the fitted CLI."""
    from ..recipes.seg.cli import build_cli

    return build_cli(["fit", "--config", config_path, "--checkpoint.overwrite=true", *extra])


def run_path(output: str, arm: str, seed: int) -> str:
    """The result file of a finished (arm, seed)."""
    return os.path.join(output, "runs", f"{arm}__seed{seed}.json")


def _run_one(experiment: Experiment, arm: str, seed: int, config: dict, fingerprint: str, output: str,
             measures: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    import yaml

    from ..training.compare import DEFAULT_TIMING_WARMUP, StepTimer, count_parameters

    run_dir = os.path.join(output, "runs", arm, f"seed{seed}")
    config = copy.deepcopy(config)
    set_dotted(config, "trainer.default_root_dir", os.path.join(run_dir, "train"))
    config_path = os.path.join(run_dir, "config.yaml")
    os.makedirs(run_dir, exist_ok=True)
    atomic_write_text(config_path, yaml.safe_dump(json_safe(config), sort_keys=False))
    steps = int(config["trainer"]["max_steps"])
    extra = [StepTimer(min(DEFAULT_TIMING_WARMUP, steps // 10)).cli_option()]
    if "branch_stats" in measures:
        every = max(1, steps // 50)
        spec = {"class_path": "hamburger.experiments.diagnostics.BranchStatsCallback",
                "init_args": {"every_n_steps": every}}  # fmt: skip
        extra.append(f"--trainer.callbacks+={json.dumps(spec)}")
    start = time.perf_counter()
    try:
        with (
            open(os.path.join(run_dir, "fit.log"), "w", encoding="utf-8") as fit_log,
            contextlib.redirect_stdout(fit_log),
        ):
            cli = _train(config_path, extra)  # the fit's progress lines and summary go to runs/ARM/seedS/fit.log
    except FloatingPointError as err:  # a diverged run is a result: kept (and counted), never silently dropped
        log.warning("experiment %s: %s seed %d diverged: %s", experiment.name, arm, seed, err)
        result = {"experiment": experiment.name, "arm": arm, "seed": seed, "fingerprint": fingerprint,
                  "diverged": str(err), "wall_seconds": time.perf_counter() - start, "metrics": {},
                  "measures": {}, "config": config_path}  # fmt: skip
        atomic_write_text(run_path(output, arm, seed), json.dumps(json_safe(result), indent=2) + "\n")
        return result
    train_seconds = getattr(cli, "fit_seconds", None)
    timer = next((cb for cb in cli.trainer.callbacks if isinstance(cb, StepTimer)), None)
    module = cli.model
    dataset = cli.datamodule.get_dataset("val")
    batch_size = int(cli.datamodule.val_batch_size)
    metrics = {
        e.name: evaluate(module, dataset, batch_size=batch_size, evaluation=e)
        for e in experiment.evaluations
        if e.applies_to(arm)
    }
    items = [dataset[i] for i in range(min(len(dataset), batch_size, 8))]
    batch = {"image": torch.stack([it["image"] for it in items]), "mask": torch.stack([it["mask"] for it in items])}
    measured = _run_measures(cli, module, measures, dataset=dataset, batch=batch, run_dir=run_dir,
                             batch_size=batch_size)  # fmt: skip
    step = timer.seconds_per_step if timer is not None else None
    result = {
        "experiment": experiment.name,
        "arm": arm,
        "seed": seed,
        "fingerprint": fingerprint,
        "steps": int(cli.trainer.global_step),
        "params": count_parameters(module.net),
        "train_seconds": train_seconds,
        "step_ms": None if step is None else 1e3 * step,
        "wall_seconds": time.perf_counter() - start,
        "threads": torch.get_num_threads(),
        "metrics": metrics,
        "measures": measured,
        "config": config_path,
        "checkpoint_dir": getattr(cli.trainer.checkpoint_callback, "dirpath", None),
    }
    atomic_write_text(run_path(output, arm, seed), json.dumps(json_safe(result), indent=2) + "\n")
    return result


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _read_finished(path: str, fingerprint: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and result.get("fingerprint") == fingerprint else None


# --------------------------------------------------------------------------- an experiment
def run_experiment(experiment: Experiment, settings: RunSettings) -> dict[str, Any]:
    """Train, evaluate and measure every (arm, seed) of ``experiment`` not finished yet; write the results.

    Returns the ``results.json`` content (also written, with ``results.csv``, ``table.md`` and the plots).
    Raises ``NotImplementedError`` before any training when none of the experiment's measures can run here.
    """
    jobs = check_int("jobs", settings.jobs, 1)
    budget = settings.budget or (QUICK_BUDGET if settings.quick else experiment.budget)
    seeds = settings.seeds if settings.seeds is not None else (1 if settings.quick else experiment.seeds)
    seeds = check_int("seeds", seeds, 1)
    for name in ("steps", "val_scenes", "batch_size"):
        check_int(name, getattr(budget, name), 1)
    arms = list(experiment.arms) if settings.arms is None else list(settings.arms)
    unknown = [a for a in arms if a not in experiment.arms]
    if unknown:
        raise ValueError(
            f"unknown arm(s) {unknown} of experiment {experiment.name!r}; choose from {list(experiment.arms)}"
        )
    measures, unavailable = available_measures(experiment.measures)
    if experiment.measures and not measures:
        raise NotImplementedError(f"experiment {experiment.name!r}: " + "; ".join(sorted(set(unavailable.values()))))
    for name, reason in unavailable.items():
        log.warning("experiment %s: measure %r skipped: %s", experiment.name, name, reason)
    skipped_arms = {}
    for arm in arms:
        block = experiment.missing_block(arm)
        if block is not None:
            skipped_arms[arm] = f"context block {block!r} is not registered yet"
    output = settings.output
    os.makedirs(os.path.join(output, "runs"), exist_ok=True)
    start = time.perf_counter()
    todo, results = [], {}
    for arm in arms:
        if arm in skipped_arms:
            continue
        for seed in range(seeds):
            config = run_config(experiment, arm, seed, budget=budget, sets=settings.sets)
            fingerprint = _fingerprint(config, experiment)
            done = _read_finished(run_path(output, arm, seed), fingerprint)
            if done is not None:
                log.info("experiment %s: %s seed %d already finished, skipped", experiment.name, arm, seed)
                results[(arm, seed)] = done
            else:
                todo.append((arm, seed, config, fingerprint))
    if jobs == 1 or len(todo) <= 1:
        for arm, seed, config, fingerprint in todo:
            results[(arm, seed)] = _run_one(experiment, arm, seed, config, fingerprint, output, measures)
    else:
        import multiprocessing

        threads = max(1, _cores() // jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init, initargs=(threads,)) as pool:
            futures = {
                (arm, seed): pool.submit(_run_one, experiment, arm, seed, config, fingerprint, output, measures)
                for arm, seed, config, fingerprint in todo
            }
            errors = []
            for key, future in futures.items():
                try:
                    results[key] = future.result()
                except Exception as err:  # the finished runs are on disk; report the first failure after the rest
                    errors.append(err)
            if errors:
                raise errors[0]
    wall = time.perf_counter() - start
    runs = [results[(arm, seed)] for arm in arms if arm not in skipped_arms for seed in range(seeds)]
    summary = summarise(experiment, runs, arms=arms)
    report = {
        "experiment": experiment.name,
        "description": experiment.description,
        "base_config": experiment.base_config,
        "budget": {"steps": budget.steps, "val_scenes": budget.val_scenes, "batch_size": budget.batch_size},
        "seeds": seeds,
        "quick": settings.quick,
        "sets": dict(settings.sets),
        "command": command_line(experiment, settings),
        "wall_seconds": wall,
        "run_seconds": sum(r.get("wall_seconds") or 0.0 for r in runs),
        "paper_source": experiment.paper_source,
        "skipped_arms": skipped_arms,
        "skipped_measures": unavailable,
        "rows": summary,
        "runs": runs,
    }
    write_outputs(experiment, report, output)
    return report


def command_line(experiment: Experiment, settings: RunSettings) -> str:
    """The ``hamburger experiments run`` command that regenerates these results."""
    parts = ["hamburger", "experiments", "run", experiment.name]
    if settings.quick:
        parts.append("--quick")
    if settings.seeds is not None:
        parts += ["--seeds", str(settings.seeds)]
    default = QUICK_BUDGET if settings.quick else experiment.budget
    if settings.budget is not None:
        for name in ("steps", "val_scenes", "batch_size"):
            if getattr(settings.budget, name) != getattr(default, name):
                parts += [f"--{name}", str(getattr(settings.budget, name))]
    if settings.arms is not None:
        parts += ["--arms", *settings.arms]
    for key, value in settings.sets.items():
        parts += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return " ".join(parts)


# --------------------------------------------------------------------------- aggregation and outputs
def _row_values(run: Mapping[str, Any], evaluation: str) -> dict[str, Any]:
    values: dict[str, Any] = dict(run.get("metrics", {}).get(evaluation) or {})
    for key, value in (run.get("measures") or {}).items():
        if _scalar(value) is not None:
            values[key] = value
    for key in ("step_ms", "train_seconds", "wall_seconds", "params"):
        values[key] = run.get(key)
    return values


def summarise(experiment: Experiment, runs: Sequence[Mapping[str, Any]], *, arms: Sequence[str]) -> list[dict]:
    """One row per (arm, evaluation): ``{"arm", "evaluation", "n", "paper", "metrics": {key: aggregate}}``."""
    rows = []
    for arm, evaluation in experiment.row_names():
        if arm not in arms:
            continue
        mine = [r for r in runs if r["arm"] == arm and evaluation in (r.get("metrics") or {})]
        diverged = sum(1 for r in runs if r["arm"] == arm and r.get("diverged"))
        if not mine:
            if diverged:
                rows.append({"arm": arm, "evaluation": evaluation, "n": 0, "diverged": diverged, "paper": None,
                             "metrics": {}})  # fmt: skip
            continue
        keys = list(
            dict.fromkeys(k for r in mine for k, v in _row_values(r, evaluation).items() if _scalar(v) is not None)
        )
        metrics = {k: aggregate(_row_values(r, evaluation).get(k) for r in mine) for k in keys}
        paper = experiment.paper.get(f"{arm}/{evaluation}", experiment.paper.get(arm) if not evaluation else None)
        if paper is None and evaluation == experiment.evaluations[0].name:
            paper = experiment.paper.get(arm)
        rows.append({"arm": arm, "evaluation": evaluation, "n": len(mine), "diverged": diverged, "paper": paper,
                     "metrics": metrics})  # fmt: skip
    return rows


PERCENT = {"mIoU", "aAcc", "mAcc", "ctx_acc", "mIoU_zero", "mIoU_mean", "mIoU_spread"}
LABELS = {"mIoU": "mIoU %", "aAcc": "aAcc %", "ctx_acc": "ctx acc %", "train_seconds": "train s"}


def _cell(stats: Mapping[str, Any] | None, key: str) -> str:
    if not stats or stats.get("mean") is None:
        return "-"
    scale = 100.0 if key in PERCENT else 1.0
    mean, std = stats["mean"] * scale, stats.get("std")
    digits = 2 if key in PERCENT or abs(mean) < 100 else 0
    text = f"{mean:.{digits}f}" if abs(mean) >= 1e-3 or mean == 0 else f"{mean:.2e}"
    if std is not None:
        text += f" ± {std * scale:.{digits}f}" if abs(std * scale) >= 1e-3 or std == 0 else f" ± {std * scale:.1e}"
    return text


def format_table(experiment: Experiment, report: Mapping[str, Any]) -> str:
    """The markdown table: mean ± std over seeds per arm (and evaluation), n seeds, paper, wall time."""
    columns = ["mIoU", "aAcc", "ctx_acc", *[c for c in experiment.columns if c not in ("mIoU", "aAcc", "ctx_acc")]]
    header = ["arm", "n", *[LABELS.get(c, c) for c in columns], "train s"]
    has_paper = bool(experiment.paper)
    if has_paper:
        header.append("paper")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report["rows"]:
        label = row["arm"] + (f" / {row['evaluation']}" if row["evaluation"] else "")
        n = str(row["n"]) + (f" (+{row['diverged']} diverged)" if row.get("diverged") else "")
        cells = [label, n, *[_cell(row["metrics"].get(c), c) for c in columns]]
        cells.append(_cell(row["metrics"].get("train_seconds"), "train_seconds"))
        if has_paper:
            cells.append("-" if row["paper"] is None else f"{row['paper']:g}")
        lines.append("| " + " | ".join(cells) + " |")
    for arm in report.get("skipped_arms", {}):
        cells = [arm, "0", *["-"] * (len(header) - 2)]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"mean ± std over seeds; budget: {report['budget']['steps']} steps of {report['budget']['batch_size']} "
             f"scenes, {report['budget']['val_scenes']} validation scenes; wall time {report['wall_seconds']:.0f} s "
             f"({report['run_seconds']:.0f} s of runs)"]  # fmt: skip
    if has_paper and experiment.paper_source:
        notes.append(f"paper: {experiment.paper_source}")
    notes += [f"{r['arm']}{' / ' + r['evaluation'] if r['evaluation'] else ''}: n counts the finished seeds; "
              f"{r['diverged']} diverged (non-finite loss), kept out of the mean"
              for r in report["rows"] if r.get("diverged")]  # fmt: skip
    notes += [f"{arm}: skipped ({reason})" for arm, reason in report.get("skipped_arms", {}).items()]
    notes += [f"measure {name}: skipped ({reason})" for name, reason in report.get("skipped_measures", {}).items()]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def _csv_text(report: Mapping[str, Any]) -> str:
    rows = []
    for run in report["runs"]:
        if run.get("diverged"):  # no metrics: one row saying so
            rows.append({"arm": run["arm"], "seed": run["seed"], "evaluation": "", "diverged": run["diverged"]})
        for evaluation in run.get("metrics") or {}:
            values = {k: v for k, v in _row_values(run, evaluation).items() if _scalar(v) is not None or v is None}
            rows.append({"arm": run["arm"], "seed": run["seed"], "evaluation": evaluation, **values})
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    return buffer.getvalue()


def write_outputs(experiment: Experiment, report: Mapping[str, Any], output: str) -> list[str]:
    """Write ``results.json``, ``results.csv``, ``table.md`` and the plots into ``output``; return the paths."""
    from .plots import make_plots

    paths = [os.path.join(output, name) for name in ("results.json", "results.csv", "table.md")]
    atomic_write_text(paths[0], json.dumps(json_safe(report), indent=2) + "\n")
    atomic_write_text(paths[1], _csv_text(report))
    atomic_write_text(paths[2], format_table(experiment, report))
    return paths + make_plots(experiment, report, output)


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
