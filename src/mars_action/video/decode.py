"""Decoding videos with PyAV: threaded, resampled to a target fps by timestamp, resized.

Every video becomes RGB uint8 frames on a regular time grid (25 fps by default, as in
the paper), whatever its native rate (29.97, variable), rotation metadata or audio
tracks. Anything that cannot be read raises :class:`VideoError` with a one-line reason.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from mars_action.errors import MarsError
from mars_action.files import describe_os_error

T = TypeVar("T")
EPS = 1e-6  # seconds; absorbs float error of pts * time_base against the grid
SEEK_MARGIN = 1.0  # seconds before ``start`` to seek to, so the frame in use is decoded
SKIP_MARGIN_FRAMES = 2  # native frames before ``start`` always decoded (nearest-frame picks)


class VideoError(MarsError):
    """A video (or frame) that cannot be read; the message names the file and the reason."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns from the container and the first frame.

    ``width`` and ``height`` are the displayed size (after rotation); ``rotation`` is the
    counter-clockwise angle (0, 90, 180, 270) applied to stored frames to display them.
    """

    path: str
    fps: float
    duration: float
    width: int
    height: int
    rotation: int
    has_audio: bool
    num_frames: int  # at the native rate; an estimate when the container has no count
    codec: str


def probe(path: str | Path) -> VideoInfo:
    """Read a video's properties; decodes only its first frame (which also checks it)."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        first = next(_decode(container, stream, path, threads=1), None)
        if first is None:
            raise VideoError(f"{path}: no frame could be decoded")
        rotation = _rotation(first[2], stream)
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        duration = _duration(container, stream)
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            path=str(path),
            fps=fps,
            duration=duration,
            width=width,
            height=height,
            rotation=rotation,
            has_audio=bool(container.streams.audio),
            num_frames=stream.frames or max(1, round(duration * fps)),
            codec=stream.codec_context.name,
        )


def iter_frames(
    path: str | Path,
    fps: float | None = 25.0,
    short_side: int | None = 256,
    *,
    start: float = 0.0,
    end: float | None = None,
    threads: int = 0,
) -> Iterator[tuple[float, np.ndarray]]:
    """Decode ``path`` into ``(timestamp_s, frame)`` pairs, frame (H, W, 3) uint8 RGB.

    Args:
        path: any file FFmpeg reads.
        fps: output rate; each output time ``k / fps`` (from the stream's start) takes
            the decoded frame nearest in time. ``None`` keeps every native frame.
        short_side: resize so the shorter side has this length, keeping the aspect
            ratio; ``None`` keeps the size.
        start: first time (s, from the stream's start) to return; decoding seeks there.
        end: stop before this time (s); ``None`` decodes to the end.
        threads: decoder threads; 0 lets FFmpeg pick one per core.

    Raises:
        VideoError: missing, empty, unreadable, audio-only or truncated files.
    """
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        origin = _origin(stream)
        skip_until = None
        if start > 0:
            _seek(container, stream, start)
            # Frames this far before the window can never be the nearest to a grid time.
            skip_until = origin + start - SKIP_MARGIN_FRAMES / _native_rate(stream)
        timed = _decode(container, stream, path, threads, start <= 0 and end is None, skip_until)
        if fps is None:
            selected = _window(((ts, frame) for ts, _, frame in timed), origin, start, end)
        else:
            selected = resample(timed, fps, origin=origin, start=start, end=end)
        yield from _converted(selected, stream, short_side)


def decode_video(
    path: str | Path, fps: float | None = 25.0, short_side: int | None = 256, **kwargs
) -> np.ndarray:
    """All frames of :func:`iter_frames` as one array (T, H, W, 3) uint8."""
    frames = [frame for _, frame in iter_frames(path, fps, short_side, **kwargs)]
    if not frames:
        raise VideoError(f"{path}: no frames in the requested time range")
    return np.stack(frames)


def resample(
    timed: Iterable[tuple[float, float | None, T]],
    fps: float,
    origin: float = 0.0,
    start: float = 0.0,
    end: float | None = None,
) -> Iterator[tuple[float, T]]:
    """Pick, for each grid time ``origin + k / fps``, the item nearest in time.

    ``timed`` yields ``(time_s, duration_s or None, item)`` in presentation order; the
    last item covers up to its end (time + duration), so a 2 s clip gives ``2 * fps``
    outputs whatever its native rate. Items going back in time are dropped.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    step = 1.0 / fps
    k = max(0, math.ceil((start - EPS) * fps))
    prev = prev_time = gap = last_duration = None
    for time, duration, item in timed:
        time -= origin
        if prev is not None:
            if time <= prev_time:
                continue
            gap, boundary = time - prev_time, (prev_time + time) / 2
            while k * step < boundary - EPS:
                if end is not None and k * step >= end - EPS:
                    return
                yield origin + k * step, prev
                k += 1
        prev, prev_time, last_duration = item, time, duration
    if prev is None:
        return
    stop = prev_time + (last_duration or gap or step)
    if end is not None:
        stop = min(stop, end)
    while k * step < stop - EPS:
        yield origin + k * step, prev
        k += 1


def resize_short_side(frame: np.ndarray, short_side: int) -> np.ndarray:
    """Resize (H, W, C) so that min(H, W) == short_side, keeping the aspect ratio."""
    height, width = frame.shape[:2]
    size = resized_size(width, height, short_side)
    if size == (width, height):
        return frame
    down = short_side < min(height, width)
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if down else cv2.INTER_LINEAR)


def resized_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) after scaling the shorter side to ``short_side`` (long side rounded)."""
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def _open(path: Path):
    try:
        os.stat(path)
    except FileNotFoundError:
        raise VideoError(f"{path}: no such file") from None
    except OSError as error:  # a symbolic link loop, a folder not searchable...
        raise VideoError(describe_os_error(error, path)) from None
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise VideoError(f"{path}: permission denied")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.PermissionError:
        raise VideoError(f"{path}: permission denied") from None
    except av.error.InvalidDataError:
        raise VideoError(
            f"{path}: not a readable video (invalid data: truncated or not a video)"
        ) from None
    except av.FFmpegError as error:
        raise VideoError(f"{path}: cannot open ({error.strerror or error})") from None


def _video_stream(container, path: Path):
    # Cover art of audio files is a one-picture "video" stream: not a video.
    streams = [
        s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
    ]
    if not streams:
        audio = " (audio only)" if container.streams.audio else ""
        raise VideoError(f"{path}: no video stream{audio}")
    return streams[0]


def _seek(container, stream, start: float) -> None:
    # Seek to a keyframe before the wanted time; ``resample`` discards the frames before it.
    target = _origin(stream) + max(0.0, start - SEEK_MARGIN)
    container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)


def _decode(
    container,
    stream,
    path: Path,
    threads: int,
    check_complete: bool = False,
    skip_until: float | None = None,
):
    """Yield ``(time_s, duration_s or None, av.VideoFrame)``; VideoError on decoding errors.

    With ``check_complete`` (whole file decoded), fewer frames than the container lists
    means a truncated file. Packets shown before ``skip_until`` (s) are decoded only
    if other frames refer to them: the non-reference frames (most B-frames) between a
    seek's keyframe and a clip are skipped, not decoded (a third fewer frames with
    H.264's default settings), and never yielded.
    """
    stream.thread_type = "AUTO"
    context = stream.codec_context
    context.thread_count = threads
    skip_pts = None if skip_until is None else skip_until / stream.time_base
    rate = _native_rate(stream)
    count = 0
    try:
        for packet in container.demux(stream):
            if skip_pts is not None:
                early = packet.pts is not None and packet.pts < skip_pts
                context.skip_frame = "NONREF" if early else "DEFAULT"
            for frame in packet.decode():
                time = float(frame.pts * frame.time_base) if frame.pts is not None else count / rate
                duration = float(frame.duration * frame.time_base) if frame.duration else None
                count += 1
                yield time, duration, frame
    except av.FFmpegError as error:
        reason = error.strerror or error
        raise VideoError(
            f"{path}: damaged or truncated (decoding failed after {count} frames: {reason})"
        ) from None
    if count == 0:
        raise VideoError(f"{path}: no frame could be decoded")
    listed = stream.frames
    if check_complete and listed and count < listed - max(2, listed // 50):
        raise VideoError(f"{path}: truncated (decoded {count} of {listed} frames)")


def _native_rate(stream) -> float:
    return float(stream.average_rate or stream.guessed_rate or 25.0)


def _origin(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _window(timed: Iterable[tuple[float, T]], origin: float, start: float, end: float | None):
    for time, item in timed:
        if end is not None and time - origin >= end - EPS:
            return
        if time - origin >= start - EPS:
            yield time, item


def _duration(container, stream) -> float:
    if stream.duration is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _converted(selected, stream, short_side: int | None) -> Iterator[tuple[float, np.ndarray]]:
    """Turn the selected av frames into RGB arrays, converting a repeated frame once.

    One reformatter for the whole video: ``frame.to_ndarray(format=...)`` sets up a new
    swscale context for every frame, which costs ~4x the conversion itself.
    """
    reformatter = VideoReformatter()
    last_frame = last_array = rotation = None
    for time, frame in selected:
        if frame is not last_frame:
            rotation = _rotation(frame, stream) if rotation is None else rotation
            rgb = reformatter.reformat(frame, format="rgb24").to_ndarray()  # (H, W, 3)
            last_frame, last_array = frame, _finish(rgb, short_side, rotation)
        yield time, last_array


def _finish(image: np.ndarray, short_side: int | None, rotation: int) -> np.ndarray:
    if short_side is not None:
        image = resize_short_side(image, short_side)  # the short side is rotation-invariant
    if rotation:
        image = cv2.rotate(image, _CV2_ROTATE[rotation])
    return image


_CV2_ROTATE = {
    90: cv2.ROTATE_90_COUNTERCLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_CLOCKWISE,
}


def _rotation(frame, stream) -> int:
    """Counter-clockwise display rotation in {0, 90, 180, 270}.

    From the display matrix (``frame.rotation``, counter-clockwise) or, in older files,
    the stream's ``rotate`` tag (clockwise degrees).
    """
    degrees = frame.rotation
    if not degrees:
        try:
            degrees = -int(float(stream.metadata.get("rotate", 0)))
        except ValueError:
            degrees = 0
    return round(degrees / 90) * 90 % 360
