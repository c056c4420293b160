"""Figure 4b: MARS accuracy for several alphas, with RGB (alpha = 0) and Flow beside.

:func:`run_alpha_sweep` trains one run folder per alpha through the training API
(alpha 0 trains the RGB stream: the MARS loss with alpha 0 is the RGB loss, and
needs no teacher). :func:`run_accuracy` reads a run's accuracy back: video-level
top-1 of a score file inside the run folder when there is one (``mars eval ...
--out RUN/scores/test.npz``, the paper's number), else the best validation clip
accuracy from ``metrics.jsonl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mars_action.errors import MarsError
from mars_action.evaluation.curves import read_metrics
from mars_action.evaluation.metrics import topk_accuracy
from mars_action.evaluation.plots import new_figure, save_figure, stream_color
from mars_action.evaluation.scores import find_score_files, load_scores


def run_alpha_sweep(
    config_path: str | Path,
    alphas: Sequence[float],
    out_dir: str | Path,
    overrides: Sequence[str] = (),
) -> list[Path]:
    """Train the config once per alpha into ``out_dir/alpha_<a>``; returns the run folders.

    Resumable: a run folder with a ``last.pt`` continues where it stopped.
    """
    from mars_action.training import load_experiment, train

    runs = []
    for alpha in alphas:
        extra = ["stream=rgb"] if alpha == 0 else ["stream=mars", f"distill.alpha={alpha}"]
        config = load_experiment(config_path, [*overrides, *extra])
        config.name = f"{config.name}-alpha{alpha:g}"
        run_dir = Path(out_dir) / f"alpha_{alpha:g}"
        train(config, run_dir, resume=True)  # continues an interrupted run, starts a new one
        runs.append(run_dir)
    return runs


def run_accuracy(path: str | Path) -> dict[str, Any]:
    """Stream, alpha and top-1 (%) of a run folder, or of a score file given directly."""
    path = Path(path)
    if path.is_file():
        result = load_scores(path)
        return {"path": str(path), "stream": result.stream, "alpha": None,
                "top1": topk_accuracy(result.scores, result.labels, 1),
                "source": "video top-1 (score file)"}
    config = _run_config(path)
    stream = config.get("stream", "rgb")
    alpha = 0.0 if stream == "rgb" else float(config.get("distill", {}).get("alpha", 50.0))
    entry = {"path": str(path), "stream": stream, "alpha": alpha if stream != "flow" else None}
    paper = path / "scores" / "test.npz"  # mars eval's default for the paper's protocol
    scores = [paper] if paper.is_file() else find_score_files([path])
    if scores:
        result = load_scores(scores[0])
        entry.update(top1=topk_accuracy(result.scores, result.labels, 1),
                     source=f"video top-1 ({scores[0].relative_to(path)})")
        return entry
    values = [r["val_acc"] for r in read_metrics(path) if r.get("val_acc") is not None]
    if not values:
        raise MarsError(f"{path}: no validation accuracy in metrics.jsonl and no score file")
    entry.update(top1=100.0 * max(values), source="best validation clip accuracy")
    return entry


def _run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise MarsError(f"{run_dir}: not a run folder (no config.yaml)")
    return yaml.safe_load(path.read_text()) or {}


def plot_alpha_sweep(
    points: Sequence[dict[str, Any]], path: str | Path, flow: dict[str, Any] | None = None
) -> Path:
    """Accuracy per alpha on evenly spaced ticks: RGB (0), the alphas, then Flow."""
    points = sorted(points, key=lambda p: p["alpha"])
    labels = [("RGB (0)" if p["alpha"] == 0 else f"{p['alpha']:g}") for p in points]
    values = [p["top1"] for p in points]
    figure = new_figure(6.0, 3.8)
    axes = figure.add_subplot()
    x = np.arange(len(points))
    axes.plot(x, values, "-o", color=stream_color("mars"), label="MARS")
    if points and points[0]["alpha"] == 0:
        axes.plot([0], values[:1], "o", color=stream_color("rgb"), ms=9, label="RGB")
    if flow is not None:
        x = np.append(x, len(points))
        labels.append("Flow")
        axes.plot([len(points)], [flow["top1"]], "s", color=stream_color("flow"), ms=9,
                  label="Flow")
        values.append(flow["top1"])
    for xi, value in zip(x, values, strict=True):
        axes.annotate(f"{value:.1f}", (xi, value), xytext=(0, 6), textcoords="offset points",
                      ha="center", fontsize=8)
    axes.set_xticks(x, labels)
    axes.set_xlabel("α")
    axes.set_ylabel("Top-1 accuracy (%)")
    axes.set_title("Impact of α on MARS", fontsize=10)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return save_figure(figure, path)
