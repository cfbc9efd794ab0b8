"""The online dictionary stays identical across DDP ranks (2 CPU processes, gloo)."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import hamburger as hb


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch(rank: int) -> torch.Tensor:
    return torch.rand(2, 8, 4, 4, generator=torch.Generator().manual_seed(100 + rank))


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ham = hb.NMF(rank=3, steps=2, init="online", channels=8, momentum=0.5).train()
        before = ham.bases.clone()
        xm = _batch(rank).reshape(2, 8, 16)
        final, _ = ham.decompose(xm, before.repeat(2, 1, 1))  # what this rank contributes
        ham(_batch(rank))
        torch.save({"before": before, "after": ham.bases.clone(), "local_mean": final.mean(0)}, f"{out_dir}/{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_online_dictionary_is_all_reduced(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(2))
    torch.testing.assert_close(r0["after"], r1["after"], rtol=0, atol=0)  # identical on both ranks
    global_mean = (r0["local_mean"] + r1["local_mean"]) / 2
    expected = F.normalize(r0["before"] + 0.5 * (global_mean - r0["before"]), dim=1)
    torch.testing.assert_close(r0["after"], expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(r0["local_mean"], r1["local_mean"])  # the ranks saw different data
