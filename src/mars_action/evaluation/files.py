"""Atomic file writes shared by score files, figures and JSON: a temp name, then a rename.

A reader (or a crashed run) never sees a half-written file under the final name.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, payload: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """Pretty, strict JSON: NaN and infinities are written as null."""
    return write_atomic(path, (json.dumps(_finite(data), indent=2) + "\n").encode())


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
