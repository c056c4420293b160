"""The released code's frame extraction, reproduced in-process with PyAV.

The authors extracted frames with ``ffmpeg -i V -r 25 -q:v 2 -vf scale=-1:256
%05d.jpg`` (``scale=256:-1`` when the video is taller than wide). Their checkpoints
saw those exact frames, so this module repeats each step of that command:

1. **Frame selection** (:func:`cfr_select`): ``-r 25`` as an *output* option is not
   the ``fps`` filter. The ``ffmpeg`` program's constant-frame-rate sync (vsync
   ``cfr``, or ``vscfr`` when the file holds a video stream only) drops or repeats
   each decoded frame by where its timestamp falls on the 1/25 s output grid, with
   its own thresholds (1.1 frames, a 0.6 frame margin for repeats of the previous
   frame). Reproduced from those rules: on 29.97 fps clips it keeps frames
   0..11, 13..17, 19.. exactly as the command does.
2. **Resize and colour** (:class:`ReleasedScaler`): the ``scale`` filter (bicubic,
   FFmpeg's default) turns limited-range YUV 4:2:0 into the full-range ``yuvj420p``
   the MJPEG encoder takes. The resize runs in PyAV's filter graph; the range
   expansion is done here with the fixed-point coefficients of FFmpeg up to 6.x
   (the authors' and Debian 12's ``ffmpeg``), because newer libswscale (PyAV's)
   rounds chroma half a level lower, about 1 grey level after decoding.
3. **JPEG** (:func:`new_encoder`): FFmpeg's MJPEG encoder at ``qscale 2`` with
   optimal Huffman tables, as ``-q:v 2``: its bytes decode to the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av
import numpy as np

from mars_action.video.decode import VideoError, _decode, _open, _rotation, _video_stream

T = TypeVar("T")
OUTPUT_RATE = 25
SHORT_SIDE = 256
QSCALE = 2
FF_QP2LAMBDA = 118  # libavcodec: lambda of one quantizer step
# ffmpeg's sync works on timestamps with this many extra bits, nudged off exact halves.
_EXTRA_BITS = 16
_NUDGE = 1.0 / (1 << 17)
# Display rotation (counter-clockwise degrees) -> the filters ffmpeg's autorotate adds.
_AUTOROTATE = {90: [("transpose", "cclock")], 180: [("hflip", ""), ("vflip", "")],
               270: [("transpose", "clock")]}  # fmt: skip


def scale_args(width: int, height: int, short_side: int = SHORT_SIDE) -> str:
    """The released ``scale`` filter's size: ``-1:256``, or ``256:-1`` for portrait video."""
    return f"{short_side}:-1" if height > width else f"-1:{short_side}"


def output_time(pts: int, time_base: Fraction, rate: int = OUTPUT_RATE) -> float:
    """A frame's time in output frames, rounded as ``ffmpeg`` does before its sync.

    Rescaled (to nearest, halves away from zero) to ``1 / (rate * 2**16)`` and then
    nudged by 2**-17 away from zero, so no time sits on a rounding boundary.
    """
    exact = Fraction(pts) * time_base * rate * (1 << _EXTRA_BITS)
    ticks = math.floor(abs(exact) + Fraction(1, 2)) * (1 if exact >= 0 else -1)
    value = ticks / (1 << _EXTRA_BITS)
    return value + math.copysign(_NUDGE, value) if value else value


def frame_duration(native_rate: float | None, rate: int = OUTPUT_RATE) -> float:
    """A decoded frame's length in output frames: ``rate / native``, at most one frame."""
    if not native_rate:
        return 0.0
    return min(rate / native_rate, 1.0)


def cfr_select(timed: Iterable[tuple[float, T]], duration: float, video_only: bool) -> Iterator[T]:
    """Repeat or drop items as ``ffmpeg``'s constant-frame-rate output sync does.

    Args:
        timed: ``(time in output frames (see :func:`output_time`), item)`` in
            decoding order.
        duration: each item's length in output frames (:func:`frame_duration`).
        video_only: the input file holds one stream (``ffmpeg`` then uses
            ``vscfr``: a late first frame starts the output instead of being repeated
            back to time 0).

    Yields:
        The items of the output frames, in order (an item may come several times,
        a dropped one never).
    """
    next_out = 0  # the next output frame's index (ffmpeg's sync_opts)
    made = 0
    previous = None
    recent_repeats = [0, 0, 0]  # previous-frame repeats of the last three inputs
    for time, item in timed:
        length = duration
        delta0 = time - next_out  # drift of this frame against the output grid
        delta = delta0 + length
        if delta0 < 0 < delta:  # starts before its slot but reaches into it
            time, length, delta0 = next_out, length + delta0, 0.0
        if video_only and made == 0 and delta0 >= 0.5:
            delta, delta0 = length, 0.0
            next_out = _round_half_away(time)
        count, repeats = 1, 0
        if delta < -1.1:
            count = 0
        elif delta > 1.1:
            count = _round_half_away(delta)
            if delta0 > 1.1:
                repeats = _round_half_away(delta0 - 0.6)
        repeats = min(repeats, count)
        recent_repeats = [repeats, *recent_repeats[:2]]
        for k in range(count):
            yield previous if k < repeats and previous is not None else item
            next_out += 1
            made += 1
        previous = item
    # At the end ffmpeg repeats the last frame as often as the median recent repeat.
    if previous is not None:
        for _ in range(sorted(recent_repeats)[1]):
            yield previous


def _round_half_away(value: float) -> int:
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


class ReleasedScaler:
    """Resize one video's frames into full-range ``yuvj420p`` as FFmpeg 5's ``scale`` does.

    Two filter graphs resize each frame (same bicubic filter, same size). Luma comes
    from the direct full-range output, which matches FFmpeg 5 to 1/100 of a level;
    chroma from a 16-bit limited-range output (bit-exact with FFmpeg 5 before its
    last rounding) expanded by :func:`to_full_range`, since newer libswscale rounds
    full-range chroma half a level lower.
    """

    def __init__(self, stream, first_frame, short_side: int = SHORT_SIDE, threads: int = 0):
        rotation = _rotation(first_frame, stream)
        width, height = first_frame.width, first_frame.height
        if rotation in (90, 270):
            width, height = height, width
        rotate, size = _AUTOROTATE.get(rotation, []), scale_args(width, height, short_side)
        full = [*rotate, ("scale", f"{size}:out_range=pc"), ("format", "pix_fmts=yuv420p")]
        self.full = _graph(stream, full, threads)
        deep = [*rotate, ("scale", size), ("format", "pix_fmts=yuv420p16le")]
        self.deep = _graph(stream, deep, threads)
        self.chroma_table = to_full_range(np.arange(1 << 16, dtype=np.uint16), luma=False)

    def __call__(self, frame) -> av.VideoFrame:
        """The resized full-range 4:2:0 frame (``yuvj420p``) of one decoded frame."""
        self.full.push(frame)
        self.deep.push(frame)
        out, deep = self.full.pull(), self.deep.pull()
        for plane, source in zip(out.planes[1:], deep.planes[1:], strict=True):
            height, width = plane.height, plane.width
            chroma = np.frombuffer(source, np.uint16).reshape(-1, source.line_size // 2)
            target = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
            target[:height, :width] = self.chroma_table[chroma[:height, :width]]
        return out


def _graph(stream, chain: list[tuple[str, str]], threads: int = 0) -> av.filter.Graph:
    graph = av.filter.Graph()
    graph.threads = threads  # 0: FFmpeg's choice; a one-thread worker wants 1 (no slice threads)
    last = graph.add_buffer(template=stream)
    for name, args in chain:
        node = graph.add(name, args)
        last.link_to(node)
        last = node
    last.link_to(graph.add("buffersink"))
    graph.configure()
    return graph


def to_full_range(plane16: np.ndarray, luma: bool) -> np.ndarray:
    """Limited-range 16-bit plane -> full-range 8-bit, with FFmpeg 5's arithmetic.

    FFmpeg 5 expands the range on 15-bit intermediates (``lumRangeToJpeg``: clip at
    30189, x 19077 / 2**14 - 2384; ``chrRangeToJpeg``: clip at 30775, x 4663 / 2**12
    - 2268) and rounds to 8 bits at the end; halving the 16-bit plane gives those
    intermediates at full precision.
    """
    value = plane16.astype(np.float32) * 0.5
    if luma:
        value = (np.minimum(value, 30189) * 19077 - 39057361) / 16384
    else:
        value = (np.minimum(value, 30775) * 4663 - 9289992) / 4096
    return np.clip(np.floor(value / 128 + 0.5), 0, 255).astype(np.uint8)


def new_encoder(width: int, height: int, qscale: int = QSCALE) -> av.CodecContext:
    """FFmpeg's MJPEG encoder set up as ``ffmpeg -q:v <qscale>`` sets it.

    One thread: slice threads would add restart markers the command's files do not have.
    """
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.thread_count = 1
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuv420p"  # full range: FFmpeg's yuvj420p without the deprecated name
    encoder.color_range = 2  # AVCOL_RANGE_JPEG
    encoder.time_base = Fraction(1, OUTPUT_RATE)
    encoder.flags |= av.codec.context.Flags.qscale
    encoder.qmin = encoder.qmax = qscale
    encoder.options = {"global_quality": str(qscale * FF_QP2LAMBDA), "huffman": "optimal"}
    return encoder


def iter_released_jpegs(path: str | Path, threads: int = 0) -> Iterator[bytes]:
    """JPEG bytes of every frame ``ffmpeg -r 25 -q:v 2 -vf scale=...`` writes for ``path``.

    Only selected frames are resized and encoded; a repeated frame reuses its bytes.

    Raises:
        VideoError: the file cannot be read (see :mod:`mars_action.video.decode`).
    """
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        frames = (frame for _, frame in _timed_frames(container, stream, path, threads))
        yield from _encoded(frames, stream, path, threads)


def released_indices(path: str | Path) -> list[int]:
    """Which decoded frame (0-based, decoding order) each output frame of the command is.

    What :func:`iter_released_jpegs` selects, without resizing or encoding: the
    check of frame selection against the ``ffmpeg`` command.
    """
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        return list(_timed_frames(container, stream, path, threads=0, index_only=True))


def _timed_frames(container, stream, path: Path, threads: int, index_only: bool = False):
    """The selected ``(index, frame)`` pairs (or indices) of ``cfr_select`` for one file."""
    start = Fraction(container.start_time or 0, av.time_base)  # ffmpeg's input offset
    decoded = _decode(container, stream, path, threads, check_complete=True)
    timed = (
        (output_time(frame.pts - round(start / frame.time_base), frame.time_base), (k, frame))
        for k, (_, _, frame) in enumerate(decoded)
        if frame.pts is not None
    )
    native = float(stream.guessed_rate or stream.average_rate or 0)
    for index, frame in cfr_select(timed, frame_duration(native), len(container.streams) == 1):
        yield index if index_only else (index, frame)


def _encoded(selected: Iterable, stream, path: Path, threads: int = 0) -> Iterator[bytes]:
    scaler = encoder = None
    last_frame = last_bytes = None
    count = 0
    for frame in selected:
        if frame is not last_frame:
            if scaler is None:
                scaler = ReleasedScaler(stream, frame, threads=threads)
            full = scaler(frame)
            if encoder is None:
                encoder = new_encoder(full.width, full.height)
            full.pts, full.time_base = count, encoder.time_base
            last_frame, last_bytes = frame, b"".join(bytes(p) for p in encoder.encode(full))
        count += 1
        yield last_bytes
    if count == 0:
        raise VideoError(f"{path}: no frame falls on the 25 fps output grid")
