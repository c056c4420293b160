"""Per-epoch records: ``metrics.jsonl``, TensorBoard when installed, and the curves PNG.

A record is flat: ``epoch`` (1-based), ``phase``, ``lr`` (one value per param
group), ``train_<part>`` and ``val_<part>`` for the parts ``loss``, ``ce``, ``mse``,
``alpha_mse`` (distillation only) and ``acc``, plus ``train_clips_per_s`` and
``time_s``. The run state keeps the same records, so a resumed run rewrites the
file from its checkpoint and never duplicates or loses an epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class MetricsLog:
    """Writes records to ``metrics.jsonl`` (and TensorBoard event files if available)."""

    def __init__(self, run_dir: Path, history: list[dict[str, Any]]):
        self.path = run_dir / "metrics.jsonl"
        self.path.write_text("".join(json.dumps(r) + "\n" for r in history))
        self.board = _tensorboard(run_dir / "tensorboard")

    def append(self, record: dict[str, Any]) -> None:
        """Write one epoch's record at once (a crash loses at most the running epoch)."""
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")
        if self.board is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self.board.add_scalar(key.replace("_", "/", 1), value, record["epoch"])
            for index, lr in enumerate(record["lr"]):
                self.board.add_scalar(f"lr/group{index}", lr, record["epoch"])
            self.board.flush()

    def close(self) -> None:
        """Flush and close TensorBoard's event file, so that the last epoch is on disk."""
        if self.board is not None:
            self.board.close()


def _tensorboard(folder: Path):
    """A SummaryWriter, or None: TensorBoard is optional."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))


def plot_curves(history: list[dict[str, Any]], path: Path, title: str = "") -> Path | None:
    """Loss parts (left) and accuracy (right) per epoch, as in Fig. 4c of the paper;
    ``title`` names the stream and run (several runs' figures side by side look alike)."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    fig, (losses, accuracy) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (
        ("train_ce", "cross-entropy"),
        ("train_alpha_mse", "alpha x MSE"),
        ("train_loss", "train loss"),
        ("val_loss", "val loss"),
    ):
        _plot(losses, history, epochs, key, label)
    for key, label in (("train_acc", "train accuracy"), ("val_acc", "val accuracy")):
        _plot(accuracy, history, epochs, key, label)
    losses.set(xlabel="epoch", ylabel="loss", title="losses")
    if all(v > 0 for line in losses.get_lines() for v in line.get_ydata()):
        losses.set_yscale("log")  # validation loss can start orders of magnitude higher
    accuracy.set(xlabel="epoch", ylabel="clip accuracy", title="accuracy", ylim=(0, 1))
    for axis in (losses, accuracy):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend(loc="best")
        axis.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot(axis, history, epochs, key, label) -> None:
    points = [(e, r[key]) for e, r in zip(epochs, history, strict=True) if r.get(key) is not None]
    if points:
        axis.plot(*zip(*points, strict=True), marker="o", markersize=3, label=label)
