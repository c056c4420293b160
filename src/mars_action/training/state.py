"""Run checkpoints: model weights + meta (``models.checkpoint``) + the training state.

The training state is plain data and tensors only (``torch.load(weights_only=True)``
reads it): optimizer, scheduler and grad-scaler state, where the run stands
(``epoch``, ``step`` = optimizer steps done in that epoch, ``global_step``), the
best validation accuracy, the metrics history and the RNG states. ``last.pt``
carries it; ``best.pt`` only the weights, meta and its epoch and accuracy.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mars_action.errors import MarsError
from mars_action.models import CheckpointMeta, read_checkpoint, save_checkpoint


@dataclass
class RunState:
    """Where a run stands; saved in ``last.pt`` and restored by ``--resume``."""

    epoch: int = 0  # the epoch in progress (or next to start)
    step: int = 0  # optimizer steps already done in ``epoch``
    global_step: int = 0
    best_acc: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per epoch


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA) generator states as plain data and tensors."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved, so that a resumed run draws the same clips,
    and crops as one that never stopped."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def scheduler_state(scheduler) -> dict[str, Any]:
    """The scheduler's state without ``milestones`` (a Counter; rebuilt from the config)."""
    return {k: v for k, v in scheduler.state_dict().items() if k != "milestones"}


def save_last(
    path: Path,
    model: nn.Module,
    meta: CheckpointMeta,
    state: RunState,
    *,
    phase: str,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler: torch.amp.GradScaler,
    meter: dict[str, Any] | None = None,
    adapters: nn.Module | None = None,
) -> Path:
    """``last.pt``: everything ``--resume`` needs; ``meter`` holds a mid-epoch's sums so far.

    ``adapters`` (cross-family distillation) are trained state the optimizer's momentum
    refers to, so a resumed run needs them; they live in the training state, never in
    the model's weights (``best.pt`` and exports hold the student alone).
    """
    training = {
        **dataclasses.asdict(state),
        "phase": phase,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler_state(scheduler),
        "scaler": scaler.state_dict(),
        "rng": rng_state(),
        "meter": meter,
        "adapters": adapters.state_dict() if adapters is not None else None,
    }
    return save_checkpoint(path, model, meta, training=training)


def save_best(path: Path, model: nn.Module, meta: CheckpointMeta, epoch: int, acc: float) -> Path:
    """``best.pt``: weights and meta only (no optimizer), what evaluation and inference
    load; the epoch and validation accuracy say why it was kept."""
    return save_checkpoint(path, model, meta, epoch=epoch, val_acc=acc)


def read_last(path: Path) -> tuple[dict[str, torch.Tensor], CheckpointMeta, dict[str, Any]]:
    """(weights, meta, training dict) of a ``last.pt``."""
    weights, meta, raw = read_checkpoint(path)
    if not isinstance(raw.get("training"), dict):
        raise MarsError(f"{path}: holds no training state to resume from")
    return weights, meta, raw["training"]


def run_state(training: dict[str, Any]) -> RunState:
    """The :class:`RunState` fields of a ``last.pt`` training dict (the rest are the
    optimizer's, scheduler's and generators' states)."""
    names = RunState.__dataclass_fields__
    return RunState(**{k: v for k, v in training.items() if k in names})
