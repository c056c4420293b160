"""Live recognition: a sliding window over the newest frames, scored every few frames.

Frames come from a background reader. For a file the reader waits for the network,
so every frame is seen; for a camera or a network stream it drops the oldest
frames instead, so the verdict follows the present rather than falling behind.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np

from mars_action.inference.prediction import TopK, topk_from_logits
from mars_action.inference.preprocess import ClipAssembler
from mars_action.inference.recognizer import Recognizer
from mars_action.video.decode import VideoError, iter_frames, resample, resize_short_side

# How FFmpeg names a local camera per platform (an index N becomes the device).
_CAMERA = {"linux": ("/dev/video{}", "v4l2"), "darwin": ("{}", "avfoundation")}


@dataclasses.dataclass
class WindowPrediction:
    """The verdict on the last ``num_frames`` frames, ending at ``end`` seconds.

    ``latency`` is the wall time to score the window once its last frame is in
    (clip assembly and the network); ``looped`` marks a stream that ended before
    filling one clip.
    """

    start: float
    end: float
    num_frames: int
    topk: TopK
    latency: float
    looped: bool = False

    def format_line(self) -> str:
        """One line per window for ``mars stream``: time span, top-k, latency, and a
        note when the stream was shorter than one clip (its frames looped)."""
        labels = "  ".join(f"{label} {p:.3f}" for label, p in self.topk)
        note = "  (looped: fewer frames than one clip)" if self.looped else ""
        return (
            f"[{self.start:8.2f} - {self.end:8.2f} s]  {labels}  "
            f"latency {self.latency * 1000:.0f} ms{note}"
        )


@dataclasses.dataclass
class StreamFrame:
    """One frame of the stream and, when a window was scored on it, that verdict."""

    timestamp: float
    frame: np.ndarray | None  # None on the verdict given after a short stream ended
    window: WindowPrediction | None


def stream_windows(
    recognizer: Recognizer,
    frames: Iterable[tuple[float, np.ndarray]],
    window: int,
    every: int,
    topk: int = 5,
) -> Iterator[StreamFrame]:
    """Score the last ``window`` frames once the window is full, then every ``every`` frames.

    A stream that ends before the window fills is scored once on what it had, so a
    short stream still gets a verdict.
    """
    if window < 1 or every < 1:
        raise ValueError(f"window ({window}) and every ({every}) must be >= 1")
    recent: deque[tuple[float, np.ndarray]] = deque(maxlen=window)
    since = every
    scored = False
    for timestamp, frame in frames:
        recent.append((timestamp, recognizer.preprocessing.crop_frame(frame)))
        since += 1
        result = None
        if len(recent) == window and since >= every:
            result = score_window(recognizer, recent, topk)
            since, scored = 0, True
        yield StreamFrame(timestamp, frame, result)
    if recent and not scored:
        yield StreamFrame(recent[-1][0], None, score_window(recognizer, recent, topk))


def score_window(
    recognizer: Recognizer, recent: Iterable[tuple[float, np.ndarray]], topk: int
) -> WindowPrediction:
    """The newest whole clips of the window (looped if it is short), logits averaged."""
    started = time.perf_counter()
    pre = recognizer.preprocessing
    assembler = ClipAssembler(pre.clip_len, pre.fps)
    recent = list(recent)
    if len(recent) >= pre.clip_len:  # whole clips ending at the newest frame
        recent = recent[len(recent) % pre.clip_len :]
    clips = [clip for ts, crop in recent if (clip := assembler.add(ts, crop)) is not None]
    tail = assembler.finish()
    clips += [tail] if tail is not None else []
    logits = recognizer.score_clips(np.stack([clip.frames for clip in clips]))  # (K, classes)
    labels, _ = topk_from_logits(logits.mean(axis=0), recognizer.class_names, topk)
    return WindowPrediction(
        start=clips[0].start,
        end=clips[-1].end,
        num_frames=assembler.num_frames,
        topk=labels,
        latency=time.perf_counter() - started,
        looped=assembler.looped,
    )


def open_source(
    source: str, fps: float, short_side: int
) -> tuple[Iterator[tuple[float, np.ndarray]], bool]:
    """Timed frames of a file, a camera index (``0``) or a URL, and whether it is live.

    Files go through the video stage's decoder; live sources are opened here
    because the decoder reads files only, then resampled and resized with its
    helpers so both kinds of source give the same frames.
    """
    if not source.isdigit() and "://" not in source:
        return iter_frames(Path(source), fps=fps, short_side=short_side), False
    return _live_frames(source, fps, short_side), True


def _live_frames(source: str, fps: float, short_side: int) -> Iterator[tuple[float, np.ndarray]]:
    url, fmt, name = source, None, source
    if source.isdigit():
        if sys.platform not in _CAMERA:
            raise VideoError(f"camera {source}: camera indices work on Linux and macOS only")
        pattern, fmt = _CAMERA[sys.platform]
        url = pattern.format(source)
        name = f"camera {source} ({url})"
    try:
        container = av.open(url, format=fmt, timeout=10.0)
    except av.FFmpegError as error:
        raise VideoError(f"{name}: cannot open ({error.strerror or error})") from None
    with container:
        if not container.streams.video:
            raise VideoError(f"{name}: no video stream")
        stream = container.streams.video[0]
        origin = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        for timestamp, frame in resample(_timed(container, stream, name), fps, origin=origin):
            image = resize_short_side(frame.to_ndarray(format="rgb24"), short_side)
            yield timestamp - origin, image


def _timed(container, stream, name: str) -> Iterator[tuple[float, None, av.VideoFrame]]:
    count = 0
    try:
        for frame in container.decode(stream):
            count += 1
            seconds = frame.pts * frame.time_base if frame.pts is not None else count / 30.0
            yield float(seconds), None, frame
    except av.FFmpegError as error:
        raise VideoError(
            f"{name}: cut off after {count} frames ({error.strerror or error})"
        ) from None
