"""DDP with 2 CPU processes (gloo, launched by torchrun): parameters stay identical across ranks, the
2-rank validation counts every pixel exactly once (same confusion matrix as 1 rank), and a SIGTERM that reaches
one rank only stops both at the same batch with a resumable checkpoint."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import lightning.pytorch as pl
    from hamburger.recipes.seg.datamodule import SegDataModule
    from hamburger.recipes.seg.module import SegModule

    out = sys.argv[1]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    small = {"backbone_kwargs": {"widths": [8, 16, 32], "depth": 1}, "channels": 16, "ham_channels": 16, "rank": 4}

    def trainer(**kw):
        return pl.Trainer(accelerator="cpu", devices=world, strategy="ddp" if world > 1 else "auto",
                          logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, num_sanity_val_steps=0, **kw)

    def datamodule():  # 7 validation scenes: an odd count that DistributedSampler would pad
        return SegDataModule("fashion_scenes", train_kwargs={"num_scenes": 16}, val_kwargs={"num_scenes": 7},
                             crop_size=48, batch_size=2, val_batch_size=2, num_workers=0, seed=1)

    pl.seed_everything(0, verbose=False)
    module = SegModule("tiny_ham", num_classes=11, model_kwargs=small, optimizer="sgd", lr=0.05)
    t = trainer(max_steps=4, limit_val_batches=0)
    t.fit(module, datamodule=datamodule())
    torch.save({n: p.detach().clone() for n, p in module.net.named_parameters()},
               os.path.join(out, f"params_rank{t.global_rank}.pt"))

    # validation of fixed weights (written by the test) on 1 or 2 ranks
    module.net.load_state_dict(torch.load(os.path.join(out, "..", "weights.pt"), weights_only=True))
    t = trainer()
    t.validate(module, datamodule=datamodule(), verbose=False)
    if t.global_rank == 0:
        scores = module.last_scores
        with open(os.path.join(out, "val.json"), "w") as f:
            json.dump({"mIoU": scores["mIoU"], "cm": scores["confusion_matrix"], "pixels": scores["num_pixels"]}, f)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(tmp_path: Path, nproc: int) -> Path:
    out = tmp_path / f"world{nproc}"
    out.mkdir()
    script = tmp_path / "ddp_script.py"
    script.write_text(SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--nnodes=1",
           f"--master_port={_free_port()}", str(script), str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**__import__("os").environ,
                          "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    from hamburger.models import create_model

    torch.manual_seed(5)
    small = {"backbone_kwargs": {"widths": [8, 16, 32], "depth": 1}, "channels": 16, "ham_channels": 16, "rank": 4}
    torch.save(create_model("tiny_ham", num_classes=11, **small).state_dict(), tmp_path / "weights.pt")

    two = _torchrun(tmp_path, 2)
    p0 = torch.load(two / "params_rank0.pt", weights_only=True)
    p1 = torch.load(two / "params_rank1.pt", weights_only=True)
    init = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert p0.keys() == p1.keys()
    for name in p0:
        torch.testing.assert_close(p0[name], p1[name], rtol=0, atol=0, msg=name)
    assert any(not torch.equal(p0[n], init[n]) for n in p0)  # it did train

    one = _torchrun(tmp_path, 1)
    v1 = json.loads((one / "val.json").read_text())
    v2 = json.loads((two / "val.json").read_text())
    assert v1["pixels"] == v2["pixels"] == 7 * 64 * 64  # no duplicated or dropped samples
    assert v1["cm"] == v2["cm"]
    assert v1["mIoU"] == v2["mIoU"]


SIGTERM_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    import lightning.pytorch as pl
    from hamburger.recipes.seg.datamodule import SegDataModule
    from hamburger.recipes.seg.module import SegModule
    from hamburger.training.checkpoint import AtomicCheckpointIO, RunCheckpoint

    out, term_rank, ckpt_path = sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None
    small = {"backbone_kwargs": {"widths": [8, 16, 32], "depth": 1}, "channels": 16, "ham_channels": 16, "rank": 4}

    class Term(pl.Callback):  # SIGTERM to one process only, at the end of step 5 (no step checkpoint there)
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 5 and trainer.global_rank == term_rank:
                os.kill(os.getpid(), signal.SIGTERM)

    pl.seed_everything(0, verbose=False)
    module = SegModule("tiny_ham", num_classes=11, model_kwargs=small, optimizer="sgd", lr=0.05)
    dm = SegDataModule("fashion_scenes", train_kwargs={"num_scenes": 16}, val_kwargs={"num_scenes": 4},
                       crop_size=48, batch_size=2, val_batch_size=2, num_workers=0, seed=1)
    ckpt = RunCheckpoint(dirpath=os.path.join(out, "ckpt"), filename="step{step:07d}", every_n_train_steps=3,
                         save_top_k=1, save_last=True, auto_insert_metric_name=False)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, max_steps=10, val_check_interval=4,
                         check_val_every_n_epoch=None, callbacks=[ckpt, Term()], plugins=[AtomicCheckpointIO()])
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    if trainer.global_rank == 0:
        torch.save({n: p.detach().clone() for n, p in module.net.named_parameters()}, os.path.join(out, "final.pt"))
    """
)


def _torchrun_sigterm(tmp_path: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "ddp_sigterm.py"
    script.write_text(SIGTERM_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           f"--master_port={_free_port()}", str(script), str(out), *args]  # fmt: skip
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_ddp_sigterm_on_one_rank_then_resume_is_exact(tmp_path: Path) -> None:
    from hamburger.training.checkpoint import load_checkpoint

    reference = _torchrun_sigterm(tmp_path, tmp_path / "reference", "-1")  # never signalled
    assert reference.returncode == 0, reference.stderr[-4000:]
    run = tmp_path / "run"
    stopped = _torchrun_sigterm(tmp_path, run, "1")  # only rank 1 gets it (Lightning's own handler hangs here)
    # both ranks exit with 143 (torchrun reports each, and may log the first failure once more)
    assert stopped.returncode != 0 and len(re.findall(r"exitcode\s*:\s*143", stopped.stderr)) >= 2, stopped.stderr[
        -4000:
    ]
    assert load_checkpoint(run / "ckpt" / "last.ckpt")["global_step"] == 5
    resumed = _torchrun_sigterm(tmp_path, run, "-1", "last")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    final = torch.load(run / "final.pt", weights_only=True)
    expected = torch.load(tmp_path / "reference" / "final.pt", weights_only=True)
    for name, value in expected.items():
        torch.testing.assert_close(final[name], value, rtol=0, atol=0, msg=name)
