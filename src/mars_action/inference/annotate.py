"""Draw predictions onto frames and write annotated videos."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from mars_action.inference.prediction import Prediction, TopK
from mars_action.inference.preprocess import Preprocessing
from mars_action.video.decode import iter_frames
from mars_action.video.writer import write_video

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT_RGB = (255, 255, 255)


def draw_topk(frame: np.ndarray, topk: TopK, header: str | None = None) -> np.ndarray:
    """A copy of an RGB frame (H, W, 3) with ``header`` and the top-k in its top-left corner.

    The text sits on a darkened box so it stays readable on any footage; its size
    follows the frame's so small and large videos look alike.
    """
    out = np.ascontiguousarray(frame, dtype=np.uint8).copy()
    lines = ([header] if header else []) + [f"{p:4.0%} {label}" for label, p in topk]
    scale = max(0.35, min(out.shape[:2]) / 600)
    thickness = max(1, round(scale * 2))
    sizes = [cv2.getTextSize(text, _FONT, scale, thickness)[0] for text in lines]
    line_h = max(h for _, h in sizes) + max(4, round(8 * scale))
    pad = max(3, round(6 * scale))
    box_w = min(out.shape[1], max(w for w, _ in sizes) + 2 * pad)
    box_h = min(out.shape[0], line_h * len(lines) + pad)
    out[:box_h, :box_w] = (out[:box_h, :box_w] * 0.35).astype(np.uint8)
    for row, text in enumerate(lines, 1):
        origin = (pad, row * line_h)
        cv2.putText(out, text, origin, _FONT, scale, _TEXT_RGB, thickness, cv2.LINE_AA)
    return out


def annotate_video(
    path: str | Path,
    prediction: Prediction,
    out: str | Path,
    preprocessing: Preprocessing,
    topk: int = 5,
) -> Path:
    """Write ``path`` to ``out`` with the running top-k (clips so far) on every frame.

    Frames are decoded again at the checkpoint's fps and short side, so each frame
    is shown with the verdict of the clips up to the one it belongs to.
    """
    frames = iter_frames(path, fps=preprocessing.fps, short_side=preprocessing.short_side)
    return write_video(out, _annotated(frames, prediction, topk), fps=preprocessing.fps)


def _annotated(
    frames: Iterator[tuple[float, np.ndarray]], prediction: Prediction, topk: int
) -> Iterator[np.ndarray]:
    starts = [clip.start for clip in prediction.clips]
    for timestamp, frame in frames:
        index = max(0, bisect.bisect_right(starts, timestamp + 1e-6) - 1)
        header = f"{timestamp:6.2f} s  clip {index + 1}/{len(starts)}"
        yield draw_topk(frame, prediction.running_topk(index, topk), header)
