"""Figures 1 and 4a: accuracy against the average time to recognise one video.

A stream's time per video has three parts: decoding the video, computing optical
flow (Flow streams only), and the network. Evaluation measures reading and network
time per video (``time_data``, ``time_network`` in score files); flow time comes
from :func:`measure_video_costs` on sample videos (scaled to the evaluated videos'
length) or is given in seconds. A fusion decodes once and computes flow once, so
its time is the largest decode, the largest flow, and the sum of networks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mars_action.errors import MarsError
from mars_action.evaluation.fusion import STREAM_TITLES, TABLE1_ROWS, fuse, stream_title
from mars_action.evaluation.metrics import topk_accuracy
from mars_action.evaluation.plots import new_figure, save_figure, stream_color
from mars_action.evaluation.scores import VideoScores

PARTS = ("decode", "flow", "network")
PART_COLORS = {"decode": "#7f7f7f", "flow": "#ff7f0e", "network": "#1f77b4"}


def measure_video_costs(
    videos: Sequence[str | Path], method: str = "tvl1", fps: float = 25.0, short_side: int = 256
) -> dict[str, float]:
    """Decode and flow seconds per frame, measured on ``videos`` on this machine."""
    from mars_action.flow.methods import check_method, compute_flow
    from mars_action.video.decode import decode_video

    try:
        check_method(method)
    except ValueError as error:
        raise MarsError(str(error)) from None
    decode_s = flow_s = 0.0
    frames_total = pairs_total = 0
    for video in videos:
        start = time.perf_counter()
        frames = decode_video(video, fps=fps, short_side=short_side)  # (T, H, W, 3)
        decode_s += time.perf_counter() - start
        start = time.perf_counter()
        compute_flow(frames, method=method)
        flow_s += time.perf_counter() - start
        frames_total += len(frames)
        pairs_total += max(len(frames) - 1, 0)
    if not frames_total:
        raise MarsError("no frames decoded from the videos given to measure flow time")
    return {
        "method": method,
        "videos": len(videos),
        "decode_s_per_frame": decode_s / frames_total,
        "flow_s_per_frame": flow_s / max(pairs_total, 1),
    }


def frames_per_video(result: VideoScores) -> float:
    """Mean frames per evaluated video: its clips times the clip length (from the score file).

    Only all non-overlapping clips (``--clips all``, the paper's protocol) cover a video.
    """
    clip_len = int(result.info.get("clip_len", 16))
    if result.clip_counts is None or result.info.get("clips", "all") != "all":
        raise MarsError(
            f"stream {result.stream}: its score file does not tell the videos' length "
            "(evaluate with --clips all, or give --flow-seconds)"
        )
    return float(np.mean(result.clip_counts)) * clip_len


def stream_costs(
    result: VideoScores, flow_seconds: float | None = None, decode_seconds: float | None = None
) -> dict[str, float]:
    """Seconds per video by part for one stream's score file.

    ``flow_seconds``: flow time per video for a Flow stream (required for one,
    unless the file carries ``time_flow``). ``decode_seconds``: replaces the
    measured reading time (a Flow stream reads flow images, not the video).
    """
    takes_flow = result.info.get("modality", result.stream) == "flow"
    if takes_flow and flow_seconds is None and "flow" not in result.times:
        raise MarsError(
            f"stream {result.stream}: takes optical flow; give its flow time "
            f"(--flow-seconds {result.stream}=S) or videos to measure it on"
        )
    flow = 0.0
    if takes_flow:
        flow = flow_seconds if flow_seconds is not None else float(np.mean(result.times["flow"]))
    decode = decode_seconds
    if decode is None:
        decode = float(np.mean(result.times["data"])) if "data" in result.times else 0.0
    network = float(np.mean(result.times.get("network", [0.0])))
    return {"decode": decode, "flow": flow, "network": network}


def combined_costs(costs: Sequence[dict[str, float]]) -> dict[str, float]:
    """A fusion: decode once and compute flow once (the largest), run every network."""
    return {
        "decode": max(c["decode"] for c in costs),
        "flow": max(c["flow"] for c in costs),
        "network": sum(c["network"] for c in costs),
    }


def default_combinations(names: Sequence[str]) -> list[tuple[str, ...]]:
    """Table 1's rows present in ``names``, plus every other stream alone and with RGB."""
    present = set(names)
    combos = [c for c in TABLE1_ROWS if c is not None and set(c) <= present]
    for name in names:
        if name not in STREAM_TITLES:
            combos += [(name,)] + ([(name, "rgb")] if "rgb" in present else [])
    return combos


def accuracy_vs_time(
    streams: dict[str, VideoScores],
    costs: dict[str, dict[str, float]],
    combinations: Sequence[Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """One point per stream or equal-weight fusion: top-1 and seconds per video by part."""
    points = []
    for combo in combinations or default_combinations(list(streams)):
        members = [streams[s] for s in combo]
        result = members[0] if len(members) == 1 else fuse(members, names=list(combo))
        parts = combined_costs([costs[s] for s in combo])
        points.append({
            "name": stream_title(combo),
            "streams": list(combo),
            "top1": topk_accuracy(result.scores, result.labels, 1),
            **{f"{part}_s": parts[part] for part in PARTS},
            "total_s": sum(parts.values()),
        })
    return points


def plot_accuracy_vs_time(points: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Left: accuracy vs total seconds per video (log axis). Right: the time split."""
    figure = new_figure(11.0, 4.2)
    left, right = figure.subplots(1, 2, width_ratios=(1.2, 1.0))
    for i, point in enumerate(points):
        color = stream_color(point["streams"][0] if len(point["streams"]) == 1 else "", i)
        left.scatter(point["total_s"], point["top1"], color=color, s=40, zorder=3)
        left.annotate(point["name"], (point["total_s"], point["top1"]), fontsize=8,
                      xytext=(4, 4), textcoords="offset points")
    left.set_xscale("log")
    left.set_xlabel("Average time per video (s, log scale)")
    left.set_ylabel("Top-1 accuracy (%)")
    left.set_title(title, fontsize=10)
    left.grid(True, which="both", alpha=0.3)
    y = np.arange(len(points))[::-1]
    start = np.zeros(len(points))
    for part in PARTS:
        widths = np.array([p[f"{part}_s"] for p in points])
        right.barh(y, widths, left=start, color=PART_COLORS[part], label=part)
        start += widths
    right.set_yticks(y, [p["name"] for p in points], fontsize=8)
    right.set_xlabel("Seconds per video")
    right.set_title("Where the time goes", fontsize=10)
    right.legend(fontsize=8)
    return save_figure(figure, path)
