"""Flow <-> 8-bit codes, in one place, so extraction and the data loaders agree.

A flow component ``f`` (pixels) is clipped to ``[-BOUND, BOUND]`` and mapped
linearly to ``s = (f + BOUND) / (2 * BOUND) * 255`` in ``[0, 255]``. Two ways to
make that an integer code:

- ``"floor"`` (default): ``code = floor(s)``, exactly the released MARS code's
  ``uint8((clip(f, -20, 20) + 20) / 40 * 255)``. **0 px -> s = 127.5 -> code 127.**
  A code ``c`` stands for ``s`` in ``[c, c + 1)``; it dequantizes to the middle,
  ``f = (c + 0.5) * 40 / 255 - 20``, so code 127 -> exactly 0 px, and the error is
  at most half a step (40 / 255 / 2 = 0.078 px) inside the bound.
- ``"round"``: ``code = floor(s + 0.5)`` (dense_flow / denseflow style).
  0 px -> code 128 (127.5 rounds up). Dequantizes to ``f = c * 40 / 255 - 20``,
  so code 128 -> +0.078 px.

Dequantized values are clipped to ``[-BOUND, BOUND]`` (code 255 in floor mode is
only produced by ``f >= 20``). The loaders of the paper subtract 127.5 from the
codes instead of dequantizing; with floor codes that leaves a -0.5 code offset
(-0.078 px), which is what the released models were trained with.
"""

from __future__ import annotations

import numpy as np

BOUND = 20.0
MODES = ("floor", "round")


def quantize(flow: np.ndarray, mode: str = "floor", bound: float = BOUND) -> np.ndarray:
    """Float flow (any shape, px) -> uint8 codes of the same shape."""
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2.0 * bound))
    if mode == "floor":
        codes = np.floor(scaled)
    elif mode == "round":
        codes = np.floor(scaled + 0.5)
    else:
        raise ValueError(f"quantize mode must be one of {MODES}, got {mode!r}")
    return np.clip(codes, 0, 255).astype(np.uint8)


def dequantize(codes: np.ndarray, mode: str = "floor", bound: float = BOUND) -> np.ndarray:
    """uint8 codes -> float32 flow in px (the inverse of :func:`quantize` up to half a step)."""
    if mode not in MODES:
        raise ValueError(f"dequantize mode must be one of {MODES}, got {mode!r}")
    offset = 0.5 if mode == "floor" else 0.0
    step = 2.0 * bound / 255.0
    flow = (codes.astype(np.float32) + offset) * step - bound
    return np.clip(flow, -bound, bound).astype(np.float32)
