"""The frame store on disk, in the released code's layout so its users can reuse their data.

Layout::

    <root>/<class>/<video>/00001.jpg 00002.jpg ...            RGB frames (1-based names)
    <root>/<class>/<video>/TVL1jpg_x_00001.jpg ...            flow x, frame i -> i+1
    <root>/<class>/<video>/TVL1jpg_y_00001.jpg ...            flow y (N-1 per video)
    <root>/<class>/<video>/done                               {"frames": N}, written last
    <root>/<class>/<video>/TVL1jpg_done                       {"pairs": N-1, "method": ...}

Readers take 0-based indices (index ``i`` is file ``i + 1``). Writers never leave
something that looks complete: images go to a hidden temporary folder (one per
process and call) first, one writer per video holds its claim, and the marker,
recording what was written, comes only after every image is in place. Old empty
markers still count as done.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mars_action.files import write_atomic
from mars_action.video.claim import claim, temp_name
from mars_action.video.decode import VideoError

DEFAULT_QUALITY = 95  # close to ffmpeg -q:v 2, the released code's setting
DONE = "done"
FLOW_PREFIX = "TVL1jpg_"
RGB_NAME = re.compile(r"^\d{5,}\.jpg$")
REDUCTIONS = (1, 2, 4, 8)  # JPEG decoding scales (libjpeg DCT scaling) offered by OpenCV
Window = tuple[int, int, int, int]  # (top, left, height, width) in full-size pixels


def rgb_name(index: int) -> str:
    """File name of the 0-based RGB frame ``index`` (``0 -> 00001.jpg``)."""
    return f"{index + 1:05d}.jpg"


def flow_names(index: int, prefix: str = FLOW_PREFIX) -> tuple[str, str]:
    """File names (x, y) of the 0-based flow field ``index`` (frame ``index -> index + 1``)."""
    return f"{prefix}x_{index + 1:05d}.jpg", f"{prefix}y_{index + 1:05d}.jpg"


def frame_count(video_dir: str | Path) -> int:
    """Number of RGB frames (``NNNNN.jpg`` files) in ``video_dir``; 0 if it does not exist."""
    return _count(video_dir, RGB_NAME)


def flow_count(video_dir: str | Path, prefix: str = FLOW_PREFIX) -> int:
    """Number of flow fields with ``prefix`` (counts the x files) in ``video_dir``."""
    return _count(video_dir, re.compile(rf"^{re.escape(prefix)}x_\d{{5,}}\.jpg$"))


def _count(video_dir: str | Path, pattern: re.Pattern) -> int:
    try:
        with os.scandir(video_dir) as entries:
            return sum(1 for entry in entries if pattern.match(entry.name))
    except (FileNotFoundError, NotADirectoryError):
        return 0


def read_rgb(
    video_dir: str | Path,
    indices: Sequence[int],
    window: Window | None = None,
    reduction: int = 1,
) -> np.ndarray:
    """Read RGB frames by 0-based index: (N, H, W, 3) uint8.

    Args:
        video_dir: the video's folder.
        indices: 0-based frame indices.
        window: ``(top, left, height, width)`` in full-size pixels: only that part
            of each frame is kept, copied straight into the output (a training crop
            never stacks whole frames).
        reduction: 1, 2, 4 or 8: decode at ``1 / reduction`` of the size with
            libjpeg's DCT scaling, which skips most of the decoding work (about half
            the time at 2); the window is scaled down with it (coordinates floored).
    """
    paths = [[os.path.join(video_dir, rgb_name(i))] for i in indices]
    return _read_frames(paths, _color_flags(reduction), 3, window, reduction, video_dir)


def read_flow(
    video_dir: str | Path,
    indices: Sequence[int],
    prefix: str = FLOW_PREFIX,
    window: Window | None = None,
    reduction: int = 1,
) -> np.ndarray:
    """Read quantized flow fields by 0-based index: (N, H, W, 2) uint8 codes (x, y).

    ``window`` and ``reduction`` as for :func:`read_rgb`; both apply to x and y alike.
    """
    paths = [[os.path.join(video_dir, name) for name in flow_names(i, prefix)] for i in indices]
    return _read_frames(paths, gray_flags(reduction), 2, window, reduction, video_dir)


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of one JPEG frame (decoded in grayscale, the cheapest full-size way)."""
    return _read_jpeg(str(path), cv2.IMREAD_GRAYSCALE).shape[:2]


def _color_flags(reduction: int) -> int:
    # IMREAD_REDUCED_COLOR_n is BGR; its reduction bits with the RGB flag give RGB.
    return gray_flags(reduction) | cv2.IMREAD_COLOR_RGB


def gray_flags(reduction: int) -> int:
    """OpenCV read flags for a grayscale JPEG decoded at ``1 / reduction`` (flow planes)."""
    flags = {
        1: cv2.IMREAD_GRAYSCALE,
        2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
        4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
        8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
    }
    if reduction not in flags:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction}")
    return flags[reduction]


def _read_frames(
    paths: list[list[str]],
    flags: int,
    channels: int,
    window: Window | None,
    reduction: int,
    video_dir: str | Path,
) -> np.ndarray:
    """Decode each frame's files (one RGB, or flow x and y) into one (N, h, w, C) array.

    The output is allocated once, from the first image, and every (windowed)
    image is copied into its slot: no per-frame arrays are kept or stacked.
    """
    if not paths:
        return np.zeros((0, 0, 0, channels), dtype=np.uint8)
    out = None
    for k, files in enumerate(paths):
        for c, path in enumerate(files):
            image = _read_jpeg(path, flags)
            if out is None:
                full_shape = image.shape
                rows, cols = window_slices(image.shape[:2], window, reduction)
                out = np.empty((len(paths), *image[rows, cols].shape[:2], channels), np.uint8)
            elif image.shape != full_shape:
                raise VideoError(
                    f"{video_dir}: frames of different sizes {sorted({image.shape, full_shape})}"
                )
            if len(files) == 1:
                out[k] = image[rows, cols]
            else:
                out[k, ..., c] = image[rows, cols]
    return out


def window_slices(
    shape: tuple[int, int], window: Window | None, reduction: int
) -> tuple[slice, slice]:
    """Row and column slices of ``window`` in an image decoded at ``1 / reduction``."""
    if window is None:
        return slice(None), slice(None)
    top, left, height, width = (value // reduction for value in window)
    if top < 0 or left < 0 or top + height > shape[0] or left + width > shape[1]:
        raise ValueError(f"window {window} (at 1/{reduction}) is outside a {shape} frame")
    return slice(top, top + height), slice(left, left + width)


def _read_jpeg(path: str, flags: int) -> np.ndarray:
    # read + imdecode: works for any path (unicode, spaces) on every platform.
    try:
        with open(path, "rb") as file:
            data = np.frombuffer(file.read(), dtype=np.uint8)
    except FileNotFoundError:
        raise VideoError(f"{path}: missing frame") from None
    except OSError as error:
        raise VideoError(f"{path}: cannot read ({error.strerror})") from None
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise VideoError(f"{path}: not a readable JPEG")
    return image


def encode_jpeg(image: np.ndarray, quality: int = DEFAULT_QUALITY) -> bytes:
    """JPEG bytes of an RGB (H, W, 3) or grayscale (H, W) uint8 image."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise VideoError(f"cannot encode a {image.shape} image as JPEG")
    return data.tobytes()


def write_jpegs_atomic(
    video_dir: str | Path,
    images: Iterable[tuple[str, np.ndarray | bytes]],
    quality: int = DEFAULT_QUALITY,
    marker: str = DONE,
    record: Callable[[int], dict[str, Any]] | None = None,
) -> int:
    """Write named images into ``video_dir`` so that an interruption leaves no ``marker``.

    Images are encoded into a hidden sibling folder unique to this process and call
    (two writers never share one) as they arrive (``images`` may be a generator:
    nothing is held in memory). A new ``video_dir`` is then created by one rename
    with the marker already inside; into an existing one (flow beside RGB) the files
    are moved in one by one and the marker is written last. Concurrent writers of
    the same set are kept apart by :func:`mars_action.video.claim.claim`.

    Args:
        video_dir: the video's folder, ``<root>/<class>/<video>``.
        images: ``(file name, uint8 image)`` pairs; RGB (H, W, 3) or gray (H, W),
            or JPEG bytes already encoded (written as they are).
        quality: JPEG quality, 0-100.
        marker: the file that says the set is complete (see :func:`write_done`).
        record: what the marker records, from the number of images written
            (default ``{"files": n}``, which :func:`done_problem` cannot check);
            it may raise to refuse the set, which then never reaches ``video_dir``.

    Returns:
        The number of images written.
    """
    video_dir = Path(video_dir)
    tmp = temp_name(video_dir, marker)
    tmp.mkdir(parents=True)
    try:
        count = 0
        for name, image in images:
            data = image if isinstance(image, bytes) else encode_jpeg(image, quality)
            (tmp / name).write_bytes(data)
            count += 1
        content = record(count) if record else {"files": count}
        _move_into_place(tmp, video_dir, marker, content)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return count


def _move_into_place(tmp: Path, video_dir: Path, marker: str, record: dict[str, Any]) -> None:
    if not video_dir.exists():
        write_done(tmp, record, marker)
        os.rename(tmp, video_dir)
        return
    (video_dir / marker).unlink(missing_ok=True)
    for entry in sorted(tmp.iterdir()):
        os.replace(entry, video_dir / entry.name)
    write_done(video_dir, record, marker)


def write_frames(
    video_dir: str | Path,
    frames: Iterable[np.ndarray | bytes],
    quality: int = DEFAULT_QUALITY,
    marker: str = DONE,
) -> int:
    """Write RGB frames (H, W, 3) uint8 (or JPEG bytes) as ``00001.jpg ...`` atomically.

    Returns the count.

    Holds the video's claim (a concurrent writer of the same folder is refused with
    :class:`~mars_action.video.claim.ClaimedElsewhere`). Stale RGB frames of an
    earlier incomplete write are removed first, so a shorter re-extraction does not
    keep frames of the old one.
    """
    video_dir = Path(video_dir)
    with claim(video_dir, marker):
        if video_dir.is_dir() and not is_done(video_dir, marker):
            for path in video_dir.iterdir():
                if RGB_NAME.match(path.name):
                    path.unlink()
        named = ((rgb_name(i), frame) for i, frame in enumerate(frames))
        return write_jpegs_atomic(video_dir, named, quality, marker, _frames_record)


def _frames_record(count: int) -> dict[str, int]:
    return {"frames": count}


def is_done(video_dir: str | Path, marker: str = DONE) -> bool:
    """Whether ``video_dir`` holds a complete set (its ``marker`` file exists)."""
    return (Path(video_dir) / marker).is_file()


def write_done(video_dir: str | Path, record: dict[str, Any], marker: str = DONE) -> None:
    """Write the ``marker`` file holding ``record`` as JSON; call it after every file is in place.

    The record says what was written (``{"frames": n}``; flow ``{"pairs": n,
    "method": ...}``) so a reader can tell a complete set from one a broken run
    marked by mistake (:func:`done_problem`). Frames and flow share this one format.
    """
    write_atomic(Path(video_dir) / marker, (json.dumps(record, sort_keys=True) + "\n").encode())
