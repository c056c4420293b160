"""Which engine runs the network: PyTorch, or ONNX Runtime on the CPU when installed.

On the 2-core CPU this project is measured on, both engines do about the same work
per ResNeXt-101 clip (0.12-0.15 CPU-s); on a quiet machine PyTorch (optimized) was
~1.3x faster (benchmarks/results/latency.json). But PyTorch's OpenMP threads
spin-wait at every op's barrier: when other processes hold a core, each of the
network's hundreds of parallel ops waits for a descheduled thread, and PyTorch ran
10-15x slower (batch 1, load 3-5) while ONNX Runtime, its spinning turned off, kept
its speed. ``OMP_WAIT_POLICY=passive`` in the environment of a fresh process fixes
PyTorch too, but cannot be set once torch is imported. So PyTorch is the default
(the faster engine on an idle CPU), and ``onnxruntime`` / ``auto`` serve a machine
shared with other busy work: the checkpoint's network is exported once, checked
against eager PyTorch (max |diff| <= 1e-4, as ``mars export`` checks), and cached
under a key of the checkpoint's bytes; with ``auto`` a model that cannot be exported
or that differs runs in PyTorch, and the reason is kept in :attr:`Network.note`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from mars_action.errors import MarsError
from mars_action.inference.export import (
    export_model,
    load_exported,
    max_abs_difference,
    random_clips,
)
from mars_action.models.checkpoint import CheckpointMeta

RUNTIMES = ("auto", "pytorch", "onnxruntime")
CACHE_ENV = "MARS_CACHE_DIR"
ATOL = 1e-4
_KEY_VERSION = "onnx-v1"  # bump when the export itself changes


@dataclasses.dataclass
class Network:
    """The network to score clips with, the engine that runs it, and why that engine."""

    model: nn.Module | Callable[[torch.Tensor], torch.Tensor]
    runtime: str  # "pytorch" or "onnxruntime"
    note: str | None = None  # set when ``auto`` fell back, or on a fresh export


def default_cache_dir() -> Path:
    """``$MARS_CACHE_DIR``, else ``$XDG_CACHE_HOME/mars_action``, else ``~/.cache/mars_action``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mars_action"


def onnxruntime_available() -> bool:
    """Whether ONNX Runtime can be imported, checked without importing it (``auto``
    then falls back to PyTorch instead of failing: it is an optional dependency)."""
    return importlib.util.find_spec("onnxruntime") is not None


def select_network(
    model: nn.Module,
    meta: CheckpointMeta,
    checkpoint: str | Path,
    device: torch.device,
    runtime: str = "pytorch",
    cache_dir: str | Path | None = None,
) -> Network:
    """The engine for ``model`` (eval mode, loaded from ``checkpoint``) on ``device``.

    ``auto``: ONNX Runtime on a CPU when it is installed and the export matches
    PyTorch, else PyTorch. ``onnxruntime``: the same, but a failure is an error.
    ``pytorch``: always PyTorch.
    """
    if runtime not in RUNTIMES:
        raise MarsError(f"runtime {runtime!r}: choose from {', '.join(RUNTIMES)}")
    if runtime == "pytorch" or (runtime == "auto" and device.type != "cpu"):
        return Network(model, "pytorch")
    if not onnxruntime_available():
        reason = "onnxruntime is not installed"
        if runtime == "onnxruntime":
            raise MarsError(f"{checkpoint}: --runtime onnxruntime, but {reason}")
        return Network(model, "pytorch", f"network runs in PyTorch ({reason})")
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        path, fresh = cached_onnx(model, meta, checkpoint, folder / "onnx")
    except Exception as error:  # noqa: BLE001  (the exporter raises many types)
        reason = _first_line(error)
        if runtime == "onnxruntime":
            raise MarsError(f"{checkpoint}: no ONNX Runtime model: {reason}") from None
        return Network(model, "pytorch", f"network runs in PyTorch (ONNX export: {reason})")
    note = f"exported the network to {path} for ONNX Runtime (once)" if fresh else None
    return Network(load_exported(path, device), "onnxruntime", note)


def cached_onnx(
    model: nn.Module, meta: CheckpointMeta, checkpoint: str | Path, folder: Path
) -> tuple[Path, bool]:
    """(the checked ONNX file of ``checkpoint``'s network in ``folder``, whether new).

    A file enters the cache only after it matched PyTorch (max |diff| <= 1e-4 on
    random clips, batch 3 where the export was traced with 2); a mismatch raises
    :class:`MarsError` and caches nothing.
    """
    path = folder / f"{Path(checkpoint).stem}-{checkpoint_key(checkpoint, meta)}.onnx"
    if path.is_file():
        return path, False
    folder.mkdir(parents=True, exist_ok=True)
    unchecked = folder / f".{path.stem}.{os.getpid()}.unchecked.onnx"
    try:
        export_model(model.cpu(), meta, unchecked, "onnx")
        diff = max_abs_difference(load_exported(unchecked), model, random_clips(meta, 3, seed=1))
        if not diff <= ATOL:
            raise MarsError(f"differs from PyTorch by {diff:.2e} > {ATOL:.0e}")
        os.replace(unchecked, path)
    finally:
        unchecked.unlink(missing_ok=True)
    return path, True


def checkpoint_key(checkpoint: str | Path, meta: CheckpointMeta) -> str:
    """16 hex digits naming the checkpoint's bytes, its architecture and the export."""
    digest = hashlib.sha256(f"{_KEY_VERSION} {meta.arch} {torch.__version__}\n".encode())
    with open(checkpoint, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:160] if text else repr(error)
