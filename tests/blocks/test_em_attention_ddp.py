"""EMAttention2d's moving-average bases stay identical across DDP ranks (2 CPU processes, gloo)."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from hamburger.blocks import EMAttention2d


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # the same initial bases and weights on both ranks, as DDP broadcasts them
        block = EMAttention2d(8, bases=3, stages=2, momentum=0.5).train()
        before = block.mu.clone()
        x = torch.randn(2, 8, 5, 3, generator=torch.Generator().manual_seed(100 + rank))  # per-rank data
        with torch.no_grad():  # this rank's batch mean of the final bases, by the EM recursion
            f = block.conv_in(x).flatten(2)
            mu = before.expand(2, -1, -1)
            for _ in range(block.stages):
                z = torch.softmax(f.transpose(1, 2) @ mu, dim=2)
                mu = F.normalize(f @ (z / (1e-6 + z.sum(1, keepdim=True))), dim=1)
        block(x)
        torch.save({"before": before, "after": block.mu.clone(), "local_mean": mu.mean(0, keepdim=True)},
                   f"{out_dir}/{rank}.pt")  # fmt: skip
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_em_bases_are_all_reduced(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(2))
    assert torch.equal(r0["before"], r1["before"])
    torch.testing.assert_close(r0["after"], r1["after"], rtol=0, atol=0)  # identical on both ranks
    global_mean = (r0["local_mean"] + r1["local_mean"]) / 2
    expected = F.normalize(0.5 * r0["before"] + 0.5 * global_mean, dim=1)
    torch.testing.assert_close(r0["after"], expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(r0["local_mean"], r1["local_mean"])  # the ranks saw different data
