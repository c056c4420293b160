"""JSON for score files, figures and reports, written atomically (``mars_action.files``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mars_action.files import write_atomic


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
