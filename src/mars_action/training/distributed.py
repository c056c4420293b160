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
        return self.rank == 0

    @property
    def distributed(self) -> bool:
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
    if process.distributed:
        dist.barrier()


def launch(argv: list[str], nproc: int) -> int:
    """Re-run ``mars`` with ``argv`` under torchrun on ``nproc`` local processes."""
    if nproc < 1:
        raise MarsError(f"--gpus {nproc}: must be at least 1")
    if torch.cuda.is_available() and nproc > torch.cuda.device_count():
        raise MarsError(f"--gpus {nproc}: only {torch.cuda.device_count()} GPU(s) visible")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "mars_action.cli",
        *argv,
    ]
    return subprocess.call(command)
