"""Late fusion of streams, as the paper: a (weighted) mean of each video's scores.

Fusing needs the same videos (any order), the same labels and the same classes
in the same order; anything else is an error that names the difference rather
than a silently wrong number. Table 1 of the paper is every combination of the
RGB, Flow, MERS and MARS streams with equal weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mars_action.errors import MarsError
from mars_action.evaluation.metrics import summarize
from mars_action.evaluation.scores import VideoScores, class_list_difference
from mars_action.evaluation.transfer import transfer_rows

STREAM_TITLES = {"rgb": "RGB", "flow": "Flow", "mers": "MERS", "mars": "MARS"}

# The rows of the paper's Tables 1 and 2, in order; None is a blank separator line.
TABLE1_ROWS: tuple[tuple[str, ...] | None, ...] = (
    ("rgb",),
    ("flow",),
    ("rgb", "flow"),
    None,
    ("mers",),
    ("mers", "rgb"),
    ("mers", "flow"),
    ("mers", "rgb", "flow"),
    None,
    ("mars",),
    ("mars", "rgb"),
    ("mars", "flow"),
    ("mars", "rgb", "flow"),
)


def stream_title(streams: Sequence[str]) -> str:
    """``("mars", "rgb")`` -> ``"MARS+RGB"`` (the paper's spelling)."""
    return "+".join(STREAM_TITLES.get(s.lower(), s) for s in streams)


def align(results: Sequence[VideoScores], names: Sequence[str]) -> list[VideoScores]:
    """The results with videos in the first one's order, after checking they can be fused.

    ``names`` (file names, usually) label the results in error messages.
    """
    first, first_name = results[0], names[0]
    aligned = [first]
    for other, name in zip(results[1:], names[1:], strict=True):
        _check_pair(first, first_name, other, name)
        position = {video: i for i, video in enumerate(other.video_ids)}
        aligned.append(other.subset([position[v] for v in first.video_ids]))
    return aligned


def _check_pair(a: VideoScores, a_name: str, b: VideoScores, b_name: str) -> None:
    difference = class_list_difference(a.class_names, b.class_names)
    if difference:
        raise MarsError(f"{b_name}: class list differs from {a_name} ({difference})")
    only_a = sorted(set(a.video_ids) - set(b.video_ids))
    only_b = sorted(set(b.video_ids) - set(a.video_ids))
    if only_a or only_b:
        raise MarsError(
            f"{b_name}: video set differs from {a_name}: "
            f"{_listing(only_a)} only in {a_name}, {_listing(only_b)} only in {b_name}"
        )
    b_labels = dict(zip(b.video_ids, b.labels.tolist(), strict=True))
    a_labels = zip(a.video_ids, a.labels.tolist(), strict=True)
    wrong = [f"{v}: {x} vs {b_labels[v]}" for v, x in a_labels if b_labels[v] != x]
    if wrong:
        raise MarsError(f"{b_name}: labels differ from {a_name} for {_listing(wrong)}")
    if a.aggregate != b.aggregate:
        raise MarsError(
            f"{b_name}: scores are {b.aggregate} averages but {a_name}'s are {a.aggregate}; "
            "evaluate both with the same --aggregate"
        )


def _listing(items: Sequence[str], shown: int = 3) -> str:
    """'2 videos (a, b)' style, truncated."""
    if not items:
        return "0 videos"
    head = ", ".join(items[:shown]) + (", ..." if len(items) > shown else "")
    return f"{len(items)} video{'s' if len(items) != 1 else ''} ({head})"


def fuse(
    results: Sequence[VideoScores],
    weights: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
) -> VideoScores:
    """Weighted mean of the streams' scores, ``sum(w_i s_i) / sum(w_i)`` (equal by default)."""
    if not results:
        raise MarsError("nothing to fuse: no score files given")
    names = list(names or [r.stream for r in results])
    weights = [1.0] * len(results) if weights is None else [float(w) for w in weights]
    if len(weights) != len(results):
        raise MarsError(f"{len(weights)} weights given for {len(results)} score files")
    if sum(weights) <= 0 or min(weights) < 0:
        raise MarsError(f"weights must be non-negative with a positive sum, got {weights}")
    aligned = align(results, names)
    stacked = np.stack([r.scores for r in aligned])  # (S, N, C)
    w = np.asarray(weights, dtype=np.float64)[:, None, None]
    fused = (stacked * w).sum(axis=0) / w.sum()
    first = aligned[0]
    return VideoScores(
        video_ids=first.video_ids,
        labels=first.labels,
        scores=fused,
        class_names=first.class_names,
        stream="+".join(r.stream for r in aligned),
        aggregate=first.aggregate,
        info={"fused_from": names, "weights": weights},
    )


def streams_by_name(
    results: Sequence[VideoScores], names: Sequence[str], labels: Sequence[str | None]
) -> dict[str, VideoScores]:
    """Map stream name -> result; ``labels`` override a file's own stream name."""
    table: dict[str, VideoScores] = {}
    origin: dict[str, str] = {}
    for result, name, label in zip(results, names, labels, strict=True):
        stream = (label or result.stream).lower()
        if stream in table:
            raise MarsError(
                f"two score files for stream {stream!r}: {origin[stream]} and {name}; "
                "name them explicitly as STREAM=FILE"
            )
        table[stream], origin[stream] = result, name
    aligned = align(list(table.values()), [origin[s] for s in table])
    return dict(zip(table, aligned, strict=True))


def stream_table(streams: dict[str, VideoScores]) -> list[dict[str, Any] | None]:
    """The Table 1 rows whose streams are all present (equal-weight fusion), with metrics.

    Streams outside RGB/Flow/MERS/MARS get a row of their own at the end.
    """
    rows: list[dict[str, Any] | None] = []
    for combo in TABLE1_ROWS:
        if combo is None:
            if rows and rows[-1] is not None:
                rows.append(None)
        elif all(s in streams for s in combo):
            rows.append(_row(combo, streams))
    extra = [(s,) for s in streams if s not in STREAM_TITLES]
    rows += [_row(combo, streams) for combo in extra]
    while rows and rows[-1] is None:
        rows.pop()
    _add_transfer(rows)
    return rows


def _add_transfer(rows: list[dict[str, Any] | None]) -> None:
    """MARS and MERS rows get ``transfer`` (and ``transfer_vs_control`` with the RGB
    control): how much of Flow's lead over RGB the student kept."""
    single = {row["streams"][0]: row for row in rows if row and len(row["streams"]) == 1}
    for stream, values in transfer_rows({k: r["top1"] for k, r in single.items()}).items():
        single[stream].update(values)


def _row(combo: tuple[str, ...], streams: dict[str, VideoScores]) -> dict[str, Any]:
    members = [streams[s] for s in combo]
    result = members[0] if len(members) == 1 else fuse(members, names=list(combo))
    return {"name": stream_title(combo), "streams": list(combo), **summarize(result)}


def format_table(rows: Sequence[dict[str, Any] | None], title: str = "") -> str:
    """Plain-text table in the paper's layout (accuracies in percent)."""
    header = f"{'Stream':<16}{'Top-1':>8}{'Top-5':>8}{'Mean class':>12}{'Videos':>8}"
    extra = [(key, label) for key, label in TRANSFER_COLUMNS
             if any(row and key in row for row in rows)]
    header += "".join(f"{label:>{len(label) + 2}}" for _, label in extra)
    lines = [title] if title else []
    lines += [header, "-" * len(header)]
    for row in rows:
        if row is None:
            lines.append("")
            continue
        lines.append(
            f"{row['name']:<16}{row['top1']:>8.1f}{row['top5']:>8.1f}"
            f"{row['mean_class_accuracy']:>12.1f}{row['num_videos']:>8d}"
            + "".join(f"{_ratio(row.get(key)):>{len(label) + 2}}" for key, label in extra)
        )
    if extra:
        lines.append("Transfer = (stream - RGB) / (Flow - RGB); vs control: RGB trained as "
                     "long as the student in place of RGB")
    return "\n".join(lines)


# Columns a table shows when a MARS or MERS row has them (``_add_transfer``).
TRANSFER_COLUMNS = (("transfer", "Transfer"), ("transfer_vs_control", "vs control"))


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
