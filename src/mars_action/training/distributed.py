"""Processes and devices: torchrun's environment, DDP helpers, and ``--gpus N`` launching.

A run is one process, or several started by ``torchrun`` (which sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``). CUDA
processes use NCCL, CPU processes gloo, so the same code is tested on a laptop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mars_action.errors import MarsError


@dataclass(frozen=True)
class Process:
    """Where this process stands: its rank among ``world_size`` and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes logs, checkpoints and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process: collectives are needed (a no-op otherwise)."""
        return self.world_size > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU when CUDA is present, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MarsError(f"train.device: {name} asked for, but CUDA is not available")
    return device


def start(device_name: str) -> Process:
    """Join the process group when launched by torchrun; a single process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world_size == 1:
        return Process(0, 1, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=device if backend == "nccl" else None)
    return Process(dist.get_rank(), dist.get_world_size(), device)


def stop(process: Process) -> None:
    """Leave the process group this run joined, so that a next run in the same process
    (tests, sweeps) can join again."""
    if process.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, process: Process) -> torch.Tensor:
    """The sum over processes (the tensor itself in a single process)."""
    if process.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def any_process(flag: bool, process: Process) -> bool:
    """True if ``flag`` is true in any process: all stop together, none hangs."""
    if not process.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=process.device)
    return bool(all_reduce_sum(value, process).item() > 0)


def barrier(process: Process) -> None:
    """Wait for every process (nothing in a single one): ranks leave together, so that
    none tears the group down while rank 0 still writes."""
    if process.distributed:
        dist.barrier()


@dataclass(frozen=True)
class Nodes:
    """Where this host stands among the hosts of one run (torchrun's static rendezvous)."""

    count: int = 1
    rank: int = 0
    master: str = ""  # ADDR:PORT of node 0, reachable from every node

    def torchrun_args(self) -> list[str]:
        """``--standalone`` on one host; else the nodes, this node's rank and the master."""
        if self.count == 1:
            return ["--standalone"]
        address, _, port = self.master.rpartition(":")
        return [f"--nnodes={self.count}", f"--node_rank={self.rank}",
                f"--master_addr={address}", f"--master_port={port}"]  # fmt: skip


def parse_nodes(count: int, rank: int, master: str | None) -> Nodes:
    """Check ``--nnodes/--node-rank/--master`` and bundle them.

    Raises:
        MarsError: a rank outside the nodes, or several nodes without ``ADDR:PORT``.
    """
    if count < 1 or not 0 <= rank < count:
        raise MarsError(f"--node-rank {rank} of --nnodes {count}: need 0 <= rank < nodes")
    if count > 1:
        address, _, port = (master or "").rpartition(":")
        if not address or not port.isdigit():
            raise MarsError(f"--master {master!r}: several nodes need ADDR:PORT of node 0")
    return Nodes(count, rank, master or "")


def launch(argv: list[str], nproc: int, nodes: Nodes = Nodes()) -> int:
    """Re-run ``mars`` with ``argv`` under torchrun: ``nproc`` processes on each of ``nodes``.

    Every node runs the same command with its own ``--node-rank``; torchrun's static
    rendezvous at node 0's ``--master`` joins them into one process group, ranks
    ``node_rank * nproc + local_rank``.
    """
    if nproc < 1:
        raise MarsError(f"--gpus {nproc}: must be at least 1")
    if torch.cuda.is_available() and nproc > torch.cuda.device_count():
        raise MarsError(f"--gpus {nproc}: only {torch.cuda.device_count()} GPU(s) visible")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *nodes.torchrun_args(),
        f"--nproc_per_node={nproc}",
        "-m",
        "mars_action.cli",
        *argv,
    ]
    return subprocess.call(command)
