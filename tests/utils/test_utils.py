"""hamburger.utils: argument checks, atomic writes, constants."""

from __future__ import annotations

import math
import os

import pytest

from hamburger.utils import (
    IGNORE_INDEX,
    IMAGENET_MEAN,
    IMAGENET_STD,
    VOC_PALETTE,
    atomic_directory,
    atomic_write,
    atomic_write_text,
    check_choice,
    check_float,
    check_int,
    check_pair,
    check_positive_int,
)


def test_check_int():
    assert check_int("steps", 0) == 0 and check_int("steps", 3, minimum=1) == 3
    with pytest.raises(TypeError, match=r"steps must be an int >= 1, got float 1.5"):
        check_int("steps", 1.5, minimum=1)
    with pytest.raises(TypeError, match="got bool True"):
        check_int("steps", True)
    with pytest.raises(ValueError, match=r"steps must be an int >= 1, got 0"):
        check_int("steps", 0, minimum=1)


def test_check_positive_int():
    assert check_positive_int("rank", 64) == 64
    with pytest.raises(ValueError, match="rank must be a positive int, got 0"):
        check_positive_int("rank", 0)
    with pytest.raises(TypeError, match="rank must be a positive int, got str '8'"):
        check_positive_int("rank", "8")


def test_check_float():
    assert check_float("lr", 1) == 1.0 and isinstance(check_float("lr", 1), float)
    assert check_float("p", 0.0, low=0, high=1) == 0.0
    with pytest.raises(ValueError, match=r"p must be a finite number in \(0, 1\], got 0"):
        check_float("p", 0, low=0, high=1, low_open=True)
    with pytest.raises(ValueError, match="got nan"):
        check_float("p", math.nan)
    with pytest.raises(ValueError, match="finite"):
        check_float("p", math.inf)
    assert check_float("p", math.inf, finite=False) == math.inf
    with pytest.raises(TypeError, match="p must be a finite number >= 0, got bool False"):
        check_float("p", False, low=0)
    with pytest.raises(ValueError, match="t must be a finite number < 2, got 2"):
        check_float("t", 2, high=2, high_open=True)


def test_check_choice():
    assert check_choice("mode", "bptt", ["one_step", "bptt"]) == "bptt"
    with pytest.raises(ValueError, match=r"mode must be one of \['a', 'b'\], got 'A'"):
        check_choice("mode", "A", ["a", "b"])
    with pytest.raises(TypeError, match=r"mode must be one of \['a', 'b'\], got int 1"):
        check_choice("mode", 1, ["a", "b"])
    with pytest.raises(TypeError, match="got True"):
        check_choice("stride", True, [1, 2])


def test_check_pair():
    assert check_pair("size", 5) == (5, 5) and check_pair("size", [3, 4]) == (3, 4)
    with pytest.raises(ValueError, match=r"size must be a positive int or a pair \(h, w\) of them, got \(3, 0\)"):
        check_pair("size", (3, 0))
    for bad in ("ab", (1, 2, 3), (1.0, 2), None):
        with pytest.raises(TypeError, match="size must be a positive int or a pair"):
            check_pair("size", bad)
    with pytest.raises(ValueError, match="size must be a positive int, got -1"):
        check_pair("size", -1)


def test_atomic_write_replaces_and_leaves_the_old_file_on_error(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic_write_text(path, "one")
    assert path.read_text() == "one"

    def crash(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(path, crash)
    assert path.read_text() == "one"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]  # no temporary file left
    atomic_write(path, lambda tmp: open(tmp, "w").write("two"))
    assert path.read_text() == "two"


def test_atomic_directory_replaces_the_folder_as_a_whole(tmp_path):
    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "weights.bin").write_bytes(b"w1")
        (tmp / "config.json").write_text("{}")
    assert sorted(os.listdir(target)) == ["config.json", "weights.bin"]
    with atomic_directory(target) as tmp:
        (tmp / "weights.bin").write_bytes(b"w2")
    assert os.listdir(target) == ["weights.bin"] and (target / "weights.bin").read_bytes() == b"w2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_directory_crash_in_the_middle_keeps_the_old_folder(tmp_path):
    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "weights.bin").write_bytes(b"old")
        (tmp / "config.json").write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_directory(target) as tmp:
        (tmp / "weights.bin").write_bytes(b"new")
        raise KeyboardInterrupt  # killed before the config was written
    assert (target / "weights.bin").read_bytes() == b"old" and (target / "config.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_directory_refuses_a_file(tmp_path):
    (tmp_path / "x").write_text("user data")
    with pytest.raises(ValueError, match="exists and is not a directory"), atomic_directory(tmp_path / "x"):
        pass
    assert (tmp_path / "x").read_text() == "user data"


def test_constants():
    assert IGNORE_INDEX == 255
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)
    assert len(VOC_PALETTE) == 256
    known = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128), 15: (192, 128, 128)}
    for index, colour in known.items():  # background, aeroplane, bicycle, bird, boat, person
        assert tuple(VOC_PALETTE[index]) == colour, index
    assert tuple(VOC_PALETTE[255]) == (224, 224, 192)  # the ignore colour of VOC's masks


def test_atomic_writes_have_ordinary_permissions(tmp_path):
    import os
    import stat

    from hamburger.utils import atomic_directory, atomic_write_text

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_directory(tmp_path / "d") as d:
            (d / "f").write_text("y")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
