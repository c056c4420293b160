"""The motion-transfer study's tables: pooled test top-1, transfer, margins against each
control with a paired sign test, per-group accuracy and validation accuracy, gathered from
the runs' score files (``run.py gather``), and their markdown. Kept apart from ``run.py``
(which trains and tests) so the frontier benchmark can reuse the statistics alone.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from mars_action.evaluation.transfer import transfer


def gather(work: Path, streams: dict[str, tuple], control: dict[str, tuple]) -> dict[str, Any]:
    """Per dataset: pooled test top-1 per stream and run, mean +- std over runs, transfer,
    per-group accuracy (UCF101), validation accuracy and training accuracy."""
    results: dict[str, Any] = {"streams": {k: {"kind": v[0], "from_rgb": v[1] == "rgb",
                                               "start": v[1], "distill": v[2]}
                                           for k, v in streams.items()}, "datasets": {}}
    for dataset in ("ucf101", "synthetic"):
        runs = sorted(p for p in (work / dataset).glob("split*-seed*") if p.is_dir())
        data = _gather_dataset(dataset, runs, streams, control) if runs else None
        if data and data["runs"]:
            results["datasets"][dataset] = data
    return results


def _gather_dataset(dataset: str, runs: list[Path], streams: dict[str, tuple],
                    control: dict[str, tuple]) -> dict[str, Any]:
    """Runs where Flow and RGB are tested count; a stream's numbers use those of its runs."""
    complete = [r for r in runs if all((r / "scores" / f"{n}.json").is_file()
                                       for n in ("rgb", "flow"))]
    table, hits, chance = {}, {}, None
    for name in streams:
        done = [r for r in complete if (r / "scores" / f"{name}.json").is_file()]
        if not done:
            continue
        per_run, videos = {}, {}
        for run in done:
            scores = json.loads((run / "scores" / f"{name}.json").read_text())
            chance = scores["chance"]
            per_run[run.name] = {k: 100.0 * float(np.mean(list(scores[k].values())))
                                 for k in ("normal", "static")}
            videos.update({f"{run.name}/{v}": hit for v, hit in scores["normal"].items()})
        trained = [json.loads((r / "runs" / name / "done.json").read_text()) for r in done]
        hits[name] = videos
        table[name] = {
            "test": _stats([v["normal"] for v in per_run.values()]),
            "static": _stats([v["static"] for v in per_run.values()]),
            "pooled_test": 100.0 * float(np.mean(list(videos.values()))),
            "videos": len(videos), "runs": per_run,
            "train_acc_last": _stats([100 * t["train_acc"] for t in trained]),
            "val_acc_last": _stats([100 * t["val_acc_last"] for t in trained
                                    if t["val_acc_last"] is not None]),
            "val_acc_last10": _stats([late_val(r / "runs" / name) for r in done]),
            "seconds": [t["seconds"] for t in trained],
        }
    for student, controls in control.items():
        for other in controls:
            if student in table and other in table:
                _margins(table[student], other, hits, student, first=other == controls[0])
    out = {"runs": [r.name for r in complete], "chance": chance, "table": table}
    if dataset == "ucf101":
        out["per_group"] = _per_group(hits)
    return out


def _margins(row: dict[str, Any], control: str, hits: dict[str, dict[str, int]],
             student: str, first: bool) -> None:
    """Transfer and margins of ``student`` against ``control`` on the runs both have; the
    main control's under ``control``/``vs_control``, every control's under ``vs``."""
    same = [r for r in row["runs"] if r in {k.split("/", 1)[0] for k in hits[control]}]
    pooled = {k: _pooled(hits[k], same) for k in ("rgb", "flow", student, control)}
    margin = {"runs": same, "vs_control": pooled[student] - pooled[control],
              "paired": paired(hits[student], hits[control], same)}
    row.setdefault("vs", {})[control] = margin
    if first:
        row["control"], row["control_runs"] = control, same
        row["transfer"] = transfer(pooled[student], pooled["rgb"], pooled["flow"])
        row["vs_control"], row["paired_vs_control"] = margin["vs_control"], margin["paired"]
        row["minus_flow"] = pooled[student] - pooled["flow"]


def paired(mine: dict[str, int], other: dict[str, int], runs: list[str]) -> dict[str, Any]:
    """Videos only ``mine`` gets right, only ``other`` does, and the exact two-sided sign
    test (McNemar) p-value: whether the difference is more than a few lucky videos."""
    keys = [k for k in mine if k.split("/", 1)[0] in runs and k in other]
    wins = sum(mine[k] and not other[k] for k in keys)
    losses = sum(other[k] and not mine[k] for k in keys)
    n = wins + losses
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n if n else 1.0
    return {"only_student": wins, "only_control": losses, "p_two_sided": min(1.0, 2 * tail)}


def late_val(run: Path, epochs: int = 10) -> float:
    """Validation accuracy (%) averaged over the last ``epochs`` epochs: ten looks at the
    held-out groups, less noisy than one (a validation video is 2-3 points here)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    values = [r["val_acc"] for r in records if r.get("val_acc") is not None][-epochs:]
    return 100.0 * float(np.mean(values))


def _pooled(videos: dict[str, int], runs: list[str]) -> float:
    """Top-1 (%) over every test video of ``runs`` (each UCF101 video once over the splits)."""
    kept = [hit for key, hit in videos.items() if key.split("/", 1)[0] in runs]
    return 100.0 * float(np.mean(kept))


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"mean": None, "std": None, "values": []}
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "values": values}


def _per_group(hits: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Top-1 per UCF101 group (g01..g21: different people and places), per stream."""
    out: dict[str, dict[str, float]] = {}
    for name, videos in hits.items():
        groups: dict[str, list[int]] = {}
        for key, hit in videos.items():
            group = key.rsplit("_g", 1)[1][:2]
            groups.setdefault(f"g{group}", []).append(hit)
        out[name] = {g: round(100.0 * float(np.mean(v)), 1) for g, v in sorted(groups.items())}
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Motion transfer on unseen people and places", ""]
    for dataset, data in results["datasets"].items():
        lines += [f"## {dataset} (runs: {', '.join(data['runs'])}; chance {data['chance']:.1f})",
                  "", "| Stream | Pooled test top-1 (videos) | Mean +- std over runs | Static "
                  "| Transfer | vs control | - Flow | Train acc (last) | Val acc (last) | Val acc "
                  "(last 10) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name in results["streams"]:
            row = data["table"].get(name)
            if row is None:
                continue
            lines.append(
                f"| {name} | {row['pooled_test']:.1f} ({row['videos']}) | {_cell(row['test'])} "
                f"| {_cell(row['static'])} | {_num(row.get('transfer'), '.2f')} | "
                f"{_num(row.get('vs_control'), '+.1f')} ({row.get('control', '-')}) | "
                f"{_num(row.get('minus_flow'), '+.1f')} | {_cell(row['train_acc_last'])} | "
                f"{_cell(row['val_acc_last'])} | {_cell(row['val_acc_last10'])} |")
        for name, row in data["table"].items():
            for control, margin in row.get("vs", {}).items():
                paired = margin["paired"]
                lines.append(f"\n{name} vs {control} on the same {len(margin['runs'])} run(s): "
                             f"{margin['vs_control']:+.1f} points; {paired['only_student']} "
                             f"videos only {name} gets right, {paired['only_control']} only "
                             f"{control}; sign test p = {paired['p_two_sided']:.3f}.")
        if "per_group" in data:
            groups = sorted({g for v in data["per_group"].values() for g in v})
            lines += ["", "Per test group (top-1 %; each group is tested in one split):", "",
                      "| Stream | " + " | ".join(groups) + " |",
                      "|---|" + "---:|" * len(groups)]
            for name, values in data["per_group"].items():
                lines.append(f"| {name} | " + " | ".join(
                    f"{values[g]:.0f}" if g in values else "-" for g in groups) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(entry: dict[str, Any]) -> str:
    return "-" if entry["mean"] is None else f"{entry['mean']:.1f} +- {entry['std']:.1f}"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)
