"""Clip samplers: which frame indices make a clip (how to read them is the source's job).

Every sampler is a small callable ``sampler(num_frames, rng) -> indices`` with
0-based frame indices. Single-clip samplers return ``(D,)``; multi-clip samplers
return ``(K, D)``. A clip spans ``(D - 1) * stride + 1`` frames; a video shorter
than that is looped (index ``i`` reads frame ``i mod num_frames``), as the
released code did, so every video gives full clips.
"""

from __future__ import annotations

import numpy as np


def clip_span(clip_len: int, stride: int = 1) -> int:
    """Number of source frames one clip covers."""
    return (clip_len - 1) * stride + 1


def clip_indices(
    start: int | np.ndarray, num_frames: int, clip_len: int, stride: int = 1
) -> np.ndarray:
    """Indices of the clip(s) starting at ``start``, looping past the end of the video.

    A scalar start gives (D,); a (K,) array of starts gives (K, D).
    """
    if num_frames < 1:
        raise ValueError("a clip needs a video with at least one frame")
    offsets = np.arange(clip_len) * stride  # (D,)
    return (np.asarray(start, dtype=np.int64)[..., None] + offsets) % num_frames


def random_start(num_frames: int, clip_len: int, rng: np.random.Generator, stride: int = 1) -> int:
    """A uniformly random start such that the clip fits; 0 when the video is too short."""
    last = num_frames - clip_span(clip_len, stride)
    return int(rng.integers(last + 1)) if last > 0 else 0


def all_clip_starts(num_frames: int, clip_len: int, stride: int = 1) -> np.ndarray:
    """Starts of every non-overlapping clip (the paper's test protocol).

    The tail shorter than a clip is dropped; a video shorter than one clip gives
    one looped clip at 0.
    """
    span = clip_span(clip_len, stride)
    return np.arange(max(1, num_frames // span)) * span


def even_clip_starts(num_frames: int, clip_len: int, num_clips: int, stride: int = 1) -> np.ndarray:
    """Starts of ``num_clips`` clips spread evenly (centres equally spaced); may overlap."""
    last = max(0, num_frames - clip_span(clip_len, stride))
    return np.round((np.arange(num_clips) + 0.5) / num_clips * last).astype(np.int64)


class RandomClip:
    """Training: one clip at a random start, D frames with ``stride``, looped if short."""

    multi_clip = False

    def __init__(self, clip_len: int = 16, stride: int = 1) -> None:
        self.clip_len, self.stride = clip_len, stride

    def __call__(self, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        start = random_start(num_frames, self.clip_len, rng, self.stride)
        return clip_indices(start, num_frames, self.clip_len, self.stride)  # (D,)


class CenterClip:
    """Validation: the one clip in the middle of the video (deterministic)."""

    multi_clip = False

    def __init__(self, clip_len: int = 16, stride: int = 1) -> None:
        self.clip_len, self.stride = clip_len, stride

    def __call__(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        (start,) = even_clip_starts(num_frames, self.clip_len, 1, self.stride)
        return clip_indices(start, num_frames, self.clip_len, self.stride)  # (D,)


class AllClips:
    """Test: every non-overlapping clip of the video (at least one)."""

    multi_clip = True

    def __init__(self, clip_len: int = 16, stride: int = 1) -> None:
        self.clip_len, self.stride = clip_len, stride

    def __call__(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        starts = all_clip_starts(num_frames, self.clip_len, self.stride)
        return clip_indices(starts, num_frames, self.clip_len, self.stride)  # (K, D)


class EvenClips:
    """Test: ``num_clips`` evenly spaced clips (cheaper than all clips on long videos)."""

    multi_clip = True

    def __init__(self, clip_len: int = 16, num_clips: int = 10, stride: int = 1) -> None:
        self.clip_len, self.num_clips, self.stride = clip_len, num_clips, stride

    def __call__(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        starts = even_clip_starts(num_frames, self.clip_len, self.num_clips, self.stride)
        return clip_indices(starts, num_frames, self.clip_len, self.stride)  # (K, D)
