"""Video-level metrics on score arrays: top-k, per-class and mean class accuracy.

Ties are broken as a stable descending sort would: among equal scores the lower
class index ranks first. An all-equal score row (an untrained or broken model)
therefore counts as class 0, never as "right for every class".
All functions return percentages, as the paper's tables do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mars_action.evaluation.scores import VideoScores


def true_class_rank(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) 0-based rank of each video's true class in its score row (N, C)."""
    labels = np.asarray(labels, dtype=np.int64)
    true = scores[np.arange(len(labels)), labels][:, None]  # (N, 1)
    columns = np.arange(scores.shape[1])[None, :]  # (1, C)
    ahead = (scores > true) | ((scores == true) & (columns < labels[:, None]))
    return ahead.sum(axis=1)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Percent of videos whose true class is among the ``k`` highest scores."""
    if len(labels) == 0:
        return float("nan")
    return float(100.0 * np.mean(true_class_rank(scores, labels) < k))


def per_class_accuracy(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) top-1 percent per class; NaN for a class without videos."""
    labels = np.asarray(labels, dtype=np.int64)
    correct = np.argmax(scores, axis=1) == labels  # argmax takes the first maximum
    totals = np.bincount(labels, minlength=num_classes).astype(np.float64)
    hits = np.bincount(labels, weights=correct, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, 100.0 * hits / totals, np.nan)


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Mean of the per-class accuracies over the classes that have videos."""
    per_class = per_class_accuracy(scores, labels, num_classes)
    present = per_class[~np.isnan(per_class)]
    return float(present.mean()) if present.size else float("nan")


def clip_accuracy(clip_hits: np.ndarray, clip_counts: np.ndarray) -> float:
    """Percent of single clips classified right (before averaging over a video)."""
    total = int(np.sum(clip_counts))
    return float(100.0 * np.sum(clip_hits) / total) if total else float("nan")


def summarize(result: VideoScores) -> dict[str, Any]:
    """The numbers a summary JSON and the tables show, as plain floats (percent)."""
    scores, labels = result.scores, result.labels
    summary: dict[str, Any] = {
        "stream": result.stream,
        "aggregate": result.aggregate,
        "num_videos": result.num_videos,
        "num_classes": result.num_classes,
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, min(5, result.num_classes)),
        "mean_class_accuracy": mean_class_accuracy(scores, labels, result.num_classes),
    }
    if result.clip_hits is not None and result.clip_counts is not None:
        summary["clip_top1"] = clip_accuracy(result.clip_hits, result.clip_counts)
        summary["num_clips"] = int(np.sum(result.clip_counts))
    for key, values in result.times.items():
        summary[f"seconds_per_video_{key}"] = float(np.mean(values)) if len(values) else 0.0
    return summary
