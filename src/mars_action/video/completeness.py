"""Is a frame store complete? Read the markers writers leave and check sets against them.

The writers (:mod:`mars_action.video.framestore`) put a ``done`` marker recording what
they wrote after the last file; these readers tell a complete set from one a broken
run left, list a store's video folders in either layout, and check the numbering of
frames a dataset ships without markers. Kept apart from the writers so that checking
a store never needs the JPEG codec.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mars_action.video.decode import VideoError
from mars_action.video.framestore import (
    DONE,
    FLOW_PREFIX,
    RGB_NAME,
    flow_count,
    frame_count,
)


def read_done(video_dir: str | Path, marker: str = DONE) -> dict[str, Any] | None:
    """The record of ``marker``: None if absent, ``{}`` for an old empty marker.

    Raises:
        VideoError: the marker holds something that is not a JSON object.
    """
    path = Path(video_dir) / marker
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise VideoError(f"{path}: unreadable done marker ({error})") from None
    if not text:
        return {}
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        record = None
    if not isinstance(record, dict):
        raise VideoError(f"{path}: done marker is not a JSON record")
    return record


def done_problem(video_dir: str | Path, marker: str = DONE) -> str:
    """Why ``video_dir``'s ``marker`` set is not what its record says; "" when it is.

    ``done`` records ``frames`` (RGB files are counted), a flow marker
    ``<prefix>done`` records ``pairs`` (its ``<prefix>x_`` files are counted). A
    missing marker, or an old empty one, has nothing to check against: "".
    """
    try:
        record = read_done(video_dir, marker)
    except VideoError as error:
        return str(error)
    if not record:
        return ""
    if "frames" in record:
        found, expected, what = frame_count(video_dir), record["frames"], "frames"
    elif "pairs" in record:
        prefix = marker[: -len(DONE)] if marker.endswith(DONE) else FLOW_PREFIX
        found, expected, what = flow_count(video_dir, prefix), record["pairs"], "flow fields"
    else:
        return ""
    if found != expected:
        return f"{video_dir}: marked {marker} with {expected} {what}, holds {found}"
    return ""


def verify_store(root: str | Path) -> tuple[int, list[str]]:
    """Check every marker (``done``, ``<prefix>done``) of a store against its record.

    Returns:
        (markers checked, one ``"<folder>: <reason>"`` per set that does not hold
        what its marker says). Old empty markers pass: they record nothing.
    """
    checked, problems = 0, []
    for video_dir in list_video_dirs(root):
        with os.scandir(video_dir) as entries:
            markers = sorted(e.name for e in entries if e.name.endswith(DONE) and e.is_file())
        for marker in markers:
            checked += 1
            problem = done_problem(video_dir, marker)
            if problem:
                problems.append(problem)
    return checked, problems


def list_video_dirs(root: str | Path) -> list[Path]:
    """Every video folder of a frame store, sorted; hidden (temporary) ones left out.

    Two layouts: ``<root>/<class>/<video>/`` (``mars frames``), and ``<root>/<video>/``
    with the frames straight inside, as Something-Something v1 ships them (no class
    folders), told apart by whether the first folder holds frames itself.
    """
    root = Path(root)
    if not root.is_dir():
        raise VideoError(f"{root}: frame store folder not found")
    top = sorted(_visible_dirs(root))
    if top and frame_count(top[0]):
        return top
    return sorted(video for class_dir in top for video in _visible_dirs(class_dir))


def numbering_problem(video_dir: str | Path) -> str:
    """Why the RGB frames of ``video_dir`` are not ``00001.jpg`` to ``N.jpg``; "" when they are.

    The check for a set without a ``done`` marker (frames a dataset ships, such
    as Something-Something's): a gap or a count that is not the last number means
    missing or stray files, which would shift every index after them.
    """
    try:
        with os.scandir(video_dir) as entries:
            numbers = [int(e.name[:-4]) for e in entries if RGB_NAME.match(e.name)]
    except (FileNotFoundError, NotADirectoryError):
        return f"{video_dir}: frame folder not found"
    if not numbers:
        return f"{video_dir}: no frames (NNNNN.jpg)"
    if min(numbers) != 1 or max(numbers) != len(numbers):
        return (
            f"{video_dir}: frames are not numbered 00001 to {len(numbers):05d} "
            f"({len(numbers)} files, {min(numbers):05d} to {max(numbers):05d})"
        )
    return ""


def _visible_dirs(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if path.is_dir() and not path.name.startswith(".")]
