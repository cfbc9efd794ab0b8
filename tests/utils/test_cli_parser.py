"""``hamburger bench`` and ``hamburger convert``: a bad argument is one line on stderr and exit 2."""

from __future__ import annotations

import pytest

from hamburger.cli import main
from hamburger.utils.cli import ArgumentParser


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["bench", "--bogus"], "hamburger bench: error: unrecognized arguments: --bogus"),
        (["bench", "--sizes", "x"], "hamburger bench: error: argument --sizes: invalid int value: 'x'"),
        (["convert", "--bogus", "a", "b"], "hamburger convert: error: unrecognized arguments: --bogus"),
        (["convert"], "hamburger convert: error: the following arguments are required: checkpoint, out_dir"),
    ],
)
def test_bad_argument_is_one_line(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [expected]
    assert captured.out == ""


def test_parser_refuses_abbreviations(capsys: pytest.CaptureFixture[str]) -> None:
    parser = ArgumentParser(prog="tool")
    parser.add_argument("--quick", action="store_true")
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--qui"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == "tool: error: unrecognized arguments: --qui\n"
