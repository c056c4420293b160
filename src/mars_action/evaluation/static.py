"""Section 5.4, "impact of motion": evaluate on clips with the motion taken out.

An RGB-input stream (RGB, MERS, MARS) sees each clip's middle frame repeated; a
Flow stream sees the flow of such a clip, which is zero everywhere: the code that
0 px quantizes to (see :mod:`mars_action.flow.quantize`), normalised as the
checkpoint's inputs are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mars_action.evaluation.evaluate import ClipTransform
from mars_action.evaluation.fusion import stream_title
from mars_action.evaluation.metrics import summarize
from mars_action.evaluation.plots import new_figure, save_figure, stream_color
from mars_action.evaluation.scores import VideoScores
from mars_action.flow.quantize import quantize
from mars_action.models.checkpoint import CheckpointMeta


def repeat_middle_frame(clips: torch.Tensor) -> torch.Tensor:
    """(K, C, T, H, W) -> the same shape, every frame the clip's middle frame (T // 2)."""
    middle = clips.shape[2] // 2
    return clips[:, :, middle : middle + 1].expand_as(clips).clone()


def zero_flow(clips: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(K, 2, T, H, W) -> normalised 0 px flow: (code(0 px) - mean) / std per channel."""
    code = float(quantize(np.zeros(1, dtype=np.float32))[0])
    values = (code - torch.tensor(mean, dtype=clips.dtype)) / torch.tensor(std, dtype=clips.dtype)
    return values.reshape(1, -1, 1, 1, 1).expand_as(clips).clone()


def static_transform(meta: CheckpointMeta) -> ClipTransform:
    """The static-clip transform for a checkpoint's input modality."""
    if meta.modality == "flow":
        return lambda clips: zero_flow(clips, meta.mean, meta.std)
    return repeat_middle_frame


def static_summary(pairs: dict[str, tuple[VideoScores, VideoScores]]) -> dict[str, dict]:
    """Per stream: top-1 and mean class accuracy of normal and static clips."""
    table = {}
    for name, (normal, static) in pairs.items():
        a, b = summarize(normal), summarize(static)
        table[name] = {
            "normal_top1": a["top1"],
            "static_top1": b["top1"],
            "drop": a["top1"] - b["top1"],
            "normal_mean_class_accuracy": a["mean_class_accuracy"],
            "static_mean_class_accuracy": b["mean_class_accuracy"],
            "num_videos": a["num_videos"],
            "chance_top1": 100.0 / max(len(normal.class_names), 1),
        }
    return table


def plot_static(table: dict[str, dict], path: str) -> None:
    """Grouped bars: accuracy on normal and on static clips, one group per stream, each
    bar labelled with its value, and the chance level (a static Flow clip sits on it)."""
    figure = new_figure(1.6 + 1.2 * len(table), 3.6)
    axes = figure.add_subplot()
    names = list(table)
    x = np.arange(len(names))
    normal = [table[n]["normal_top1"] for n in names]
    static = [table[n]["static_top1"] for n in names]
    colors = [stream_color(n, i) for i, n in enumerate(names)]
    axes.bar(x - 0.2, normal, 0.4, color=colors, label="normal clips")
    axes.bar(x + 0.2, static, 0.4, color=colors, alpha=0.45, hatch="//", label="static clips")
    for xi, value in [*zip(x - 0.2, normal, strict=True), *zip(x + 0.2, static, strict=True)]:
        axes.annotate(f"{value:.1f}%", (xi, value), ha="center", va="bottom", fontsize=8)
    chance = max((row.get("chance_top1", 0.0) for row in table.values()), default=0.0)
    if chance:
        axes.axhline(chance, color="#555", linestyle=":", linewidth=1,
                     label=f"chance ({chance:.1f}%)")
    axes.set_xticks(x, [stream_title([n]) for n in names])
    axes.margins(y=0.12)  # room for the labels above the bars
    axes.set_ylabel("Top-1 accuracy (%)")
    axes.set_title("Accuracy on static clips (middle frame repeated)")
    axes.legend(fontsize=8)
    save_figure(figure, path)
