"""``hamburger experiments``: registry, runner (resume, --jobs), ctx acc, aggregation, CLI errors and report.

Every training here is a --quick run (3 steps of 4 scenes at 64x64, 4 validation scenes): the tests check the
outputs' structure and the bookkeeping, not the science.
"""

from __future__ import annotations

import csv
import json
import math
import os

import pytest
import torch

from hamburger.cli import main
from hamburger.experiments import EXPERIMENTS, runner
from hamburger.experiments.metrics import aggregate, context_pixels, ctx_counts, item_class_mask
from hamburger.experiments.registry import Experiment
from hamburger.experiments.report import build_report, write_report

ISSUE_EXPERIMENTS = {"gradient", "steps", "rank", "inv_temp", "context", "diagnostics", "spectrum", "eval_dictionary"}


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["experiments", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _load(folder) -> dict:
    with open(os.path.join(folder, "results.json"), encoding="utf-8") as f:
        return json.load(f)


class Counter:
    """Wraps runner._train: counts trainings, optionally raises on the n-th (a run killed mid-experiment)."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls, self.fail_on, self.real = 0, fail_on, runner._train

    def __call__(self, config_path, extra):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("killed")
        return self.real(config_path, extra)


@pytest.fixture(scope="module")
def rank_quick(tmp_path_factory):
    """``experiments run rank --quick --seeds 2 --arms r1`` once for the tests that read its outputs."""
    out = tmp_path_factory.mktemp("rank") / "rank"
    code = main(["experiments", "run", "rank", "--quick", "--seeds", "2", "--arms", "r1", "--output", str(out)])
    assert code == 0
    return out


# --------------------------------------------------------------------------- list
def test_list_shows_every_experiment(capsys):
    assert ISSUE_EXPERIMENTS <= set(EXPERIMENTS)
    code, out, _ = _run(capsys, "list")
    assert code == 0
    for name, exp in EXPERIMENTS.items():
        assert f"{name}: {exp.description}" in out
        assert ", ".join(exp.arms) in out
        assert f"{exp.seeds} seeds; budget {exp.budget.steps} steps" in out
    assert "budget 600 steps x 16 scenes, 200 val scenes" in out


def test_registry_arms_follow_the_solvers_grad_modes_and_context_blocks():
    from hamburger.solvers.base import GRAD_MODES

    gradient = EXPERIMENTS["gradient"]
    modes = {arm.split("-", 1)[1].rstrip("0123456789") for arm in gradient.arms}
    assert modes == set(GRAD_MODES)
    assert {arm.split("-")[0] for arm in gradient.arms} == {"nmf", "vq", "cd"}
    assert gradient.paper["cd-bptt"] == 75.0
    context = EXPERIMENTS["context"]
    blocks = {o.get("model.model_kwargs.context") for o in context.arms.values()}
    assert blocks == {"hamburger", "none", "identity_ham", "gap", "self_attention", "sdpa", "em", "linear"}
    assert EXPERIMENTS["eval_dictionary"].arms["learned"]["model.model_kwargs.grad_mode"] == "bptt"


# --------------------------------------------------------------------------- run --quick through the CLI
def test_run_quick_writes_results_for_every_arm_and_seed(rank_quick, capsys):
    report = _load(rank_quick)
    assert [(r["arm"], r["seed"]) for r in report["runs"]] == [("r1", 0), ("r1", 1)]
    assert [(r["arm"], r["n"]) for r in report["rows"]] == [("r1", 2)]
    for run in report["runs"]:
        assert run["steps"] == 3
        scores = run["metrics"][""]
        for key in ("mIoU", "aAcc", "mAcc", "ctx_acc"):
            assert math.isfinite(scores[key]) and 0 <= scores[key] <= 1, (key, scores[key])
        assert scores["ctx_pixels"] > 0  # the context variant: items labelled with the marked item's class
        assert os.path.isfile(os.path.join(rank_quick, "runs", f"{run['arm']}__seed{run['seed']}.json"))
    # the arm's factor and the seed reach the run's config
    with open(os.path.join(rank_quick, "runs", "r1", "seed1", "config.yaml"), encoding="utf-8") as f:
        text = f.read()
    assert "rank: 1" in text and "seed_everything: 67" in text
    # two seeds give two different trainings
    seeds = [r for r in report["runs"] if r["arm"] == "r1"]
    assert seeds[0]["config"] != seeds[1]["config"]
    with open(os.path.join(rank_quick, "results.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["arm"], r["seed"]) for r in rows] == [("r1", "0"), ("r1", "1")]
    assert float(rows[1]["mIoU"]) == report["runs"][1]["metrics"][""]["mIoU"]
    table = (rank_quick / "table.md").read_text()
    assert table.startswith("| arm | n | mIoU % | aAcc % | ctx acc % |")
    assert "| r1 | 2 |" in table
    png = (rank_quick / "rank_bars.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_prints_the_table_and_paths(tmp_path, capsys):
    out = tmp_path / "steps"
    code, stdout, _ = _run(capsys, "run", "steps", "--quick", "--arms", "K3", "--output", str(out))
    assert code == 0
    assert "| K3 / evalK1 | 1 |" in stdout and "| K3 / evalK20 | 1 |" in stdout
    assert str(out / "results.json") in stdout and str(out / "steps_eval_k.png") in stdout
    report = _load(out)
    run = report["runs"][0]
    assert list(run["metrics"]) == ["evalK1", "evalK3", "evalK6", "evalK7", "evalK12", "evalK20"]
    assert len(report["rows"]) == 6
    assert "val/mIoU" not in stdout  # the fits' own output goes to runs/ARM/seedS/fit.log
    assert "val/mIoU" in (out / "runs" / "K3" / "seed0" / "fit.log").read_text()


def test_eval_steps_reach_the_solver(tmp_path):
    """The evaluations of the steps experiment really change K: a model with eval K=0 differs from K=20."""
    from hamburger import Hamburger
    from hamburger.experiments.runner import _solver_attributes

    net = torch.nn.Sequential(Hamburger(16, ham="nmf", rank=4), Hamburger(16, ham="vq", rank=4)).eval()
    x = torch.rand(1, 16, 9, 7)
    with torch.no_grad():
        base = net(x)
        with _solver_attributes(net, {"eval_steps": 0}) as count:
            assert [m.ham.eval_steps for m in net] == [0, 0]
            changed = net(x)
        assert count == 2
        again = net(x)
    assert [m.ham.eval_steps for m in net] == [7, 7]
    assert not torch.allclose(base, changed)
    assert torch.equal(base, again)  # restored


def test_context_quick_measures_cost_and_skips_missing_blocks(tmp_path, capsys):
    out = tmp_path / "context"
    code, stdout, _ = _run(capsys, "run", "context", "--quick", "--arms", "ham-nmf", "none", "--output", str(out))
    assert code == 0
    report = _load(out)
    rows = {r["arm"]: r["metrics"] for r in report["rows"]}
    assert set(rows) == {"ham-nmf", "none"}
    assert rows["none"]["context_mflops"]["mean"] == 0 and rows["none"]["context_params"]["mean"] == 0
    assert rows["ham-nmf"]["context_mflops"]["mean"] > 0 and rows["ham-nmf"]["context_params"]["mean"] > 0
    assert rows["ham-nmf"]["context_latency_ms"]["mean"] > 0
    assert (out / "context_cost.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_context_block_arm_is_skipped_not_trained(tmp_path, monkeypatch):
    exp = Experiment(name="t", description="d", arms={"a": {"model.model_kwargs.context": "no_such_block"}})
    counter = Counter()
    monkeypatch.setattr(runner, "_train", counter)
    report = runner.run_experiment(exp, runner.RunSettings(output=str(tmp_path), quick=True))
    assert counter.calls == 0
    assert "no_such_block" in report["skipped_arms"]["a"]
    assert "| a | 0 |" in (tmp_path / "table.md").read_text()


def test_eval_dictionary_repeats_give_a_spread(tmp_path, capsys):
    out = tmp_path / "ed"
    code, _, _ = _run(capsys, "run", "eval_dictionary", "--quick", "--arms", "random", "--output", str(out))
    assert code == 0
    metrics = _load(out)["runs"][0]["metrics"]
    assert set(metrics) == {"fixed", "random"}
    assert len(metrics["random"]["mIoU_repeats"]) == 5
    fixed = metrics["fixed"]["mIoU_repeats"]
    assert fixed == [fixed[0]] * 5  # a fixed dictionary: every repeat gives the same mIoU
    assert metrics["fixed"]["mIoU_spread"] == 0


def test_diagnostics_quick_ablates_and_records_the_branch(tmp_path, capsys):
    out = tmp_path / "diagnostics"
    code, stdout, _ = _run(capsys, "run", "diagnostics", "--quick", "--arms", "nmf", "--output", str(out))
    assert code == 0
    measures = _load(out)["runs"][0]["measures"]
    for key in ("mIoU_zero", "mIoU_mean", "gate", "off_token_share", "grad_input", "grad_branch"):
        assert math.isfinite(measures[key]), key
    assert measures["gate"] == pytest.approx(0.0, abs=0.05)  # v2+: zero-initialised gate, 3 steps later
    assert [row["step"] for row in measures["branch_stats"]] == [0, 1, 2]  # every max(1, 3 // 50) steps
    assert (out / "diagnostics_branch_stats.png").read_bytes()[:4] == b"\x89PNG"
    assert "| nmf | 1 |" in stdout


def test_spectrum_quick_reports_energies_and_code_maps(tmp_path, capsys):
    out = tmp_path / "spectrum"
    code, stdout, _ = _run(capsys, "run", "spectrum", "--quick", "--arms", "nmf", "--output", str(out))
    assert code == 0
    measures = _load(out)["runs"][0]["measures"]
    assert 0 < measures["energy_before"] <= 1 and 0 < measures["energy_after"] <= 1
    assert measures["energy_before"] == measures["energy_before_r1"]
    assert measures["energy_after_r16"] >= measures["energy_after_r1"]  # cumulative energy grows with the rank
    assert (out / "spectrum_code_maps_nmf.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "spectrum_spectrum.png").is_file()
    assert "0.7 |" in stdout  # the paper's rank-1 energy after the block, beside ours


# --------------------------------------------------------------------------- resume
def test_rerun_skips_finished_runs(rank_quick, monkeypatch, capsys):
    before = _load(rank_quick)
    counter = Counter()
    monkeypatch.setattr(runner, "_train", counter)
    code, stdout, _ = _run(
        capsys, "run", "rank", "--quick", "--seeds", "2", "--arms", "r1", "--output", str(rank_quick)
    )
    assert code == 0 and counter.calls == 0
    assert _load(rank_quick)["runs"] == before["runs"]
    assert "| r1 | 2 |" in stdout


def test_a_finished_run_of_another_budget_is_not_reused(rank_quick):
    """A result file counts as finished only for the same run config (a changed --steps / --set retrains)."""
    exp = EXPERIMENTS["rank"]
    path = runner.run_path(str(rank_quick), "r1", 0)
    same = runner.run_config(exp, "r1", 0, budget=runner.QUICK_BUDGET, sets={})
    assert runner._read_finished(path, runner._fingerprint(same, exp)) is not None
    longer = runner.run_config(exp, "r1", 0, budget=runner.Budget(steps=4, val_scenes=4, batch_size=4), sets={})
    assert runner._read_finished(path, runner._fingerprint(longer, exp)) is None
    other = runner.run_config(exp, "r1", 0, budget=runner.QUICK_BUDGET, sets={"model.lr": 0.1})
    assert runner._read_finished(path, runner._fingerprint(other, exp)) is None


def test_killed_run_resumes_without_losing_finished_work(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "kill")
    args = ["run", "rank", "--quick", "--arms", "r1", "r4", "--output", out]
    monkeypatch.setattr(runner, "_train", Counter(fail_on=2))
    with pytest.raises(RuntimeError, match="killed"):
        main(["experiments", *args])
    assert os.path.isfile(os.path.join(out, "runs", "r1__seed0.json"))
    assert not os.path.exists(os.path.join(out, "runs", "r4__seed0.json"))
    assert not os.path.exists(os.path.join(out, "results.json"))
    first = json.loads(open(os.path.join(out, "runs", "r1__seed0.json"), encoding="utf-8").read())
    counter = Counter()
    monkeypatch.setattr(runner, "_train", counter)
    code, _, _ = _run(capsys, *args)
    assert code == 0 and counter.calls == 1  # only the run that did not finish
    report = _load(out)
    assert [r["arm"] for r in report["runs"]] == ["r1", "r4"]
    assert report["runs"][0] == first


class Diverging(Counter):
    """Wraps runner._train: the n-th training ends with the seg module's non-finite-loss error."""

    def __call__(self, config_path, extra):
        self.calls += 1
        if self.calls == self.fail_on:
            raise FloatingPointError("non-finite training loss nan at step 2")
        return self.real(config_path, extra)


def test_a_diverged_run_is_kept_counted_and_left_out_of_the_mean(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "div")
    args = ["run", "rank", "--quick", "--seeds", "2", "--arms", "r1", "r4", "--output", out]
    monkeypatch.setattr(runner, "_train", Diverging(fail_on=2))  # r1 seed 1
    code, stdout, _ = _run(capsys, *args)
    assert code == 0
    report = _load(out)
    r1 = next(r for r in report["rows"] if r["arm"] == "r1")
    r4 = next(r for r in report["rows"] if r["arm"] == "r4")
    assert (r1["n"], r1["diverged"], r4["n"], r4["diverged"]) == (1, 1, 2, 0)
    seed0 = next(r for r in report["runs"] if r["arm"] == "r1" and r["seed"] == 0)
    assert r1["metrics"]["mIoU"]["mean"] == pytest.approx(seed0["metrics"][""]["mIoU"])  # the finished seed only
    assert r1["metrics"]["mIoU"]["std"] is None
    diverged = json.loads(open(os.path.join(out, "runs", "r1__seed1.json"), encoding="utf-8").read())
    assert diverged["diverged"] == "non-finite training loss nan at step 2" and diverged["metrics"] == {}
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"), encoding="utf-8")))
    assert [(r["arm"], r["seed"], r["diverged"]) for r in rows if r["diverged"]] == [
        ("r1", "1", "non-finite training loss nan at step 2")
    ]
    assert "| r1 | 1 (+1 diverged) |" in stdout and "r1: n counts the finished seeds; 1 diverged" in stdout
    counter = Counter()  # the diverged run is a finished result: a re-run does not train it again
    monkeypatch.setattr(runner, "_train", counter)
    assert _run(capsys, *args)[0] == 0 and counter.calls == 0


# --------------------------------------------------------------------------- --jobs
@pytest.mark.slow  # starts two spawned worker processes (~1 min on 2 cores)
def test_jobs_2_gives_the_metrics_of_jobs_1(rank_quick, tmp_path, capsys):
    out = tmp_path / "jobs2"
    code, _, _ = _run(capsys, "run", "rank", "--quick", "--seeds", "2", "--arms", "r1", "--jobs", "2",
                      "--output", str(out))  # fmt: skip
    assert code == 0
    one, two = _load(rank_quick)["runs"], _load(out)["runs"]
    assert [(r["arm"], r["seed"], r["steps"]) for r in one] == [(r["arm"], r["seed"], r["steps"]) for r in two]
    assert {r["threads"] for r in two} == {max(1, runner._cores() // 2)}  # each worker: cores // jobs threads
    for a, b in zip(one, two, strict=True):
        for key in ("mIoU", "aAcc", "mAcc", "ctx_acc"):
            assert b["metrics"][""][key] == pytest.approx(a["metrics"][""][key], abs=1e-3), key


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no_such_experiment", "--quick"], "unknown experiment 'no_such_experiment'"),
        (["run", "rank", "--seeds", "0"], "--seeds: expected a positive integer, got '0'"),
        (["run", "rank", "--seeds", "three"], "--seeds: expected a positive integer"),
        (["run", "rank", "--jobs", "-1"], "--jobs: expected a positive integer"),
        (["run", "rank", "--quick", "--set", "trainer.max_steps"], "--set expects key=value"),
        (["run", "rank", "--quick", "--arms", "r3"], "unknown arm(s) ['r3']"),
        (["nope"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line_exit_2(capsys, tmp_path, args, message):
    code, out, err = _run(capsys, *args, *(["--output", str(tmp_path)] if args[0] == "run" else []))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("hamburger experiments") and message in err, err
    assert "Traceback" not in err


def test_experiment_whose_measures_are_missing_fails_before_training(tmp_path, monkeypatch, capsys):
    def missing():
        raise NotImplementedError("this measure needs hamburger.experiments.spectrum (branch 'diagnostics')")

    monkeypatch.setattr(runner, "_spectrum_module", missing)  # as before the diagnostics branch was merged
    counter = Counter()
    monkeypatch.setattr(runner, "_train", counter)
    code, _, err = _run(capsys, "run", "spectrum", "--quick", "--output", str(tmp_path))
    assert code == 2 and counter.calls == 0
    assert err.count("\n") == 1 and "hamburger.experiments.spectrum" in err


# --------------------------------------------------------------------------- ctx acc and aggregation
def test_ctx_counts_on_a_hand_built_example():
    label = torch.tensor([[0, 3, 3], [3, 3, 255], [2, 2, 0]])
    own = torch.tensor([[0, 3, 5], [5, 5, 5], [2, 7, 0]])  # item class + 1 under each pixel
    pred = torch.tensor([[0, 3, 3], [1, 3, 3], [2, 2, 4]])
    # context pixels: label != own among item pixels: (0,2), (1,0), (1,1), (2,1); (1,2) is ignored
    assert context_pixels(label, own).nonzero().tolist() == [[0, 2], [1, 0], [1, 1], [2, 1]]
    assert ctx_counts(pred, label, own) == (3, 4)


def test_item_class_mask_marks_the_context_pixels_of_fashion_scenes():
    from hamburger.recipes.seg.data.fashion_scenes import FashionScenes

    plain = FashionScenes("val", num_scenes=3, variant="plain")
    for i in range(3):  # plain: each pixel is labelled with its own item's class, so no context pixel
        _, mask = plain.scene(i)
        assert torch.equal(item_class_mask(plain, i), mask)
    context = FashionScenes("val", num_scenes=3, variant="context")
    for i in range(3):
        _, mask = context.scene(i)
        own = item_class_mask(context, i)
        layout = context.layout(i)
        marked = next(item for item in layout if item["marked"])
        assert torch.equal(own != 0, mask != 0)
        ctx = context_pixels(mask, own)
        # exactly the item pixels not of the marked item's class (the other items are of other classes)
        assert torch.equal(ctx, (mask != 0) & (own != marked["cls"] + 1))
        assert ctx.any() == (len(layout) > 1)


def test_aggregate_against_hand_values():
    stats = aggregate([1.0, 2.0, 3.0, 4.0])
    assert stats["n"] == 4 and stats["mean"] == 2.5
    assert stats["std"] == pytest.approx(math.sqrt(5 / 3))  # sample std: sum of squares 5 over n - 1 = 3
    assert aggregate([0.5]) == {"mean": 0.5, "std": None, "n": 1}
    assert aggregate([None, float("nan"), 2.0, 4.0]) == {"mean": 3.0, "std": pytest.approx(math.sqrt(2)), "n": 2}
    assert aggregate([]) == {"mean": None, "std": None, "n": 0}


def test_table_shows_mean_and_std_over_seeds_and_the_paper():
    exp = EXPERIMENTS["gradient"]
    runs = [
        {"arm": "nmf-one_step", "seed": s, "metrics": {"": {"mIoU": m, "aAcc": 0.9, "ctx_acc": None}},
         "measures": {}, "train_seconds": 10.0, "step_ms": 5.0}
        for s, m in enumerate((0.30, 0.34, 0.32))
    ]  # fmt: skip
    rows = runner.summarise(exp, runs, arms=["nmf-one_step"])
    assert rows[0]["n"] == 3 and rows[0]["paper"] == 78.3
    assert rows[0]["metrics"]["mIoU"]["mean"] == pytest.approx(0.32)
    report = {"rows": rows, "budget": {"steps": 600, "batch_size": 16, "val_scenes": 200}, "wall_seconds": 31.0,
              "run_seconds": 30.0}  # fmt: skip
    table = runner.format_table(exp, report)
    assert "| nmf-one_step | 3 | 32.00 ± 2.00 | 90.00 ± 0.00 | - |" in table
    assert table.splitlines()[2].endswith("| 10.00 ± 0.00 | 78.3 |")
    assert "Table 1" in table and "wall time 31 s" in table


def test_set_overrides_and_arm_overrides_reach_the_config():
    exp = EXPERIMENTS["rank"]
    sets = runner.parse_sets(["model.model_kwargs.rank=2", "data.num_workers=1", "trainer.precision=32-true"])
    assert sets == {"model.model_kwargs.rank": 2, "data.num_workers": 1, "trainer.precision": "32-true"}
    config = runner.run_config(exp, "r8", 2, budget=runner.QUICK_BUDGET, sets=sets)
    assert config["model"]["model_kwargs"]["rank"] == 8  # the arm's factor wins over --set
    assert config["model"]["model_kwargs"]["backbone_kwargs"] == {"widths": [16, 48, 128], "depth": [1, 1, 1]}
    assert config["data"]["num_workers"] == 1 and config["trainer"]["max_steps"] == 3
    assert config["seed_everything"] == 66 + 2 and config["data"]["seed"] == 66 + 2
    with pytest.raises(ValueError, match="'trainer.max_steps' is 3, not a mapping"):
        runner.set_dotted(config, "trainer.max_steps.x", 1)


# --------------------------------------------------------------------------- report
def test_report_has_each_experiment_command_table_and_plots(rank_quick, tmp_path, capsys):
    results = rank_quick.parent
    out = tmp_path / "docs" / "results.md"
    code, stdout, _ = _run(capsys, "report", "--results", str(results), "--out", str(out))
    assert code == 0 and str(out) in stdout
    text = out.read_text()
    assert "## rank" in text
    assert "hamburger experiments run rank --quick --seeds 2" in text
    assert (rank_quick / "table.md").read_text().strip() in text
    assert "![rank_bars](img/results/rank_bars.png)" in text
    assert (tmp_path / "docs" / "img" / "results" / "rank_bars.png").read_bytes()[:4] == b"\x89PNG"
    assert "results_notes/rank.md" in text  # the verdict placeholder says where the verdict goes
    notes = tmp_path / "docs" / "results_notes"
    notes.mkdir()
    (notes / "rank.md").write_text("Rank matters little at this budget.\n")
    write_report(str(results), str(out))
    assert "### Verdict\n\nRank matters little at this budget." in out.read_text()
    assert build_report(str(results), str(out))[0] == out.read_text()
    (notes / "_intro.md").write_text("## Hand-written intro\n")
    (notes / "_outro.md").write_text("## Not run\n")
    text = build_report(str(results), str(out))[0]
    assert text.index("## Hand-written intro") < text.index("## rank") < text.index("## Not run")


def test_report_on_a_missing_folder_is_one_line(tmp_path, capsys):
    code, _, err = _run(capsys, "report", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "r.md"))
    assert code == 2 and err.count("\n") == 1 and "no such folder" in err


def test_command_line_names_every_setting_that_changes_the_results():
    from hamburger.experiments.registry import get_experiment
    from hamburger.experiments.runner import Budget, RunSettings, command_line

    experiment = get_experiment("gradient")
    budget = Budget(steps=1000, val_scenes=150, batch_size=experiment.budget.batch_size)
    settings = RunSettings(seeds=3, budget=budget, arms=("nmf-one_step", "nmf-bptt"), output="x")
    assert command_line(experiment, settings) == (
        "hamburger experiments run gradient --seeds 3 --steps 1000 --val_scenes 150 --arms nmf-one_step nmf-bptt"
    )
