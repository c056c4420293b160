"""The Middlebury colour coding of flow fields (Baker et al. 2011): hue = direction,
saturation = speed, so a user can look at what was extracted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Hue segments of the wheel: red-yellow, yellow-green, green-cyan, cyan-blue,
# blue-magenta, magenta-red, sized by perceptual distance as in the Middlebury code.
_SEGMENTS = (15, 6, 4, 11, 13, 6)


def _ramp(count: int) -> np.ndarray:
    return np.floor(255 * np.arange(count) / count) / 255


def color_wheel() -> np.ndarray:
    """(55, 3) float RGB in [0, 1]: the wheel's colours, counter-clockwise from red."""
    ry, yg, gc, cb, bm, mr = _SEGMENTS
    parts = [
        (1, _ramp(ry), 0),
        (1 - _ramp(yg), 1, 0),
        (0, 1, _ramp(gc)),
        (0, 1 - _ramp(cb), 1),
        (_ramp(bm), 0, 1),
        (1, 0, 1 - _ramp(mr)),
    ]
    return np.concatenate([np.stack(np.broadcast_arrays(*part), -1) for part in parts])


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """(H, W, 2) flow -> (H, W, 3) uint8 RGB; speeds are divided by ``max_magnitude``.

    ``None`` normalises by the field's own largest speed. Speeds beyond 1 after
    normalisation are darkened (x 0.75), as in the reference code.
    """
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    radius = np.hypot(u, v)
    scale = max_magnitude if max_magnitude else max(float(radius.max()), 1e-9)
    radius = radius / scale
    wheel = color_wheel()
    count = len(wheel)
    position = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (count - 1)
    k0 = np.floor(position).astype(int)
    k1 = (k0 + 1) % count
    frac = (position - k0)[..., None]
    color = (1 - frac) * wheel[k0] + frac * wheel[k1]
    inside = (radius <= 1)[..., None]
    color = np.where(inside, 1 - radius[..., None] * (1 - color), color * 0.75)
    return np.floor(255 * color).astype(np.uint8)


def save_flow_figure(
    path: str | Path, rows: list[tuple[str, list[tuple[str, np.ndarray]]]], dpi: int = 100
) -> Path:
    """A grid PNG: one row per case, panels of images (H, W[, 3]) or flows (H, W, 2).

    Flows of one row share the scale of the row's first flow, so they compare.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(len(panels) for _, panels in rows)
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(2.6 * columns, 2.2 * len(rows)), squeeze=False
    )
    for axes_row, (title, panels) in zip(axes, rows, strict=True):
        flows = [panel for _, panel in panels if panel.ndim == 3 and panel.shape[-1] == 2]
        scale = float(np.hypot(flows[0][..., 0], flows[0][..., 1]).max()) if flows else None
        for axis, (name, panel) in zip(axes_row, panels, strict=False):
            is_flow = panel.ndim == 3 and panel.shape[-1] == 2
            axis.imshow(flow_to_color(panel, scale) if is_flow else panel, cmap="gray")
            axis.set_title(f"{title}: {name}" if axis is axes_row[0] else name, fontsize=8)
        for axis in axes_row:
            axis.axis("off")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
