"""Figure 4c: cross-entropy and alpha x MSE per epoch, with train and validation accuracy.

Reads a run folder's ``metrics.jsonl`` (one flat record per epoch, written by the
training stage: ``epoch``, ``train_ce``, ``train_alpha_mse``, ``train_acc``,
``val_acc``, ...; accuracies are fractions). The paper's point is visible here:
with alpha = 50 the two loss terms are of the same size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from mars_action.errors import MarsError
from mars_action.evaluation.fusion import stream_title
from mars_action.evaluation.plots import new_figure, save_figure

LOSS_SERIES = (("train_ce", "Cross entropy loss"), ("train_alpha_mse", "α × MSE loss"))
ACCURACY_SERIES = (("train_acc", "Train accuracy"), ("val_acc", "Validation accuracy"))
COLORS = {"train_ce": "#1f77b4", "train_alpha_mse": "#d62728", "train_acc": "#2ca02c",
          "val_acc": "#9467bd"}


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of a run folder, in order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise MarsError(f"{run_dir}: not a run folder (no metrics.jsonl)")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise MarsError(f"{path}:{number}: not a JSON record ({error.msg})") from None
    if not records:
        raise MarsError(f"{path}: no epochs recorded yet")
    return records


def run_title(run_dir: str | Path) -> str:
    """``MARS stream: <run>``: which stream a run trained (its ``config.yaml``), and its name."""
    run_dir = Path(run_dir).resolve()
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    stream = config.get("stream") if isinstance(config, dict) else None
    return f"{stream_title([stream])} stream: {run_dir.name}" if stream else run_dir.name


def curve_series(records: list[dict[str, Any]]) -> dict[str, list]:
    """The plotted numbers: epochs and each series (None where an epoch lacks it).

    Accuracies are given in percent.
    """
    series: dict[str, list] = {"epoch": [r["epoch"] for r in records]}
    for key, _ in LOSS_SERIES:
        series[key] = [r.get(key) for r in records]
    for key, _ in ACCURACY_SERIES:
        series[key] = [None if r.get(key) is None else 100.0 * r[key] for r in records]
    return series


def plot_curves(series: dict[str, list], path: str | Path, title: str = "") -> Path:
    """Losses on the left axis, accuracies (%) on the right, epochs below (as Fig. 4c)."""
    figure = new_figure(7.0, 4.0)
    losses = figure.add_subplot()
    accuracy = losses.twinx()
    handles = []
    for axes, specs, style in ((losses, LOSS_SERIES, "-"), (accuracy, ACCURACY_SERIES, "--")):
        for key, label in specs:
            points = [(e, v) for e, v in zip(series["epoch"], series[key], strict=True)
                      if v is not None]
            if points:
                handles += axes.plot(*zip(*points, strict=True), style, color=COLORS[key],
                                     label=label)
    if not handles:
        raise MarsError(f"{title or 'run'}: metrics.jsonl has none of the plotted quantities")
    losses.set_xlabel("Epoch")
    losses.set_ylabel("Loss")
    accuracy.set_ylabel("Accuracy (%)")
    losses.set_title(title or "Losses and accuracies per epoch", fontsize=10)
    losses.legend(handles=handles, fontsize=8, loc="center right")
    losses.grid(alpha=0.3)
    return save_figure(figure, path)
