"""Figure 5: the classes where MARS gains most and least over RGB, with Flow beside.

Per-class top-1 of each stream; classes ranked by MARS minus RGB; the k at each
end are drawn as grouped bars with the difference in parentheses, as the paper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mars_action.evaluation.fusion import align, stream_title
from mars_action.evaluation.metrics import per_class_accuracy
from mars_action.evaluation.plots import new_figure, save_figure, stream_color
from mars_action.evaluation.scores import VideoScores


def classwise_comparison(
    streams: dict[str, VideoScores], k: int = 3, reference: str = "rgb", target: str = "mars"
) -> dict[str, Any]:
    """Per-class accuracies and the k classes with the largest and smallest target - reference.

    ``streams`` maps names to results and must contain ``reference`` and ``target``;
    other streams (Flow) are carried along for the bars. Classes without videos
    are left out.
    """
    names = list(streams)
    aligned = dict(zip(names, align([streams[n] for n in names], names), strict=True))
    first = aligned[names[0]]
    per_class = {
        n: per_class_accuracy(r.scores, r.labels, r.num_classes) for n, r in aligned.items()
    }
    present = np.flatnonzero(~np.isnan(per_class[reference]))
    difference = per_class[target][present] - per_class[reference][present]
    order = present[np.argsort(-difference, kind="stable")]
    k = min(k, len(order) // 2) if len(order) > 1 else len(order)
    chosen = {"top": order[:k].tolist(), "bottom": order[len(order) - k :].tolist()}

    def entry(index: int) -> dict[str, Any]:
        row = {"class": first.class_names[index], "index": int(index)}
        row.update({n: float(per_class[n][index]) for n in names})
        row["difference"] = float(per_class[target][index] - per_class[reference][index])
        return row

    return {
        "reference": reference,
        "target": target,
        "streams": names,
        "top": [entry(i) for i in chosen["top"]],
        "bottom": [entry(i) for i in chosen["bottom"]],
        "all": [entry(i) for i in order.tolist()],
    }


def plot_classwise(comparison: dict[str, Any], path: str | Path) -> Path:
    """Horizontal grouped bars: top-k then bottom-k classes, one bar per stream."""
    rows = comparison["top"] + comparison["bottom"]
    names = comparison["streams"]
    figure = new_figure(7.0, 1.0 + 0.22 * len(rows) * len(names))
    axes = figure.add_subplot()
    height = 0.8 / len(names)
    y = np.arange(len(rows))[::-1].astype(float)
    for s, name in enumerate(names):
        values = [row[name] for row in rows]
        offset = (len(names) - 1) / 2 - s
        axes.barh(y + offset * height, values, height, color=stream_color(name, s),
                  label=stream_title([name]))
    labels = [f"{row['class']} ({row['difference']:+.1f})" for row in rows]
    axes.set_yticks(y, labels, fontsize=8)
    if comparison["top"] and comparison["bottom"]:
        axes.axhline(y[len(comparison["top"]) - 1] - 0.5, color="grey", lw=0.8, ls="--")
    axes.set_xlabel("Top-1 accuracy per class (%)")
    title = f"Top and bottom {len(comparison['top'])} classes by "
    title += f"{stream_title([comparison['target']])} - {stream_title([comparison['reference']])}"
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="lower right")
    return save_figure(figure, path)
