"""The efficiency frontier (``mars analyze frontier``): accuracy vs GMACs and vs CPU latency.

Reads what ``benchmarks/bench_frontier.py`` measured (test top-1 of RGB and MARS
students of several families over seeds; ms per clip at fp32 / bf16 / int8 with each
one's top-1 agreement with float32) and draws both views; the JSON beside the PNG holds
the plotted points and the issue's targets, met or not, with their numbers.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from mars_action.evaluation.plots import FALLBACK_COLORS, new_figure, save_figure

PRECISIONS = ("fp32_eager", "fp32", "bf16", "int8")
_MARKERS = {"fp32_eager": "o", "fp32": "s", "bf16": "^", "int8": "D"}


def seed_top1(accuracy: dict[str, dict], arch: str, stream: str) -> list[float]:
    """Test top-1 of every finished seed of ``arch``'s ``stream`` student (failed runs out)."""
    return [run["top1"] for run in accuracy.values()
            if run["arch"] == arch and run["stream"] == stream and "top1" in run]


def mean_top1(accuracy: dict[str, dict], arch: str, stream: str) -> float | None:
    """Mean test top-1 over the seeds of one family and stream (None when none finished)."""
    values = seed_top1(accuracy, arch, stream)
    return statistics.fmean(values) if values else None


def frontier_points(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One point per family and stream: mean/std top-1 over seeds, GMACs, ms per clip."""
    points = []
    for arch in figures["archs"]:
        latency = figures["latency"].get(arch, {})
        gmacs = latency.get("gmacs") or figures.get("gmacs", {}).get(arch, {}).get("gmacs")
        for stream in ("rgb", "mars", "rgb_control"):
            values = seed_top1(figures["accuracy"], arch, stream)
            if not values:
                continue
            point = {"arch": arch, "stream": stream, "seeds": len(values),
                     "top1": statistics.fmean(values),
                     "top1_std": statistics.stdev(values) if len(values) > 1 else 0.0,
                     "gmacs": gmacs}
            for precision in PRECISIONS:
                if precision in latency:
                    point[f"ms_{precision}"] = latency[precision]["ms_per_clip_b1"]
            points.append(point)
    return points


def targets(figures: dict[str, Any], light: str, reference: str) -> list[dict[str, Any]]:
    """The issue's three targets with the measured numbers (met or not)."""
    accuracy, rows = figures["accuracy"], []
    gains = {}
    for arch in (light, reference):
        rgb, mars = mean_top1(accuracy, arch, "rgb"), mean_top1(accuracy, arch, "mars")
        gains[arch] = None if rgb is None or mars is None else mars - rgb
    per_seed = figures.get("gain_kept", {}).get(light, {}).get("vs_rgb")
    if per_seed and per_seed["mean_kept"] is not None:  # the ratio seed by seed, then its mean
        seeds = per_seed["per_seed"]
        rows.append({"target": f"{light} keeps >= 80% of {reference}'s MARS gain over RGB "
                               "(mean over >= 3 seeds of the per-seed ratio)",
                     "light_gain": gains[light], "reference_gain": gains[reference],
                     "kept": per_seed["mean_kept"], "seeds": len(seeds),
                     "kept_per_seed": {k: v["kept"] for k, v in seeds.items()},
                     "met": len(seeds) >= 3 and per_seed["mean_kept"] >= 0.8})
    elif None not in gains.values():
        kept = gains[light] / gains[reference] if gains[reference] > 0 else None
        rows.append({"target": f"{light} keeps >= 80% of {reference}'s MARS gain over RGB",
                     "light_gain": gains[light], "reference_gain": gains[reference],
                     "kept": kept, "met": kept is not None and kept >= 0.8})
    for arch, row in figures["latency"].items():
        for label, measured in (("trained clips", row), ("clips at 112 px", row.get("at_112"))):
            if measured:
                rows += _speed_target(f"{arch} MARS on {label}", measured)
    stream = figures.get("stream") or {}
    if "frames_per_s" in stream:
        rows.append({"target": f"mars stream with {light}: >= 25 frames in per s on one core",
                     "frames_per_s": stream["frames_per_s"], "met": stream["frames_per_s"] >= 25})
    return rows


def _speed_target(name: str, row: dict[str, Any]) -> list[dict[str, Any]]:
    """>= 2.5x eager fp32 at batch 1 and 8 with >= 99% agreement, by the best precision
    among those that agree enough (or the fastest, when none does)."""
    def speedup(precision: str) -> float:
        return min(row[precision]["speedup_b1"], row[precision]["speedup_b8"])

    candidates = [p for p, entry in row.items()  # fp32, bf16, int8 and any other path timed
                  if p != "fp32_eager" and isinstance(entry, dict) and "speedup_b1" in entry]
    if not candidates:
        return []
    agreeing = [p for p in candidates if row[p]["agreement"] >= 0.99]
    best = max(agreeing or candidates, key=speedup)
    return [{"target": f"{name}: >= 2.5x eager fp32 (batch 1 and 8) at >= 99% top-1 agreement",
             "precision": best, "speedup_min_b1_b8": speedup(best),
             "agreement": row[best]["agreement"],
             "met": speedup(best) >= 2.5 and row[best]["agreement"] >= 0.99}]


def plot_frontier(points: list[dict[str, Any]], path: str | Path) -> Path:
    """Two panels: top-1 vs GMACs (log x), top-1 vs ms per clip at each precision."""
    figure = new_figure(11.0, 4.2)
    by_cost, by_time = figure.subplots(1, 2)
    archs = list(dict.fromkeys(p["arch"] for p in points))
    for point in points:
        color = FALLBACK_COLORS[archs.index(point["arch"]) % len(FALLBACK_COLORS)]
        label = f"{point['arch']} {point['stream'].upper()}"
        if point.get("gmacs"):
            by_cost.errorbar(point["gmacs"], point["top1"], yerr=point["top1_std"], fmt="o",
                             color=color, capsize=3, label=label,
                             mfc="none" if point["stream"] == "rgb" else color)
        for precision in PRECISIONS:
            if f"ms_{precision}" in point and point["stream"] == "mars":
                by_time.plot(point[f"ms_{precision}"], point["top1"], _MARKERS[precision],
                             color=color, label=f"{point['arch']} {precision}")
    by_cost.set_xscale("log")
    by_cost.set(xlabel="GMACs per clip (trained clip size)", ylabel="test top-1 (%)",
                title="Accuracy vs cost")
    by_time.set(xlabel="CPU ms per clip (batch 1, one thread)", ylabel="MARS test top-1 (%)",
                title="Accuracy vs latency (o eager, s fp32, ^ bf16, D int8)")
    by_time.set_xscale("log")
    for axes in (by_cost, by_time):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=6)
    return save_figure(figure, path)
