"""OpenCV flow methods: Dual TV-L1 (the paper's, and the reference) and Farneback.

Both take consecutive grayscale frames and return flow i from frame i to frame
i + 1 in OpenCV's convention ``I0(x) ~ I1(x + u(x))``.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

# OpenCV's sample settings: cheap, smooth, reasonable on video.
FARNEBACK = dict(
    pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0
)


def to_gray(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) RGB or (N, H, W[, 1]) gray uint8 -> (N, H, W) uint8 gray (OpenCV's weights)."""
    frames = np.asarray(frames)
    if frames.ndim == 4 and frames.shape[-1] == 3:
        return np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames])
    if frames.ndim == 4 and frames.shape[-1] == 1:
        return frames[..., 0]
    if frames.ndim == 3:
        return frames
    raise ValueError(f"frames must be (N, H, W, 3|1) or (N, H, W), got shape {frames.shape}")


@lru_cache(maxsize=4)
def tvl1_instance(size: tuple[int, int]):
    """A ``DualTVL1OpticalFlow`` with OpenCV's defaults for frames of ``size`` (H, W).

    One instance per frame size, reused for every pair of that size: OpenCV lowers the
    instance's number of scales in place when an image is too small for all five, so an
    instance that once saw a small frame computes every later, larger one with a
    shallower pyramid (up to 2.8 px off on real frames after a 16x16 pair).
    """
    return cv2.optflow.DualTVL1OpticalFlow_create()


def _pairwise(frames: np.ndarray, solve) -> np.ndarray:
    gray = to_gray(frames)
    if len(gray) < 2:
        return np.zeros((0, *gray.shape[1:3], 2), np.float32)
    return np.stack([solve(gray[i], gray[i + 1]) for i in range(len(gray) - 1)]).astype(np.float32)


def tvl1(frames: np.ndarray) -> np.ndarray:
    """OpenCV Dual TV-L1 with the default parameters: (N, H, W, C) -> (N-1, H, W, 2) float32."""
    return _pairwise(frames, lambda a, b: tvl1_instance(a.shape).calc(a, b, None))


def farneback(frames: np.ndarray) -> np.ndarray:
    """OpenCV Farneback (the cheap baseline): (N, H, W, C) -> (N-1, H, W, 2) float32."""
    return _pairwise(frames, lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, **FARNEBACK))
