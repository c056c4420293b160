"""The settings a frame store was made with, in ``<root>/store.json``, so they travel.

``mars frames`` records its fps, short side and JPEG quality; ``mars flow`` its
method, bound, quantization and quality under its file prefix. Training reads them
into the checkpoint (``meta.fps``, ``meta.short_side``), so ``mars predict`` and
``mars stream`` feed a model frames made as its training frames were. A run whose
settings contradict the store's stops with one line: its videos would otherwise be
skipped as done, made another way.

Several runs may share a store (shards, machines): the file is read, merged and
rewritten under an exclusive ``flock`` of ``<root>/.store.json.lock``. Separate from
each video's ``done`` record, which says what was written for that video.
"""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mars_action.errors import MarsError
from mars_action.files import write_atomic

STORE_FILE = "store.json"
FRAMES = "frames"
FLOW = "flow"


def read(root: str | Path) -> dict[str, Any]:
    """The store's recorded settings; ``{}`` for a store made before they were recorded."""
    path = Path(root) / STORE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise MarsError(f"{path}: unreadable store settings ({error})") from None
    if not isinstance(data, dict):
        raise MarsError(f"{path}: expected a JSON object of store settings")
    return data


def record(root: str | Path, settings: dict[str, Any], flow_prefix: str | None = None) -> None:
    """Record ``settings`` of frames (``flow_prefix`` None) or of one flow method.

    Raises:
        MarsError: an earlier run recorded other values for the same thing.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        data = read(root)
        if flow_prefix is None:
            data[FRAMES] = _merged(root, FRAMES, data.get(FRAMES, {}), settings)
        else:
            flows = data.setdefault(FLOW, {})
            flows[flow_prefix] = _merged(root, f"flow {flow_prefix}", flows.get(flow_prefix, {}),
                                         settings)
        payload = json.dumps(data, indent=2, sort_keys=True) + "\n"
        write_atomic(root / STORE_FILE, payload.encode())


def _merged(root: Path, what: str, old: dict, new: dict) -> dict:
    clashes = [f"{key} {old[key]} (recorded) vs {value} (this run)"
               for key, value in new.items() if key in old and old[key] != value]
    if clashes:
        raise MarsError(
            f"{root}: the {what} in this store were made with other settings: "
            f"{'; '.join(clashes)}. Use another output folder, or the store's settings "
            f"({root / STORE_FILE})"
        )
    return {**old, **new}


@contextmanager
def _locked(root: Path):
    with open(root / f".{STORE_FILE}.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def frame_grid(root: str | Path) -> dict[str, Any]:
    """``{"fps": ..., "short_side": ...}`` the store's frames were made at (frames, else a
    flow method that decoded the videos itself); ``{}`` when none is recorded.
    ``None`` values mean the video's own rate or size."""
    data = read(root)
    sources = [data.get(FRAMES, {}), *data.get(FLOW, {}).values()]
    for settings in sources:
        if "fps" in settings and "short_side" in settings:
            return {"fps": settings["fps"], "short_side": settings["short_side"]}
    return {}
