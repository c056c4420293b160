"""Test-time preprocessing, taken whole from a checkpoint so a user cannot mismatch it.

The released code tests on frames stored at 25 fps with a short side of 256, scales
each frame so its short side equals the crop size, takes the centre crop, and
subtracts the ActivityNet mean (std 1). :class:`Preprocessing` holds those numbers
for one checkpoint; frames are cropped one by one as they are decoded (so a long
video never sits in memory at full size) and normalised on the model's device.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import torch

from mars_action.models.checkpoint import CheckpointMeta


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How frames become clips for one checkpoint (see the module docstring)."""

    fps: float
    short_side: int
    crop_size: int
    clip_len: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_meta(cls, meta: CheckpointMeta) -> Preprocessing:
        return cls(
            fps=float(meta.fps),
            short_side=int(meta.short_side),
            crop_size=int(meta.crop_size),
            clip_len=int(meta.clip_len),
            mean=tuple(float(v) for v in meta.mean),
            std=tuple(float(v) for v in meta.std),
        )

    def crop_frame(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 at any size -> (crop, crop, 3) uint8.

        The frame is first brought to the stored short side (a no-op for frames
        decoded with ``short_side=self.short_side``), so arrays and files take the
        same path, then scaled to the crop size and centre-cropped.
        """
        frame = resize_short_side(frame, self.short_side)
        return center_crop(resize_short_side(frame, self.crop_size), self.crop_size)

    def normalize(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T, S, S, 3) uint8 -> (B, 3, T, S, S) float32 minus mean, over std."""
        x = clips.permute(0, 4, 1, 2, 3).float()  # (B, 3, T, S, S)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1, 1)
        return (x - mean) / std


def resize_short_side(frame: np.ndarray, short_side: int) -> np.ndarray:
    """Scale (H, W, C) so min(H, W) == ``short_side``, keeping the aspect ratio.

    Area averaging when shrinking (no aliasing, close to PIL's filtered resize the
    released code used), bilinear when enlarging.
    """
    height, width = frame.shape[:2]
    if min(height, width) == short_side:
        return frame
    scale = short_side / min(height, width)
    size = (max(short_side, round(width * scale)), max(short_side, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(frame, size, interpolation=interpolation)


def center_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` window of (H, W, C), H and W >= size."""
    height, width = frame.shape[:2]
    top, left = (height - size) // 2, (width - size) // 2
    return frame[top : top + size, left : left + size]


def loop_frames(frames: np.ndarray, clip_len: int) -> np.ndarray:
    """(N, ...) with N < clip_len -> (clip_len, ...) repeating the frames in order."""
    return frames[np.arange(clip_len) % len(frames)]
