"""Per-video class scores: what evaluation writes and what fusion, analyses and reports read.

Score file format (``.npz``, version 1), read with ``allow_pickle=False``, so opening
a file never runs code:

=================  ===============  ==================================================
key                dtype / shape    meaning
=================  ===============  ==================================================
``format``         str ()           ``"mars-action-scores"``
``version``        int ()           1
``stream``         str ()           ``rgb``, ``flow``, ``mers``, ``mars`` or a fusion
                                    such as ``mars+rgb``
``aggregate``      str ()           ``logits`` (released code) or ``softmax``: what was
                                    averaged over a video's clips and crops
``video_ids``      str (N,)         one id per video, unique
``labels``         int64 (N,)       ground-truth class index
``class_names``    str (C,)         the classifier's classes, in output order
``scores``         float32 (N, C)   clip-averaged scores of every class
``clip_hits``      int64 (N,)       clips whose own top-1 was right (optional)
``clip_counts``    int64 (N,)       clips evaluated per video (optional)
``time_data``      float64 (N,)     seconds spent waiting for the video's clips, i.e.
                                    decoding/reading and transforms (optional)
``time_network``   float64 (N,)     seconds of network forward passes (optional)
``time_flow``      float64 (N,)     seconds of flow computation, when known (optional)
``info``           str ()           JSON: provenance (checkpoint, split, clip length,
                                    number of clips and crops, static clips, ...)
=================  ===============  ==================================================

Beside every ``X.npz``, :func:`save_scores` writes ``X.json``: the metrics of
:func:`mars_action.evaluation.metrics.summarize` (percentages) plus ``info``, for
people and for ``mars report``.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from mars_action.errors import MarsError
from mars_action.evaluation.files import write_json
from mars_action.files import describe_os_error, write_atomic

FORMAT = "mars-action-scores"
VERSION = 1
TIME_KEYS = ("data", "network", "flow")


@dataclasses.dataclass
class VideoScores:
    """Scores of one stream (or one fusion of streams) for every video of a split.

    Attributes:
        video_ids: one unique id per video.
        labels: (N,) ground-truth class indices.
        scores: (N, C) clip-averaged scores.
        class_names: the C class names.
        stream: stream name (``rgb``, ``flow``, ``mers``, ``mars`` or ``a+b``).
        aggregate: ``logits`` or ``softmax``.
        clip_hits: (N,) correctly classified clips per video, or None (fusions).
        clip_counts: (N,) clips per video, or None.
        times: seconds per video by part: ``data``, ``network``, ``flow``.
        info: provenance, JSON-serialisable.
    """

    video_ids: list[str]
    labels: np.ndarray
    scores: np.ndarray
    class_names: list[str]
    stream: str
    aggregate: str = "logits"
    clip_hits: np.ndarray | None = None
    clip_counts: np.ndarray | None = None
    times: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.video_ids = [str(v) for v in self.video_ids]
        self.class_names = [str(c) for c in self.class_names]
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        n = len(self.video_ids)
        if self.scores.ndim != 2 or self.scores.shape[0] != n or self.labels.shape != (n,):
            raise ValueError(
                f"scores {self.scores.shape} and labels {self.labels.shape} "
                f"do not fit {n} videos"
            )
        if self.class_names and len(self.class_names) != self.scores.shape[1]:
            raise ValueError(
                f"{len(self.class_names)} class names for {self.scores.shape[1]} score columns"
            )

    @property
    def num_videos(self) -> int:
        """How many videos were scored."""
        return len(self.video_ids)

    @property
    def num_classes(self) -> int:
        """How many classes each score row has."""
        return int(self.scores.shape[1])

    def subset(self, order: list[int]) -> VideoScores:
        """The same scores for the videos at ``order`` (used to align two files)."""
        index = np.asarray(order, dtype=np.int64)
        return dataclasses.replace(
            self,
            video_ids=[self.video_ids[i] for i in order],
            labels=self.labels[index],
            scores=self.scores[index],
            clip_hits=_take(self.clip_hits, index),
            clip_counts=_take(self.clip_counts, index),
            times={k: v[index] for k, v in self.times.items()},
        )


def _take(values: np.ndarray | None, index: np.ndarray) -> np.ndarray | None:
    return None if values is None else np.asarray(values)[index]


def save_scores(path: str | Path, scores: VideoScores) -> Path:
    """Write ``path`` (.npz) and its ``.json`` summary, each atomically (temp file, rename)."""
    from mars_action.evaluation.metrics import summarize

    path = Path(path)
    if path.suffix != ".npz":
        raise MarsError(f"{path}: score files end in .npz")
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "stream": np.array(scores.stream),
        "aggregate": np.array(scores.aggregate),
        "video_ids": np.array(scores.video_ids, dtype=np.str_),
        "labels": scores.labels,
        "class_names": np.array(scores.class_names, dtype=np.str_),
        "scores": scores.scores,
        "info": np.array(json.dumps(scores.info)),
    }
    if scores.clip_hits is not None and scores.clip_counts is not None:
        arrays["clip_hits"] = np.asarray(scores.clip_hits, dtype=np.int64)
        arrays["clip_counts"] = np.asarray(scores.clip_counts, dtype=np.int64)
    for key, values in scores.times.items():
        arrays[f"time_{key}"] = np.asarray(values, dtype=np.float64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(path, buffer.getvalue())
    write_json(path.with_suffix(".json"), {**summarize(scores), "info": scores.info})
    return path


def load_scores(path: str | Path) -> VideoScores:
    """Read a score file; a file of another kind or version is a one-line ``MarsError``."""
    path = Path(path)
    if not path.is_file():
        raise MarsError(f"{path}: no such score file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except OSError as error:
        raise MarsError(f"cannot read score file {describe_os_error(error, path)}") from None
    except ValueError:  # numpy's text would suggest unpickling the file: never
        raise MarsError(f"{path}: not a readable score file (not a NumPy .npz archive)") from None
    if str(arrays.get("format", "")) != FORMAT:
        raise MarsError(f"{path}: not a mars-action score file (no format={FORMAT!r})")
    if int(arrays["version"]) != VERSION:
        raise MarsError(f"{path}: score file version {int(arrays['version'])}, expected {VERSION}")
    times = {k: arrays[f"time_{k}"] for k in TIME_KEYS if f"time_{k}" in arrays}
    return VideoScores(
        video_ids=arrays["video_ids"].tolist(),
        labels=arrays["labels"],
        scores=arrays["scores"],
        class_names=arrays["class_names"].tolist(),
        stream=str(arrays["stream"]),
        aggregate=str(arrays["aggregate"]),
        clip_hits=arrays.get("clip_hits"),
        clip_counts=arrays.get("clip_counts"),
        times=times,
        info=json.loads(str(arrays["info"])),
    )


def class_list_difference(a: list[str], b: list[str]) -> str:
    """How two class lists differ, for an error message ('' when equal)."""
    if a == b:
        return ""
    detail = f"{len(a)} vs {len(b)} classes"
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    if first is not None:
        detail += f"; first difference #{first}: {a[first]!r} vs {b[first]!r}"
    return detail


def find_score_files(paths: list[str | Path]) -> list[Path]:
    """Score files named directly, or found (sorted) inside the folders given."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.npz") if _is_score_file(p))
        elif path.is_file():
            found.append(path)
        else:
            raise MarsError(f"{path}: no such file or folder")
    return found


def _is_score_file(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as data:
            return "format" in data.files and str(data["format"]) == FORMAT
    except (OSError, ValueError):
        return False
