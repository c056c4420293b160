"""MPEGFlow: the codec's own motion vectors as a dense flow field (near-zero cost).

FFmpeg exports one vector per inter-coded block (``flags2=+export_mvs``): a block
of ``w x h`` pixels centred at ``dst`` in this frame is predicted from ``src = dst +
motion / motion_scale`` in a reference frame, the past (``source < 0``) or the
future (``source > 0``) one. As the paper (8 x 8 macroblocks), each block's
``dst - src`` is put on an 8 x 8 grid. FFmpeg does not say *which* past or future
frame: we take the nearest anchor (I/P frame) before or after in display order and
divide by the distance, so B-frames (reversed) and P-frames after B-frames
(two or more frames back) get per-frame magnitudes. Multi-reference P-frames can
still reach further back than that; ``reencode`` avoids all of it by re-encoding
with libx264 without B-frames and with a single reference first. Intra blocks are
filled from neighbouring cells, I-frames from the neighbouring frames.

Flow i is motion from frame i to i + 1 in pixels per frame, on the frame grid (the
fps and short side of the frame store), so it sits beside TV-L1 in the same units.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path

import av
import cv2
import numpy as np

from mars_action.video.decode import VideoError, iter_frames, resample, resized_size
from mars_action.video.writer import write_video

CELL = 8
NO_B_FRAMES = {"x264-params": "bframes=0:ref=1"}
_B = int(av.video.frame.PictureType.B)
_I = int(av.video.frame.PictureType.I)


def mpeg_flow(frames: np.ndarray, fps: float = 25.0) -> np.ndarray:
    """Flow of frames (N, H, W, 3) uint8: encode with libx264 (no B-frames), read the vectors.

    Returns (N-1, H, W, 2) float32. For a video file use :func:`iter_mpeg_flow`.
    """
    height, width = frames.shape[1:3]
    with tempfile.TemporaryDirectory(prefix="mars-mpeg-") as tmp:
        path = write_video(Path(tmp) / "frames.mp4", frames, fps=fps, options=NO_B_FRAMES)
        flow = [field[:height, :width] for field in iter_mpeg_flow(path, None, None)]
    return np.stack(flow) if flow else np.zeros((0, height, width, 2), np.float32)


def iter_mpeg_flow(
    path: str | Path,
    fps: float | None = 25.0,
    short_side: int | None = 256,
    reencode: bool = False,
) -> Iterator[np.ndarray]:
    """Dense motion-vector flow of a video, one (H, W, 2) float32 field per frame pair.

    The fields are on the frame grid ``iter_frames(path, fps, short_side)`` gives.

    Args:
        path: the video file.
        fps: frame rate of the grid (``None``: the native frames); vectors of skipped
            native frames are summed, repeated frames get zero flow.
        short_side: the frames' short side (``None``: native size); vectors are scaled.
        reencode: decode (at ``fps`` and ``short_side``) and re-encode with libx264
            without B-frames and with one reference first: exact reference distances,
            for the cost of an encode.

    Yields:
        Flow i from frame i to frame i + 1, in pixels of the output size.
    """
    if reencode:
        frames = (frame for _, frame in iter_frames(path, fps, short_side))
        first = next(frames, None)
        if first is None:
            raise VideoError(f"{path}: no frames")
        height, width = first.shape[:2]
        with tempfile.TemporaryDirectory(prefix="mars-mpeg-") as tmp:
            encoded = write_video(
                Path(tmp) / "frames.mp4", chain([first], frames), fps or 25.0, options=NO_B_FRAMES
            )
            for field in iter_mpeg_flow(encoded, None, None):
                yield field[:height, :width]  # the encoder pads odd sizes
        return
    with _open_with_vectors(path) as (container, stream):
        native = (stream.codec_context.height, stream.codec_context.width)
        size = native
        if short_side is not None:
            width, height = resized_size(native[1], native[0], short_side)
            size = (height, width)
        buffer: deque = deque()
        timed = _buffered(_fill_intra(_frame_fields(container, stream, path)), buffer)
        if fps is not None:
            selected = resample(timed, fps, origin=_start(stream))
        else:
            selected = ((time, item) for time, _, item in timed)
        previous = None
        for _, (index, _grid) in selected:
            if previous is not None:
                yield _to_pixels(_sum_between(buffer, previous, index), native, size)
            previous = index


@contextmanager
def _open_with_vectors(path: str | Path) -> Iterator:
    """The container and its video stream, with motion-vector export on."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise VideoError(f"{path}: cannot open ({error})") from None
    try:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        yield container, stream
    finally:
        container.close()


def _start(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _buffered(fields: Iterator, buffer: deque) -> Iterator:
    """Pass ``(time, duration, (index, grid))`` through, keeping every grid in ``buffer``."""
    for time, duration, (index, grid) in fields:
        buffer.append((index, grid))
        yield time, duration, (index, grid)


def _sum_between(buffer: deque, start: int, stop: int) -> np.ndarray | None:
    """Sum of the per-frame grids of native frames start+1..stop (None: no motion)."""
    while buffer and buffer[0][0] <= start:
        buffer.popleft()
    grids = [grid for index, grid in buffer if index <= stop and grid is not None]
    return np.sum(grids, axis=0) if grids else None


def _frame_fields(container, stream, path: Path) -> Iterator:
    """``(time, duration, (index, grid or None))`` per decoded frame in display order.

    grid (gh, gw, 2): motion from the previous frame to this one, px per frame; None
    for I-frames. Frames wait for the next anchor so B-frames know their future reference.
    """
    shape = (-(-stream.codec_context.height // CELL), -(-stream.codec_context.width // CELL))
    pending: list = []  # frames since the last anchor: (time, duration, index, type, vectors)
    anchor = None
    try:
        for index, frame in enumerate(container.decode(stream)):
            if index == 0 and frame.rotation:
                raise VideoError(f"{path}: rotated video; use the re-encode option")
            duration = float(frame.duration * frame.time_base) if frame.duration else None
            vectors = frame.side_data.get("MOTION_VECTORS")
            vectors = vectors.to_ndarray() if vectors is not None else None
            kind = int(frame.pict_type)
            pending.append((frame.time, duration, index, kind, vectors))
            if kind != _B:
                yield from _resolve(pending, anchor, index, shape)
                anchor, pending = index, []
    except av.FFmpegError as error:
        raise VideoError(f"{path}: damaged or truncated ({error})") from None
    yield from _resolve(pending, anchor, None, shape)


def _resolve(pending: list, past: int | None, future: int | None, shape) -> Iterator:
    """Grids of the frames up to an anchor, now that both references are known."""
    for time, duration, index, kind, vectors in pending:
        usable = kind != _I and vectors is not None and len(vectors) > 0
        grid = _grid(vectors, index, past, future, shape) if usable else None
        yield time if time is not None else 0.0, duration, (index, grid)


def _fill_intra(fields: Iterator) -> Iterator:
    """Give frames without vectors (I-frames) the mean grid of the frames before and after."""
    held, before = None, None
    for item in fields:
        time, duration, (index, grid) = item
        if held is not None:
            neighbours = [g for g in (before, grid) if g is not None]
            h_time, h_duration, (h_index, _) = held
            filled = np.mean(neighbours, axis=0) if neighbours else None
            yield h_time, h_duration, (h_index, filled)
            before, held = filled if filled is not None else before, None
        if grid is None:
            held = item
            continue
        before = grid
        yield item
    if held is not None:
        yield held[0], held[1], (held[2][0], before)


def _grid(vectors: np.ndarray, index: int, past, future, shape) -> np.ndarray:
    """Average per-frame forward motion of the blocks covering each 8 x 8 cell."""
    past = index - 1 if past is None else past
    future = index + 1 if future is None else future
    reference = np.where(vectors["source"] < 0, past, future)
    distance = (index - reference).astype(np.float32)  # > 0 past, < 0 future
    scale = vectors["motion_scale"].astype(np.float32)
    motion = np.stack([vectors["motion_x"], vectors["motion_y"]], -1) / scale[:, None]
    forward = -motion / distance[:, None]  # dst - src, per frame, forward in time
    sums = np.zeros((*shape, 2), np.float64)
    counts = np.zeros(shape, np.float64)
    left = (vectors["dst_x"] - vectors["w"] // 2) // CELL
    top = (vectors["dst_y"] - vectors["h"] // 2) // CELL
    span_x, span_y = np.maximum(1, vectors["w"] // CELL), np.maximum(1, vectors["h"] // CELL)
    for oy in range(int(span_y.max(initial=1))):
        for ox in range(int(span_x.max(initial=1))):
            keep = (ox < span_x) & (oy < span_y)
            rows = np.clip(top[keep] + oy, 0, shape[0] - 1)
            cols = np.clip(left[keep] + ox, 0, shape[1] - 1)
            np.add.at(sums, (rows, cols), forward[keep])
            np.add.at(counts, (rows, cols), 1.0)
    return _fill_holes(sums, counts)


def _fill_holes(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean vector per cell; cells without a vector (intra blocks) take their neighbours' mean."""
    field = sums / np.maximum(counts, 1)[..., None]
    valid = (counts > 0).astype(np.float64)
    near = cv2.blur(field * valid[..., None], (3, 3), borderType=cv2.BORDER_CONSTANT)
    weight = cv2.blur(valid, (3, 3), borderType=cv2.BORDER_CONSTANT)
    filled = np.where(weight[..., None] > 0, near / np.maximum(weight, 1e-9)[..., None], 0.0)
    return np.where(valid[..., None] > 0, field, filled).astype(np.float32)


def _to_pixels(
    grid: np.ndarray | None, native: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """8 x 8 cell grid (native px) -> (H, W, 2) field at ``size``, vectors scaled with it."""
    if grid is None:  # a repeated frame (grid fps above the native rate), or no vectors at all
        return np.zeros((*size, 2), np.float32)
    dense = np.repeat(np.repeat(grid, CELL, axis=0), CELL, axis=1)[: native[0], : native[1]]
    if dense.shape[:2] == tuple(size):
        return dense
    dense = cv2.resize(dense, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return dense * np.array([size[1] / native[1], size[0] / native[0]], np.float32)
