"""Frame pairs with known flow, and end-point errors, to judge flow without a benchmark.

A textured image I1 and a field u give ``I0(x) = I1(x + u(x))`` (cubic remap), so the
true flow from I0 to I1 is u in OpenCV's convention. Fields: a translation, a
rotation about the centre and a smooth random field, each a few pixels, inside what
TV-L1 with OpenCV's defaults can recover (its coarsest level is 0.41x).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

FIELDS = ("translation", "rotation", "smooth")
EPE_BINS = (0.0, 1.0, 2.0, 4.0, 8.0, math.inf)


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W) uint8 texture with structure at several scales (blurred noise octaves)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width), np.float64)
    for sigma, weight in ((1.0, 0.5), (3.0, 1.0), (8.0, 1.5)):
        noise = rng.standard_normal((height, width))
        image += weight * cv2.GaussianBlur(noise, (0, 0), sigma) * sigma
    image = (image - image.min()) / max(np.ptp(image), 1e-9)
    return np.round(20 + image * 215).astype(np.uint8)


def flow_field(kind: str, height: int, width: int, magnitude: float = 3.0, seed: int = 0):
    """A known field (H, W, 2) float32 of the given kind, up to ``magnitude`` px."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    if kind == "translation":
        angle = 0.6
        field = np.stack(
            [np.full_like(xs, math.cos(angle)), np.full_like(xs, -math.sin(angle))], -1
        )
        field *= magnitude * 0.8
    elif kind == "rotation":
        cy, cx = (height - 1) / 2, (width - 1) / 2
        theta = magnitude / math.hypot(cx, cy)  # the corners move by ``magnitude``
        dx, dy = xs - cx, ys - cy
        field = np.stack(
            [
                math.cos(theta) * dx - math.sin(theta) * dy - dx,
                math.sin(theta) * dx + math.cos(theta) * dy - dy,
            ],
            -1,
        )
    elif kind == "smooth":
        rng = np.random.default_rng(seed + 1)
        sigma = max(height, width) / 8
        field = np.stack(
            [cv2.GaussianBlur(rng.standard_normal((height, width)), (0, 0), sigma) for _ in "xy"],
            -1,
        )
        field *= magnitude / max(np.abs(field).max(), 1e-9)
    else:
        raise ValueError(f"unknown field {kind!r}; choose from {FIELDS}")
    return field.astype(np.float32)


def warp_backward(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    """``I0(x) = image(x + field(x))``: cubic remap, mirrored border, rounded to uint8."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    warped = cv2.remap(
        image.astype(np.float32),
        xs + field[..., 0],
        ys + field[..., 1],
        cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    return np.clip(np.round(warped), 0, 255).astype(np.uint8)


def synthetic_pair(kind: str, height: int, width: int, magnitude: float = 3.0, seed: int = 0):
    """(frames (2, H, W, 3) uint8 = [I0, I1], true flow (H, W, 2) float32 from I0 to I1)."""
    image1 = texture(height, width, seed)
    field = flow_field(kind, height, width, magnitude, seed)
    image0 = warp_backward(image1, field)
    frames = np.repeat(np.stack([image0, image1])[..., None], 3, axis=-1)
    return frames, field


def endpoint_error(flow: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel Euclidean distance between two (..., 2) fields."""
    return np.linalg.norm(flow.astype(np.float64) - truth, axis=-1)


def epe_summary(flow: np.ndarray, truth: np.ndarray, margin: int = 16) -> dict[str, float]:
    """Mean EPE overall, in the interior (``margin`` px from the border) and binned by |truth|."""
    error = endpoint_error(flow, truth)
    inner = error[margin:-margin, margin:-margin] if margin else error
    summary = {"epe": float(error.mean()), "epe_interior": float(inner.mean())}
    speed = np.linalg.norm(truth, axis=-1)
    for low, high in zip(EPE_BINS[:-1], EPE_BINS[1:], strict=True):
        chosen = (speed >= low) & (speed < high)
        if chosen.any():
            name = f"epe_{low:g}-{high:g}px" if math.isfinite(high) else f"epe_{low:g}+px"
            summary[name] = float(error[chosen].mean())
    return summary
