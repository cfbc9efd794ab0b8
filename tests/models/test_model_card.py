"""save_pretrained's model card, push_to_hub's revision, and from_pretrained on a missing local path (issue 12)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
import torch

from hamburger.models import SegmentationModel, create_model, hub

CARD = {
    "training_data": "FashionScenes (embedded), 4000 train scenes at 64 x 64",
    "recipe": {"config": "fashion_scenes", "optimizer": "sgd", "lr": 0.05, "max_steps": 1000},
    "scores": {"val/mIoU": 22.0, "val/aAcc": 91.5},
    "license": "apache-2.0",
    "seed": 0,
}


def _model():
    return create_model("tiny_ham", num_classes=3, rank=8)


def test_card_written_with_weights_and_config(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / "m", card=CARD)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    text = (tmp_path / "m" / "README.md").read_text(encoding="utf-8")
    assert text.startswith('---\nlibrary_name: hamburger\nlicense: "apache-2.0"\n')
    for part in ("# tiny_ham", "| `backbone` | `'tiny_convnet'` |", "| `head` | `'light_ham'` |",
                 "| `num_classes` | `3` |", "## Ham options", "| `ham` | `'nmf'` |", "| `rank` | `8` |",
                 "| `version` | `'v2+'` |", "FashionScenes (embedded), 4000 train scenes", "| lr | 0.05 |",
                 "| val/mIoU | 22.0 |", "## Other information", "| seed | 0 |", "- nmf"):  # fmt: skip
        assert part in text, part
    loaded = SegmentationModel.from_pretrained(tmp_path / "m")  # the card does not disturb loading
    x = torch.randn(1, 3, 67, 53)
    torch.testing.assert_close(loaded(x)["out"], model.eval()(x)["out"])


def test_card_without_information_says_so(tmp_path):
    _model().save_pretrained(tmp_path / "m")
    text = (tmp_path / "m" / "README.md").read_text(encoding="utf-8")
    assert text.count("Not recorded.") == 3 and 'license: "unknown"' in text
    with pytest.raises(TypeError, match="card must be a mapping"):
        _model().save_pretrained(tmp_path / "x", card="mIoU 22")
    assert not (tmp_path / "x").exists()


def test_card_is_part_of_the_atomic_folder(tmp_path, monkeypatch):
    """A failure while writing the card leaves the previous folder (weights, config and card) as it was."""
    target = tmp_path / "m"
    _model().save_pretrained(target, card={"scores": {"mIoU": 1.0}})
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def broken(config, card=None):
        raise RuntimeError("disk full")

    monkeypatch.setattr(hub, "model_card", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        create_model("tiny_ham", num_classes=5).save_pretrained(target, card={"scores": {"mIoU": 2.0}})
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left behind


@pytest.mark.parametrize("name", ["./missing", "missing/deeper/model", "~/no-such-hamburger-model", "/abs/model"])
def test_missing_local_path_is_not_a_hub_id(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []
    fake = types.ModuleType("huggingface_hub")
    fake.snapshot_download = lambda **kwargs: calls.append(kwargs)
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    with pytest.raises(FileNotFoundError, match=f"the folder '{name}' does not exist"):
        SegmentationModel.from_pretrained(name)
    (tmp_path / "runs").mkdir()  # "runs/model" beside an existing runs/: a path that exists partially
    with pytest.raises(FileNotFoundError, match="the folder 'runs/model' does not exist"):
        SegmentationModel.from_pretrained("runs/model")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SegmentationModel.from_pretrained(Path("ckpt"))  # a Path is never a hub id
    assert calls == []


def test_hub_id_still_goes_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _model().save_pretrained(tmp_path / "snapshot")
    calls = []
    fake = types.ModuleType("huggingface_hub")
    fake.snapshot_download = lambda **kwargs: calls.append(kwargs) or str(tmp_path / "snapshot")
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    model = SegmentationModel.from_pretrained("someone/tiny-ham")
    assert isinstance(model, SegmentationModel) and calls[0]["repo_id"] == "someone/tiny-ham"


@pytest.mark.parametrize("revision", [None, "v1.0"])
def test_push_to_hub_passes_revision_and_card(revision, monkeypatch):
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, private=False, exist_ok=False):
            calls.append(("create_repo", repo_id, private))

        def create_branch(self, repo_id, branch, exist_ok=False):
            calls.append(("create_branch", repo_id, branch, exist_ok))

        def upload_folder(self, *, repo_id, folder_path, commit_message, revision=None):
            files = sorted(os.listdir(folder_path))
            card = Path(folder_path, "README.md").read_text(encoding="utf-8")
            calls.append(("upload_folder", repo_id, revision, files, "| val/mIoU | 22.0 |" in card))
            return "https://huggingface.co/someone/tiny-ham"

    fake = types.ModuleType("huggingface_hub")
    fake.HfApi = FakeApi
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    url = _model().push_to_hub("someone/tiny-ham", token="t", revision=revision, card=CARD)
    assert url == "https://huggingface.co/someone/tiny-ham"
    expected = [("init", "t"), ("create_repo", "someone/tiny-ham", False)]
    if revision is not None:
        expected.append(("create_branch", "someone/tiny-ham", revision, True))
    expected.append(("upload_folder", "someone/tiny-ham", revision, ["README.md", "config.json", "model.safetensors"],
                     True))  # fmt: skip
    assert calls == expected
