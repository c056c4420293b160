"""Atomic writes shared by every stage: a unique temporary name beside the target, then a rename.

A reader (or a crashed run) never sees a half-written file under the final name, and two
processes writing the same file (two runs sharing a frame store) never collide on the
temporary name: the last complete rename wins.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


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
