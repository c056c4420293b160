"""``mars report``: one self-contained HTML page of results, to look at rather than read JSON.

Given run folders, score files and analysis folders, the page shows: a table of
every score file's metrics; the paper's Table 1 for the streams found (when they
cover the same videos); each run's loss curves (Fig. 4c); and every figure an
analysis left (PNG, with its JSON numbers folded beneath, and small MP4s).
Images and videos are inlined as base64, so the file can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mars_action.errors import MarsError
from mars_action.evaluation.curves import curve_series, plot_curves, read_metrics, run_title
from mars_action.evaluation.fusion import TRANSFER_COLUMNS, stream_table, streams_by_name
from mars_action.evaluation.metrics import summarize
from mars_action.evaluation.scores import VideoScores, find_score_files, load_scores
from mars_action.files import write_atomic

MAX_INLINE_VIDEO = 8 * 2**20  # bytes; larger MP4s are listed, not embedded
STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.gap td { border: none; height: 0.6em; }
img, video { max-width: 100%; border: 1px solid #eee; }
figure { margin: 1.5em 0; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; font-size: 85%; }
.note { color: #a33; }
"""
COLUMNS = (("top1", "Top-1"), ("top5", "Top-5"), ("mean_class_accuracy", "Mean class"),
           ("clip_top1", "Clip top-1"), ("num_videos", "Videos"))


def build_report(paths: Sequence[str | Path], title: str = "mars-action report") -> str:
    """The HTML text for the given run folders, score files and analysis folders."""
    sections: list[str] = []
    runs = [Path(p) for p in paths if (Path(p) / "metrics.jsonl").is_file()]
    score_paths = find_score_files(list(paths))
    if score_paths:
        results = [load_scores(p) for p in score_paths]
        sections.append(_scores_section(results, score_paths))
        sections.append(_table1_section(results, score_paths))
    sections += [_run_section(run) for run in runs]
    # Analysis folders: their figures. A run folder's own plots are replaced by the above.
    for path in (Path(p) for p in paths if Path(p).is_dir() and Path(p) not in runs):
        sections += [_figure(png) for png in sorted(path.rglob("*.png"))]
        sections += [_video(mp4) for mp4 in sorted(path.rglob("*.mp4"))]
    if not any(sections):
        raise MarsError(f"nothing to report in {', '.join(map(str, paths))}: "
                        "no score files, run folders or figures")
    body = "\n".join(s for s in sections if s)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def write_report(paths: Sequence[str | Path], out: str | Path, title: str = "") -> Path:
    """Write the HTML report atomically: a reader never sees half a page."""
    return write_atomic(out, build_report(paths, title or "mars-action report").encode())


def _scores_section(results: Sequence[VideoScores], paths: Sequence[Path]) -> str:
    rows = []
    for result, path in zip(results, paths, strict=True):
        summary = summarize(result)
        rows.append([html.escape(str(path)), html.escape(result.stream)]
                    + [_number(summary.get(key)) for key, _ in COLUMNS])
    header = ["Score file", "Stream"] + [label for _, label in COLUMNS]
    return "<h2>Evaluations</h2>\n" + _table(header, rows)


def _table1_section(results: Sequence[VideoScores], paths: Sequence[Path]) -> str:
    """One Table 1 for normal clips and one for static clips (section 5.4), if present."""
    groups: dict[bool, list[tuple[VideoScores, Path]]] = {}
    for result, path in zip(results, paths, strict=True):
        groups.setdefault(bool(result.info.get("static")), []).append((result, path))
    return "".join(
        _table1_of([r for r, _ in group], [p for _, p in group], static)
        for static, group in sorted(groups.items())
    )


def _table1_of(results: Sequence[VideoScores], paths: Sequence[Path], static: bool) -> str:
    """The table of the first score file of each stream (``mars report runs analysis/static``
    gives two of each: the runs' and the analysis's normal clips); the others are named."""
    first: dict[str, tuple[VideoScores, Path]] = {}
    for result, path in zip(results, paths, strict=True):
        first.setdefault(result.stream, (result, path))
    if len(first) < 2:
        return ""  # one stream, or several runs of one
    unused = [str(p) for r, p in zip(results, paths, strict=True) if first[r.stream][1] != p]
    results, paths = [r for r, _ in first.values()], [p for _, p in first.values()]
    try:
        streams = streams_by_name(results, [str(p) for p in paths], [None] * len(results))
        table = stream_table(streams)
    except MarsError as error:
        return f"<h2>Streams and fusions</h2><p class='note'>{html.escape(str(error))}</p>"
    columns = COLUMNS + tuple((key, label) for key, label in TRANSFER_COLUMNS
                              if any(row and key in row for row in table))
    rows = [None if row is None else [html.escape(row["name"])]
            + [_number(row.get(key)) for key, _ in columns] for row in table]
    header = ["Stream"] + [label for _, label in columns]
    clips = ", static clips" if static else ""
    note = (f"<p>One score file per stream: {html.escape(', '.join(map(str, paths)))}; "
            f"not in this table: {html.escape(', '.join(unused))}</p>" if unused else "")
    return (f"<h2>Streams and fusions (Table 1 layout, equal weights{clips})</h2>\n"
            + note + _table(header, rows))


def _run_section(run: Path) -> str:
    records = read_metrics(run)
    last = records[-1]
    with tempfile.TemporaryDirectory() as tmp:
        title = run_title(run)
        png = plot_curves(curve_series(records), Path(tmp) / "curves.png", title=title)
        image = _img(png.read_bytes(), f"curves of {title}")
    keys = [k for k in ("epoch", "train_loss", "train_ce", "train_alpha_mse", "train_acc",
                        "val_loss", "val_acc") if k in last]
    table = _table(keys, [[_number(last[k]) for k in keys]])
    return f"<h2>Run {html.escape(str(run))}</h2>\n<p>Last epoch:</p>{table}\n{image}"


def _figure(png: Path) -> str:
    numbers = png.with_suffix(".json")
    details = ""
    if numbers.is_file():
        text = json.dumps(json.loads(numbers.read_text()), indent=1)
        details = f"<details><summary>numbers</summary><pre>{html.escape(text)}</pre></details>"
    caption = f"<figcaption>{html.escape(str(png))}</figcaption>"
    return f"<figure>{_img(png.read_bytes(), png.stem)}{caption}{details}</figure>"


def _video(mp4: Path) -> str:
    size = mp4.stat().st_size
    if size > MAX_INLINE_VIDEO:
        return f"<p>Video {html.escape(str(mp4))} ({size / 2**20:.1f} MB, not embedded)</p>"
    data = base64.b64encode(mp4.read_bytes()).decode()
    return (f"<figure><video controls muted loop src='data:video/mp4;base64,{data}'></video>"
            f"<figcaption>{html.escape(str(mp4))}</figcaption></figure>")


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str] | None]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        if row is None:
            body.append(f"<tr class='gap'><td colspan='{len(header)}'></td></tr>")
        else:
            body.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.2f}"
    return html.escape(str(value))
