"""Reading real official checkpoint files safely (issue 9): VOC HamNet with numpy scalars, mmengine Runner
checkpoints with mmengine objects, and pickles that would run code; plus the output folder's safety."""

from __future__ import annotations

import json
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from test_convert import hamnet_state, light_ham_state

from hamburger.models.convert import main, read_checkpoint


def _legacy_numpy1(path):
    """Rewrite a legacy-format (torch 1.4) file so its numpy scalars carry numpy 1.x's module name."""
    data = path.read_bytes()
    assert b"numpy._core.multiarray\nscalar" in data
    path.write_bytes(data.replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar"))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "torch1.4-legacy-numpy1"])
def test_reads_the_official_voc_hamnet_checkpoint_with_numpy_scalars(tmp_path, legacy):
    sd = hamnet_state("v2")  # keys with "module." (DataParallel), as seg/HamNet/train.py saves them
    path = tmp_path / "best_trainaug.pth"
    torch.save(
        {"net": sd, "step": 60000, "best_mIoU": np.float64(0.8594)}, path, _use_new_zipfile_serialization=not legacy
    )
    if legacy:
        _legacy_numpy1(path)
    with pytest.raises(pickle.UnpicklingError):  # what the plain safe reader (the old converter) does
        torch.load(path, weights_only=True)
    state = read_checkpoint(path)
    assert state.keys() == {k[len("module.") :] for k in sd}
    for key, value in sd.items():
        torch.testing.assert_close(state[key[len("module.") :]], value, rtol=0, atol=0)


@pytest.fixture
def fake_mmengine():
    """Classes whose pickled module path is mmengine's; the modules are removed before any loading."""
    names = ["mmengine", "mmengine.logging", "mmengine.logging.message_hub", "mmengine.logging.history_buffer"]
    modules = {n: types.ModuleType(n) for n in names}

    class MessageHub:
        def __init__(self):
            self._log_scalars = {"train/loss": HistoryBuffer()}
            self._runtime_info = {"iter": 160000, "epoch": 0}
            self._resumed_keys = {"iter": True}

    class HistoryBuffer:
        def __init__(self):
            self._log_history = np.array([0.5, 0.4, 0.3])
            self._count_history = np.array([1, 1, 1])

    for cls, module in ((MessageHub, names[2]), (HistoryBuffer, names[3])):
        cls.__module__, cls.__qualname__ = module, cls.__name__
        setattr(modules[module], cls.__name__, cls)
    sys.modules.update(modules)
    try:
        yield MessageHub
    finally:
        for name in names:
            sys.modules.pop(name, None)


def test_reads_an_mmengine_runner_checkpoint_without_importing_mmengine(tmp_path, fake_mmengine):
    sd = light_ham_state()
    checkpoint = {
        "meta": {"mmengine_version": "0.10.3", "epoch": 0, "iter": 160000, "seed": np.int64(0),
                 "dataset_meta": {"classes": ("wall", "building")}},
        "state_dict": sd,
        "message_hub": fake_mmengine(),
        "optimizer": {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.zeros(3)}},
                      "param_groups": [{"lr": 6e-5, "betas": (0.9, 0.999), "params": [0]}]},
        "param_schedulers": [{"base_values": [6e-5], "last_step": 160000}],
    }  # fmt: skip
    path = tmp_path / "segnext_mscan-t_ade20k.pth"
    torch.save(checkpoint, path)
    for name in [n for n in sys.modules if n.startswith("mmengine")]:
        del sys.modules[name]  # loading must not need (or import) mmengine
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    state = read_checkpoint(path)
    assert not [n for n in sys.modules if n.startswith("mmengine")]
    assert state.keys() == sd.keys()
    for key, value in sd.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _WritesFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("payload", [_RunsCode, _WritesFile])
def test_a_checkpoint_that_would_run_code_is_read_inertly(tmp_path, capsys, payload):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": light_ham_state(), "meta": {"hook": payload(marker)}}, path)
    state = read_checkpoint(path)
    assert not marker.exists()
    assert "decode_head.squeeze.conv.weight" in state
    args = [str(path), str(tmp_path / "out"), "--ham-kwargs", '{"MD_R": 16}', "--in-channels", "16,24,32"]
    assert main(args) == 0
    assert not marker.exists()
    assert "not needed for the weights" in capsys.readouterr().err


def test_a_corrupt_checkpoint_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "broken.pth"
    torch.save({"state_dict": light_ham_state()}, path)
    path.write_bytes(path.read_bytes()[:300])
    assert main([str(path), str(tmp_path / "out"), "--ham-kwargs", '{"MD_R": 16}']) == 2
    err = capsys.readouterr().err
    assert err.startswith("hamburger convert: error: cannot read checkpoint") and err.count("\n") == 1


def test_the_output_folder_never_replaces_user_files(tmp_path, capsys):
    path = tmp_path / "segnext.pth"
    torch.save({"state_dict": light_ham_state()}, path)
    before = path.read_bytes()
    args = ["--ham-kwargs", '{"MD_R": 16}', "--in-channels", "16,24,32"]
    assert main([str(path), str(tmp_path), *args]) == 2  # OUT_DIR holds the checkpoint: refused
    assert "holds other files" in capsys.readouterr().err and path.read_bytes() == before
    out = tmp_path / "out"
    assert main([str(path), str(out), *args]) == 0
    assert main([str(path), str(out), "--ham-kwargs", '{"MD_R": 8}', "--in-channels", "16,24,32"]) == 0  # rerun
    assert json.loads((out / "conversion.json").read_text())["hamburger"]["rank"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "segnext.pth"]  # no temporary folders left
