"""Writing videos with PyAV: synthetic datasets, annotated predictions, test fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    codec: str = "libx264",
    crf: int | None = 18,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB uint8 frames (H, W, 3) to ``path``; written to a temp name, then renamed.

    ``crf=0`` with libx264 is lossless in luma; odd sizes are fine for libx264 with
    yuv444p but yuv420p (the portable default) needs even sizes, so frames are
    padded by one pixel where needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    rate = Fraction(fps).limit_denominator(1001)
    opts = dict(options or {})
    if crf is not None and codec in ("libx264", "libx265"):
        opts.setdefault("crf", str(crf))
    with av.open(str(tmp), mode="w") as container:
        stream = None
        for frame in frames:
            frame = _even(np.ascontiguousarray(frame, dtype=np.uint8))
            if stream is None:
                stream = container.add_stream(codec, rate=rate, options=opts)
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"{path}: no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
