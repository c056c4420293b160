"""One interface for every flow method: frames in, flow between consecutive frames out.

``compute_flow(frames, method)`` takes (N, H, W, 3|1) uint8 frames and returns
(N-1, H, W, 2) float32 pixels, flow i from frame i to i + 1 (on grayscale), in
OpenCV's convention ``I0(x) ~ I1(x + u(x))``. Each method writes its own file
prefix in the frame store (``<prefix>x_00001.jpg``), so methods live side by side:

- ``tvl1`` -> ``TVL1jpg_``: OpenCV Dual TV-L1 with its defaults (the paper's);
- ``tvl1-torch`` -> ``TVL1Tjpg_`` (preset ``opencv-cpu``) or ``TVL1Cjpg_`` (preset
  ``opencv-cuda``, the authors' CUDA TV-L1): batched torch TV-L1 on CPU or GPU;
- ``farneback`` -> ``FARNjpg_``: OpenCV Farneback, the cheap baseline;
- ``mpeg`` -> ``MPEGjpg_``: codec motion vectors (MPEGFlow).

``tvl1-torch`` follows OpenCV's CPU algorithm step by step, rounding in OpenCV's
order. On the CPU its pyramid resize and cubic warp call OpenCV's own primitives, and
the result is bit-identical to ``tvl1`` on almost every pixel. On a GPU the torch
versions of those two primitives differ from OpenCV's in the last bits, and TV-L1
amplifies that (weak gradients, warps): ~0.05 px mean EPE on real frames, about as
much as ``tvl1`` differs from itself when its input moves by 1e-4 gray levels
(``mars flow-check`` measures both). Pass ``prefix="TVL1jpg_"`` to ``mars flow`` to
have the data loaders' default read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mars_action.flow import opencv
from mars_action.flow.mpeg import mpeg_flow
from mars_action.flow.tvl1_torch import tvl1_torch


@dataclass(frozen=True)
class FlowMethod:
    """A method's name, its frame-store prefix and a one-line description."""

    name: str
    prefix: str
    description: str


METHODS = {
    "tvl1": FlowMethod("tvl1", "TVL1jpg_", "OpenCV Dual TV-L1 with its defaults (the paper's)"),
    "tvl1-torch": FlowMethod("tvl1-torch", "TVL1Tjpg_", "batched torch TV-L1 (CPU or CUDA)"),
    "farneback": FlowMethod("farneback", "FARNjpg_", "OpenCV Farneback (cheap baseline)"),
    "mpeg": FlowMethod("mpeg", "MPEGjpg_", "codec motion vectors on an 8x8 grid (MPEGFlow)"),
}
PRESET_PREFIXES = {"opencv-cpu": "TVL1Tjpg_", "opencv-cuda": "TVL1Cjpg_"}


def default_prefix(method: str, preset: str = "opencv-cpu") -> str:
    """The frame-store file prefix a method (and tvl1-torch preset) writes by default."""
    check_method(method)
    return PRESET_PREFIXES[preset] if method == "tvl1-torch" else METHODS[method].prefix


def check_method(method: str) -> None:
    """Raise ValueError for an unknown method name."""
    if method not in METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose from {sorted(METHODS)}")


def compute_flow(
    frames: np.ndarray,
    method: str = "tvl1",
    *,
    device: str = "cpu",
    batch_size: int | None = None,
    preset: str = "opencv-cpu",
    compile: bool = False,
    fps: float = 25.0,
) -> np.ndarray:
    """Flow between consecutive frames: (N, H, W, 3|1) uint8 -> (N-1, H, W, 2) float32.

    Args:
        frames: RGB or grayscale frames of one video.
        method: ``tvl1``, ``tvl1-torch``, ``farneback`` or ``mpeg``.
        device: ``tvl1-torch`` only: ``cpu``, ``cuda``, ``cuda:1``...
        batch_size: ``tvl1-torch`` only: frame pairs solved together (None: 1 on CPU,
            16 on GPU).
        preset: ``tvl1-torch`` only: a key of ``tvl1_torch.PRESETS``.
        compile: ``tvl1-torch`` only: fuse its iteration with ``torch.compile``.
        fps: ``mpeg`` only: the frame rate the frames are encoded at (from frames, the
            vectors come from a libx264 encode without B-frames; for a video file use
            ``mpeg.mpeg_flow_video``, which reads the file's own vectors).
    """
    check_method(method)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, H, W, 3|1) uint8, got {frames.shape} {frames.dtype}")
    runners: dict[str, Callable[[], np.ndarray]] = {
        "tvl1": lambda: opencv.tvl1(frames),
        "farneback": lambda: opencv.farneback(frames),
        "tvl1-torch": lambda: tvl1_torch(frames, preset, device, batch_size, compile=compile),
        "mpeg": lambda: mpeg_flow(_rgb(frames), fps),
    }
    if len(frames) < 2:
        return np.zeros((0, *frames.shape[1:3], 2), np.float32)
    return runners[method]()


def _rgb(frames: np.ndarray) -> np.ndarray:
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames
