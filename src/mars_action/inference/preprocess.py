"""Test-time preprocessing, taken whole from a checkpoint so a user cannot mismatch it.

The released code tests on frames stored at 25 fps with a short side of 256, scales
each frame so its short side equals the crop size, takes the centre crop, and
subtracts the ActivityNet mean (std 1); the data stage's test transform does the
same and is reused here, so predictions match evaluation. :class:`Preprocessing`
holds those numbers for one checkpoint; frames are cropped one by one as they are
decoded (a long video never sits in memory at full size) and normalised on the
model's device.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mars_action.data.sampling import clip_indices
from mars_action.data.transforms import corner_box, crop_resize
from mars_action.models.checkpoint import CheckpointMeta
from mars_action.video.decode import resize_short_side


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
        """The checkpoint's own frame rate, size, crop, clip length and normalisation, so
        that inference sees frames as the network was trained on them."""
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
        same path; then the data stage's test crop: the centre square of the short
        side, resized to the crop size (as evaluation does).
        """
        frame = resize_short_side(frame, self.short_side)[None]  # (1, H, W, 3)
        box = corner_box(frame.shape[1], frame.shape[2], 1.0, "c")
        return crop_resize(frame, box, self.crop_size)[0]

    def normalize(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T, S, S, 3) uint8 -> (B, 3, T, S, S) float32 minus mean, over std."""
        x = clips.permute(0, 4, 1, 2, 3).float()  # (B, 3, T, S, S)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1, 1)
        return (x - mean) / std


@dataclasses.dataclass
class Clip:
    """``clip_len`` cropped frames (T, S, S, 3) uint8 and their span in seconds."""

    frames: np.ndarray
    start: float
    end: float


class ClipAssembler:
    """Groups cropped frames into the clips the paper tests on.

    Every non-overlapping ``clip_len`` run of frames is a clip and a tail shorter than
    a clip is dropped; a video with fewer frames than one clip gives one clip of its
    frames looped, as training does, and says so in ``looped``.
    """

    def __init__(self, clip_len: int, fps: float):
        self.clip_len = clip_len
        self.frame_s = 1.0 / fps
        self.num_frames = 0
        self.num_clips = 0
        self.looped = False
        self._frames: list[np.ndarray] = []
        self._times: list[float] = []

    def add(self, timestamp: float, frame: np.ndarray) -> Clip | None:
        """Take one cropped frame; return a clip when this frame completes one."""
        self.num_frames += 1
        self._frames.append(frame)
        self._times.append(timestamp)
        if len(self._frames) < self.clip_len:
            return None
        return self._emit(np.stack(self._frames))

    def finish(self) -> Clip | None:
        """At the end of the video: the looped clip if no full clip was made."""
        if self.num_clips or not self._frames:
            return None
        self.looped = True
        looped = clip_indices(0, len(self._frames), self.clip_len)  # 0, 1, .., n-1, 0, 1, ..
        return self._emit(np.stack(self._frames)[looped])

    def _emit(self, frames: np.ndarray) -> Clip:
        clip = Clip(frames, self._times[0], self._times[-1] + self.frame_s)
        self._frames, self._times = [], []
        self.num_clips += 1
        return clip
