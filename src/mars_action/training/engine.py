"""One loop for every stream: forward, loss parts, mixed precision, accumulation, metrics.

The stream only changes the :class:`~mars_action.training.losses.Objective`
inside ``Engine.loss``; this file never asks which stream it is training.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mars_action.errors import MarsError
from mars_action.progress import Progress
from mars_action.training.distributed import Process, all_reduce_sum, any_process
from mars_action.training.losses import StreamLoss

PARTS = ("loss", "ce", "mse", "alpha_mse", "kd", "at", "epe")


# Far beyond any trained classifier's logits (tens at most); a diverging run passes it
# within an epoch (1e5 and more) long before its loss turns NaN.
LOGIT_LIMIT = 1e4


class NonFiniteLoss(MarsError):
    """The loss became NaN or infinite, or the outputs diverged; the step was not applied."""


@dataclass
class Engine:
    """What a training or validation step needs; built once per phase."""

    student: nn.Module  # a losses.Student, wrapped in DDP when distributed
    loss: StreamLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    process: Process
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    grad_accum: int = 1

    @property
    def bare_student(self) -> nn.Module:
        """The Student without DDP: validation must not join DDP's collectives."""
        if isinstance(self.student, DistributedDataParallel):
            return self.student.module
        return self.student


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bf16 on a CUDA card that supports it, else fp16; no autocast on the CPU."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode == "fp16" and device.type != "cuda":
        raise MarsError("train.amp: fp16 needs CUDA; use bf16 or off on the CPU")
    return torch.bfloat16 if mode == "bf16" else torch.float16


def make_scaler(dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 only (bf16 has fp32's range)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def to_device(batch: dict, keys: Iterable[str], engine: Engine) -> dict:
    """The ``keys`` clips and the labels of a collated batch on the engine's device."""
    device = engine.process.device
    out = {"label": batch["label"].to(device, non_blocking=True)}
    for key in keys:
        clips = batch[key].to(device, non_blocking=True)  # (B, C, T, H, W)
        if engine.channels_last:
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        out[key] = clips
    return out


def input_keys(loss: StreamLoss) -> tuple[str, ...]:
    """The clips a step reads: the student's input, and flow for the teacher or as the
    flow regression's target."""
    keys = (loss.objective.input,)
    return keys + ("flow",) if loss.objective.uses_flow and "flow" not in keys else keys


def forward_loss(
    engine: Engine, batch: dict, student: nn.Module
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Loss parts and logits of one batch, under autocast when mixed precision is on."""
    device_type = engine.process.device.type
    with torch.autocast(device_type, dtype=engine.amp_dtype, enabled=engine.amp_dtype is not None):
        logits, features = student(batch[engine.loss.objective.input])
        parts = engine.loss(logits, features, batch)
    return parts, logits


class Meter:
    """Sums of loss parts and correct clips on the device, reduced over processes once."""

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(len(PARTS) + 2, dtype=torch.float64, device=device)
        self.present: set[str] = set()

    def add(self, parts: dict[str, torch.Tensor], logits: torch.Tensor, labels: torch.Tensor):
        """Add a batch, weighted by its labelled clips, without a host sync (no
        ``.item()`` per step)."""
        labelled = labels >= 0  # unlabelled clips (label -1) only feed the teacher terms
        count = labelled.sum().double()
        self.present.update(k for k in PARTS if k in parts)
        zero = logits.new_zeros((), dtype=torch.float64)
        values = [parts[k].detach().double() * count if k in parts else zero for k in PARTS]
        correct = ((logits.detach().argmax(1) == labels) & labelled).sum().double()
        self.sums += torch.stack([*values, correct, zero + count])

    def restore(self, sums: torch.Tensor, present) -> None:
        """Continue a mid-epoch resume point's sums; one written when :data:`PARTS` was
        shorter (parts are only ever appended) keeps its parts, correct clips and count."""
        parts = len(sums) - 2
        self.sums[:parts] = sums[:parts]
        self.sums[-2:] = sums[-2:]
        self.present.update(present)

    def result(self, process: Process) -> dict[str, float]:
        """Means over every process's clips: the parts seen, ``acc`` and ``clips``."""
        sums = all_reduce_sum(self.sums.clone(), process).tolist()
        count = max(sums[-1], 1.0)
        out = {k: sums[i] / count for i, k in enumerate(PARTS) if k in self.present}
        return {**out, "acc": sums[-2] / count, "clips": int(sums[-1])}

    def running(self) -> tuple[float, float]:
        """(mean loss, accuracy) of this process so far, for the progress bar."""
        loss, correct, count = self.sums[0].item(), self.sums[-2].item(), self.sums[-1].item()
        return loss / max(count, 1.0), correct / max(count, 1.0)


def check_finite(
    loss: torch.Tensor, process: Process, where: str, logits: torch.Tensor | None = None
) -> None:
    """Stop every process together if the loss of any is NaN or infinite, or its
    ``logits`` pass :data:`LOGIT_LIMIT` (diverging: the next steps only get worse)."""
    value = loss.detach().float().item()
    peak = logits.detach().abs().max().float().item() if logits is not None else 0.0
    if any_process(not (math.isfinite(value) and peak <= LOGIT_LIMIT), process):
        raise NonFiniteLoss(_why(value, peak, where))


def _why(loss: float, peak: float, where: str) -> str:
    if not math.isfinite(loss):
        return f"loss is {loss} at {where}"
    if peak > LOGIT_LIMIT:
        return f"diverged at {where}: outputs reach {peak:.3g} (> {LOGIT_LIMIT:g}), loss {loss:.3g}"
    return f"another process diverged at {where}"


def optimizer_step(engine: Engine) -> None:
    """Step through the grad scaler (it skips steps with inf gradients under fp16) and
    free the gradients (``set_to_none``: less memory, no zeroing kernel).

    Under bf16 a step whose gradients are not finite is skipped too, with one line:
    PyTorch 2.13's bf16 weight gradients of 3D convolutions on the CPU (oneDNN) are now
    and then NaN although inputs, outputs and loss are finite (measured on 4-clip
    resnet10_tiny MARS steps at one thread, a different step each time: 7 of 300 in
    channels_last_3d, 4 of 300 contiguous), and one such step would turn the weights
    into NaN for good. A real divergence still stops the run: its loss and outputs are
    checked before the backward pass.
    """
    if engine.amp_dtype == torch.bfloat16 and not _gradients_finite(engine.optimizer):
        if engine.process.is_main:
            print("bf16: skipped an optimizer step whose gradients were not finite",
                  file=sys.stderr, flush=True)
    else:
        engine.scaler.step(engine.optimizer)
        engine.scaler.update()
    engine.optimizer.zero_grad(set_to_none=True)


def _gradients_finite(optimizer: torch.optim.Optimizer) -> bool:
    grads = [p.grad for group in optimizer.param_groups for p in group["params"]
             if p.grad is not None]
    return bool(torch.stack([g.isfinite().all() for g in grads]).all()) if grads else True


def train_one_epoch(
    engine: Engine,
    loader: Iterable,
    *,
    epoch: int,
    start_step: int = 0,
    on_step: Callable[[int, Meter], None] | None = None,
    meter: Meter | None = None,
    progress: bool = False,
    epochs: int | None = None,
) -> tuple[dict[str, float], int]:
    """Train over ``loader``; returns the epoch's metrics and its optimizer steps so far.

    A resumed run passes the ``start_step`` optimizer steps already done in this
    epoch and the ``meter`` sums of those steps; ``on_step(step, meter)`` runs after
    every optimizer step (mid-epoch checkpoints). ``epochs``: the run's total, shown
    on the progress bar (``epoch 3/60``).
    """
    meter = meter or Meter(engine.process.device)
    keys, accum, process = input_keys(engine.loss), engine.grad_accum, engine.process
    engine.optimizer.zero_grad(set_to_none=True)
    step, pending, seen, started = start_step, 0, 0, time.perf_counter()
    bar = Progress(
        len(loader),
        f"epoch {epoch + 1}" + (f"/{epochs}" if epochs else ""),
        "batch",
        leave=False,
        disable=not (progress and process.is_main),
        every_fraction=None,  # in a log: a line every 10 s, not one or 20 an epoch
    )
    ddp, last = isinstance(engine.student, DistributedDataParallel), len(loader) - 1
    for index, batch in enumerate(loader):
        batch = to_device(batch, keys, engine)
        pending += 1
        boundary = pending == accum or index == last  # the epoch may end mid-accumulation
        with engine.student.no_sync() if ddp and not boundary else contextlib.nullcontext():
            parts, logits = forward_loss(engine, batch, engine.student)
            check_finite(parts["loss"], process, f"epoch {epoch + 1}, step {step + 1}", logits)
            engine.scaler.scale(parts["loss"] / accum).backward()
        meter.add(parts, logits, batch["label"])
        seen += batch["label"].numel() * process.world_size
        if boundary:
            optimizer_step(engine)
            step, pending = step + 1, 0
            if on_step is not None:
                on_step(step, meter)
        bar.update()
        _show(bar, meter, seen / max(time.perf_counter() - started, 1e-9))
    bar.close()
    clips_per_s = seen / max(time.perf_counter() - started, 1e-9)
    return {**meter.result(process), "clips_per_s": clips_per_s}, step


def _show(bar: Progress, meter: Meter, clips_per_s: float) -> None:
    if bar.disable:
        return
    loss, acc = meter.running()
    bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", clips_s=f"{clips_per_s:.1f}")


@torch.no_grad()
def evaluate(engine: Engine, loader: Iterable) -> dict[str, float]:
    """Clip-level loss parts and accuracy of the objective being trained, over all processes."""
    student = engine.bare_student
    student.eval()
    meter, keys = Meter(engine.process.device), input_keys(engine.loss)
    for batch in loader:
        batch = to_device(batch, keys, engine)
        parts, logits = forward_loss(engine, batch, student)
        meter.add(parts, logits, batch["label"])
    return meter.result(engine.process)


# A loss this many times its first epochs' is diverging, not learning.
GROWTH_LIMIT = 1e3


def check_growth(history: list[dict[str, Any]], record: dict[str, Any]) -> None:
    """Stop a run whose train or validation loss grew by orders of magnitude over its
    phase's first epochs' (the smallest of its first three), as NaN stops it: before
    this epoch is saved, so ``last.pt`` keeps the last good one."""
    same = [r for r in history if r.get("phase") == record.get("phase")][:3]
    for key in ("train_loss", "val_loss"):
        first = [r[key] for r in same if r.get(key) is not None]
        value = record.get(key)
        if first and value is not None and value > GROWTH_LIMIT * max(min(first), 1e-3):
            raise NonFiniteLoss(
                f"diverged at epoch {record['epoch']}: {key} {value:.3g} is over "
                f"{GROWTH_LIMIT:g} times the first epochs' {min(first):.3g}"
            )
