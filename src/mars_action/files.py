"""Files shared by every stage: atomic writes, output names kept inside their folder, OS errors.

Atomic writes go to a unique temporary name beside the target, then a rename. A reader
(or a crashed run) never sees a half-written file under the final name, and two
processes writing the same file (two runs sharing a frame store) never collide on the
temporary name: the last complete rename wins.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

from mars_action.errors import MarsError


def temp_beside(path: str | Path) -> Path:
    """A hidden temporary name in ``path``'s folder (same file system: the rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def write_atomic(path: str | Path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` through a temporary file; create the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    try:
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def describe_os_error(error: OSError, path: str | Path | None = None) -> str:
    """One line for a failed file operation: ``<path>: no space left on device``.

    Disk full, permission denied or a symbolic link loop is the user's to fix, so it
    is said plainly, naming the file, instead of a traceback.
    """
    name = path if path is not None else error.filename
    reason = error.strerror or type(error).__name__
    if error.errno == errno.ELOOP:
        reason = "symbolic link loop"
    reason = reason[:1].lower() + reason[1:]
    return f"{name}: {reason}" if name is not None else reason


def confined(root: str | Path, *parts: str) -> Path:
    """``root/part/...``, refused if any part would lead outside ``root``.

    Output names come from inputs (a video's folder and stem, a list's lines): a
    name ``..`` or one with a separator must not let a run write or delete files
    elsewhere.

    Raises:
        MarsError: a part is empty, ``.``/``..``, holds a separator, or the resolved
            path (symbolic links followed) is not inside ``root``.
    """
    for part in parts:
        if part in ("", ".", "..") or "/" in part or os.sep in part or "\0" in part:
            raise MarsError(f"{'/'.join(parts)}: output name {part!r} would leave {root}")
    path = Path(root).joinpath(*parts)
    base = Path(root).resolve()
    if not path.resolve().is_relative_to(base):
        raise MarsError(f"{path}: resolves outside the output folder {root}")
    return path


def free_name(path: Path, taken: set[Path]) -> Path:
    """``path``, or ``stem-1.ext``, ``stem-2.ext``... the first not in ``taken`` (resolved)."""
    candidate, number = path, 0
    while candidate.resolve() in taken:
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate
