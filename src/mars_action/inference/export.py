"""Export a checkpoint to TorchScript or ONNX, with a dynamic batch axis, and check it.

Both files carry the checkpoint's meta as JSON (class names, clip length, crop,
fps, normalisation) so a deployment needs nothing else. ONNX goes through the
``torch.export`` (dynamo) exporter, the maintained path in PyTorch 2.9+, and is
checked against PyTorch with ONNX Runtime on the CPU. Nothing here uses a network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mars_action.errors import MarsError
from mars_action.files import temp_beside
from mars_action.models.checkpoint import CheckpointMeta

FORMATS = ("torchscript", "onnx")
META_KEY = "mars_action.meta"
INPUT_NAME, OUTPUT_NAME = "clips", "logits"
_SUFFIX = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}


def default_output(checkpoint: str | Path, fmt: str) -> Path:
    """``runs/x/best.pt`` -> ``runs/x/best.onnx`` (or ``best.torchscript.pt``)."""
    path = Path(checkpoint)
    return path.with_name(path.stem + _SUFFIX[fmt])


def failed_output(out: str | Path) -> Path:
    """Where an export that has not passed its check lives: ``best.onnx`` -> ``best.failed.onnx``.

    Never the requested name, so nothing loads an unverified file by mistake.
    """
    out = Path(out)
    suffix = next((s for s in _SUFFIX.values() if out.name.endswith(s)), out.suffix)
    base = out.name[: len(out.name) - len(suffix)] if suffix else out.name
    return out.with_name(f"{base}.failed{suffix}")


def random_clips(meta: CheckpointMeta, batch: int, seed: int = 0) -> torch.Tensor:
    """(B, C, T, S, S) normalised clips of uniform 0-255 pixels (or flow codes)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, meta.in_channels, meta.clip_len, meta.crop_size, meta.crop_size)
    raw = torch.rand(shape, generator=generator) * 255.0
    mean = torch.tensor(meta.mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(meta.std).view(1, -1, 1, 1, 1)
    return (raw - mean) / std


def export_model(model: nn.Module, meta: CheckpointMeta, out: str | Path, fmt: str) -> Path:
    """Write ``model`` (eval mode) as ``fmt``; the file appears only once complete."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {FORMATS}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(out)
    example = random_clips(meta, batch=2)
    meta_json = json.dumps(dataclasses.asdict(meta))
    model = model.eval()
    try:
        if fmt == "torchscript":
            _save_torchscript(model, example, meta_json, tmp)
        else:
            _save_onnx(model, example, meta_json, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _save_torchscript(model: nn.Module, example: torch.Tensor, meta_json: str, path: Path):
    with _jit_allowed(), torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={"meta.json": meta_json})


@contextlib.contextmanager
def _jit_allowed() -> Iterator[None]:
    """Silence torch.jit's deprecation warnings.

    torch.jit is deprecated in favour of torch.export, but TorchScript is still what
    libtorch (C++) and older runtimes load, and tracing is exact for this graph.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        yield


def _save_onnx(model: nn.Module, example: torch.Tensor, meta_json: str, path: Path):
    batch = torch.export.Dim("batch", min=1)
    with _quiet_onnx_exporter():
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    program.model.metadata_props[META_KEY] = meta_json
    program.save(str(path), external_data=False)


@contextlib.contextmanager
def _quiet_onnx_exporter() -> Iterator[None]:
    """Hide the exporter's progress lines and its notes about torchvision ops."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
    finally:
        logger.setLevel(level)


def is_exported(path: str | Path) -> bool:
    """Whether ``path`` names a file :func:`export_model` writes (by its suffix)."""
    return any(str(path).endswith(suffix) for suffix in _SUFFIX.values())


def read_exported_meta(path: str | Path) -> CheckpointMeta:
    """The checkpoint meta stored in an exported file (either format)."""
    path = Path(path)
    try:
        if path.suffix == ".onnx":
            import onnx

            proto = onnx.load(str(path), load_external_data=False)
            meta_json = {p.key: p.value for p in proto.metadata_props}[META_KEY]
        else:
            files = {"meta.json": ""}
            with _jit_allowed():
                torch.jit.load(str(path), map_location="cpu", _extra_files=files)
            meta_json = files["meta.json"]
        return CheckpointMeta.from_dict(json.loads(meta_json))
    except Exception as error:  # noqa: BLE001  (onnx / torch.jit raise many types)
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else repr(error)
        raise MarsError(
            f"{path}: not a model exported by mars export, or unreadable ({reason})"
        ) from None


def load_exported(
    path: str | Path, device: str | torch.device = "cpu"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function clips (B, C, T, S, S) -> logits (B, classes) running an exported file.

    ONNX runs in ONNX Runtime (its CUDA provider when ``device`` is CUDA and the
    installed package has it), TorchScript in libtorch on ``device``. The session
    is made once, so repeated calls measure inference alone.
    """
    path, device = Path(path), torch.device(device)
    if path.suffix != ".onnx":
        with _jit_allowed():
            module = torch.jit.load(str(path), map_location=device)

        def run_torchscript(clips: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return module(clips.to(device))

        return run_torchscript
    import onnxruntime

    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = onnxruntime.SessionOptions()
    # Idle ORT threads would otherwise spin, taking the cores the decoder needs;
    # denormal floats are flushed to zero, as ``mars predict`` does in PyTorch.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    session = onnxruntime.InferenceSession(str(path), options, providers=providers)

    def run_onnx(clips: torch.Tensor) -> torch.Tensor:
        feed = {INPUT_NAME: clips.detach().cpu().numpy()}
        return torch.from_numpy(session.run([OUTPUT_NAME], feed)[0])

    return run_onnx


def check_close(
    exported: Callable[[torch.Tensor], torch.Tensor],
    model: nn.Module,
    clips: torch.Tensor,
    atol: float,
    rtol: float,
) -> tuple[float, float]:
    """(max |exported - PyTorch|, worst ratio of a difference to ``atol + rtol * |PyTorch|``).

    The check passes when the ratio is at most 1: the tolerance scales with the
    logits, so a model with large outputs is not failed for float rounding alone.
    """
    with torch.inference_mode():
        reference = model.eval().cpu()(clips.cpu()).numpy()
        logits = exported(clips).cpu().numpy()
    if logits.shape != reference.shape:
        raise RuntimeError(f"exported output shape {logits.shape}, expected {reference.shape}")
    difference = np.abs(logits - reference)
    allowed = atol + rtol * np.abs(reference)
    ratio = float((difference / np.maximum(allowed, 1e-30)).max())
    return float(difference.max()), ratio


def max_abs_difference(
    exported: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, clips: torch.Tensor
) -> float:
    """Largest |exported - PyTorch| over the logits of ``clips`` (B, C, T, S, S), on the CPU.

    ``exported`` comes from :func:`load_exported`; a wrong output shape (a batch
    axis that did not stay dynamic) raises.
    """
    with torch.inference_mode():
        reference = model.eval().cpu()(clips.cpu()).numpy()
        logits = exported(clips).cpu().numpy()
    if logits.shape != reference.shape:
        raise RuntimeError(f"exported output shape {logits.shape}, expected {reference.shape}")
    return float(np.abs(logits - reference).max())
