"""Writing figures and the numbers behind them: every analysis leaves a PNG and a JSON.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot, so no
GUI backend and no global figure state): ``Figure.savefig`` renders with Agg.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from mars_action.files import write_atomic

# One colour per stream, the same in every figure.
STREAM_COLORS = {
    "rgb": "#1f77b4",
    "flow": "#ff7f0e",
    "mers": "#2ca02c",
    "mars": "#d62728",
}
FALLBACK_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def stream_color(name: str, index: int = 0) -> str:
    """The stream's colour; fusions and unknown names cycle through the others."""
    return STREAM_COLORS.get(name.lower(), FALLBACK_COLORS[index % len(FALLBACK_COLORS)])


def new_figure(width: float = 6.4, height: float = 4.0) -> Figure:
    """A figure without pyplot's global state, so plots are safe in threads and servers."""
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Render to PNG: to a temp name, then renamed, so a PNG on disk is always whole."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return write_atomic(path, buffer.getvalue())
