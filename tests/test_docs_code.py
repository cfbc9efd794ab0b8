"""The docs run: every ```python block of README.md and docs/*.md is executed, and every ``hamburger ...`` command
line of the ```bash blocks parses (its command path exists and each of its options is one the command knows).

Markers, an HTML comment on the line(s) just before a block:

* ``<!-- skip-test: REASON -->``: the block needs data, network or local weights and is not run; ``SKIPS`` counts
  them per page, so the skip list cannot grow silently.
* ``<!-- test-sub: OLD => NEW -->``: the test runs the block with ``OLD`` replaced by ``NEW`` (e.g. fewer training
  steps); ``OLD`` must occur in the block.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", flags=re.DOTALL | re.MULTILINE)
MARKERS = re.compile(r"(?:^[ \t]*<!--.*?-->[ \t]*\n)+\Z", flags=re.MULTILINE)
SKIP = re.compile(r"<!--\s*skip-test:\s*(.+?)\s*-->")
SUB = re.compile(r"<!--\s*test-sub:\s*(.+?)\s*=>\s*(.+?)\s*-->")

SKIPS = {"docs/datasets.md": 3, "docs/models.md": 1}
"""Python blocks that are not run, per page (each marked ``skip-test`` with its reason)."""


def blocks(language: str) -> list[tuple[str, int, str, str | None, list[tuple[str, str]]]]:
    """``(page, line, code, skip reason, substitutions)`` of every block in ``language``."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            if match.group(1) != language:
                continue
            before = MARKERS.search(text[: match.start()])
            comments = before.group(0) if before else ""
            skip = SKIP.search(comments)
            line = text.count("\n", 0, match.start()) + 1
            found.append((page.relative_to(ROOT).as_posix(), line, match.group(2), skip and skip.group(1),
                          SUB.findall(comments)))  # fmt: skip
    return found


PYTHON = blocks("python")


def test_skip_list_is_counted():
    counts: dict[str, int] = {}
    for page, _, _, skip, _ in PYTHON:
        if skip:
            counts[page] = counts.get(page, 0) + 1
    assert counts == SKIPS, "a python block was (un)marked skip-test: update SKIPS, or better make it run"
    assert len(PYTHON) - sum(SKIPS.values()) >= 3


@pytest.mark.parametrize(("page", "line", "code", "skip", "subs"), PYTHON, ids=[f"{p}:{n}" for p, n, *_ in PYTHON])
def test_python_block_runs(page, line, code, skip, subs, tmp_path, monkeypatch):
    if skip:
        pytest.skip(f"{page}:{line}: {skip}")
    for old, new in subs:
        assert old in code, f"{page}:{line}: test-sub {old!r} does not occur in the block"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)  # files the snippet writes (checkpoints, logs) land in a fresh folder
    namespace = {"__name__": "__docs__"}
    exec(compile(code, f"{page}:{line}", "exec"), namespace)  # noqa: S102 - our own docs


def command_lines() -> list[tuple[str, int, list[str]]]:
    """Each ``hamburger ...`` (or ``python -m hamburger ...``) command of the bash blocks, as argv after it."""
    found = []
    for page, line, code, _, _ in blocks("bash"):
        text = code.replace("\\\n", " ")
        for i, raw in enumerate(text.splitlines()):
            raw = raw.strip()
            if raw.startswith("#"):
                continue
            for part in re.split(r"&&|;|\|", raw):
                words = shlex.split(part, comments=True)
                if "hamburger" not in words:
                    continue
                at = words.index("hamburger")
                if at > 0 and words[at - 1] not in ("-m",) and "pip" not in words[:at]:
                    continue
                if "pip" in words[:at]:
                    continue
                found.append((page, line + i + 1, words[at + 1 :]))
    return found


COMMANDS = command_lines()


def _help(path: tuple[str, ...]) -> str:
    from hamburger.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = main([*path, "--help"])
        except SystemExit as exit_:
            code = exit_.code
    assert code in (0, None), f"hamburger {' '.join(path)} --help exited with {code}"
    return out.getvalue()


def test_bash_commands_parse():
    assert len(COMMANDS) >= 8
    paths: dict[tuple[str, ...], list[tuple[str, int, list[str]]]] = {}
    for page, line, argv in COMMANDS:
        path = tuple(word for word in argv[:2] if not word.startswith("-"))
        path = path[:1] if path[:1] == ("bench",) else path
        paths.setdefault(path, []).append((page, line, argv))
    assert {("seg", "fit"), ("seg", "validate"), ("bench",)} <= set(paths)
    for path, uses in paths.items():
        text = _help(path)
        for page, line, argv in uses:
            for word in argv[len(path) :]:
                if word.startswith("--"):
                    option = word.split("=", 1)[0]
                    assert re.search(rf"{re.escape(option)}\b", text), f"{page}:{line}: {option} unknown to {path}"


def test_stale_model_names():
    """Registered model names quoted in src/ and the docs exist (``hamnet_r101`` was one that did not)."""
    from hamburger.models import list_models

    names = set(list_models())
    pattern = re.compile(r"\b((?:hamnet|light_ham|tiny)_[a-z0-9_]+)\b")
    not_models = {"hamnet_resnet", "light_ham_head", "tiny_convnet"}  # a prefix, a module, a backbone
    # arm labels of benchmarks/variant_study.py (tiny_ham with a given gradient mode), quoted in docs/results.md
    not_models |= {"tiny_ham_bptt", "tiny_ham_implicit3", "tiny_ham_one_step"}
    files = [*PAGES, *(ROOT / "src" / "hamburger").rglob("*.py")]
    stale = {
        (f.relative_to(ROOT).as_posix(), name)
        for f in files
        for name in pattern.findall(f.read_text(encoding="utf-8"))
        if name not in names and name not in not_models and not name.startswith(("hamnet_voc", "tiny_convnet"))
    }
    assert not stale, f"names that are not registered models: {sorted(stale)}"


README_BENCH = "bench --modules ham_nmf self_attention --channels 256 --sizes 14 28 56 --no-train"


def test_readme_bench_command_parses_to_the_measured_setting():
    """The README's "where the Hamburger pays off" command sets 256 channels, 14/28/56 maps, inference only."""
    from hamburger.bench.cli import build_parser

    assert f"hamburger {README_BENCH}" in (ROOT / "README.md").read_text(encoding="utf-8")
    args = build_parser().parse_args(README_BENCH.split()[1:])
    assert args.modules == ["ham_nmf", "self_attention"] and args.channels == [256]
    assert args.sizes == [14, 28, 56] and args.no_train and not args.no_infer


def test_bench_quick_says_its_ratios_mean_nothing(capsys):
    from hamburger.bench.cli import main

    assert main(["--quick", "--modules", "ham_nmf", "--no-train", "--no-memory", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "its ratios mean nothing for real feature maps" in out
