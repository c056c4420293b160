"""Clip transforms: pure functions on uint8 frames plus two thin wrappers.

Frames travel as numpy ``(T, H, W, C)`` uint8 arrays (what the frame store and the
decoder give) until the last step, which turns them into float32 ``(C, T, H, W)``
tensors. Cropping happens before resizing so only the cropped pixels are resampled,
and all frames of a clip are resized in one call.

The recipe is the paper's (and the released code's): at training, one crop per
clip - a square of side ``scale x short side`` for a scale in :data:`SCALES`, at
the centre or one of the four corners - resized to ``crop_size``, then a
horizontal flip with p = 0.5. Flipping flow also negates its x component (on
8-bit codes that is ``255 - code``, as the released code did). RGB and flow of
one sample get the same crop and flip. At test time: the central square of the
short side resized to ``crop_size`` (= Scale(112) + CenterCrop(112)).

Normalization (DESIGN.md): RGB on the 0-255 scale minus the ActivityNet mean,
std 1; flow codes minus 127.5, times an optional scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

RGB_MEAN = (114.7748, 107.7354, 99.4750)
FLOW_CENTER = 127.5
SCALES = (1.0, 2**-0.25, 2**-0.5, 2**-0.75, 0.5)
POSITIONS = ("c", "tl", "tr", "bl", "br")


class CropBox(NamedTuple):
    """A square crop: top-left corner and side, in pixels of the source frame."""

    top: int
    left: int
    size: int


def corner_box(height: int, width: int, scale: float, position: str) -> CropBox:
    """The square of side ``scale x min(height, width)`` at ``position`` (c, tl, tr, bl, br)."""
    size = max(1, int(min(height, width) * scale))
    bottom, right = height - size, width - size
    corners = {
        "c": (bottom // 2, right // 2),
        "tl": (0, 0),
        "tr": (0, right),
        "bl": (bottom, 0),
        "br": (bottom, right),
    }
    if position not in corners:
        raise ValueError(f"crop position must be one of {POSITIONS}, got {position!r}")
    top, left = corners[position]
    return CropBox(top, left, size)


def sample_corner_box(
    height: int,
    width: int,
    rng: np.random.Generator,
    scales: Sequence[float] = SCALES,
    positions: Sequence[str] = POSITIONS,
) -> CropBox:
    """Draw one multi-scale corner crop (one scale, one position) uniformly."""
    scale = scales[int(rng.integers(len(scales)))]
    position = positions[int(rng.integers(len(positions)))]
    return corner_box(height, width, scale, position)


def crop_resize(frames: np.ndarray, box: CropBox, out_size: int) -> np.ndarray:
    """Crop ``box`` out of every frame and resize it to ``out_size`` square.

    Bilinear with antialiasing (torch's uint8 kernel), which matches PIL's
    ``resize(BILINEAR)`` of the released code to within one grey level, and
    is several times faster than it or than OpenCV's area resize.

    Args:
        frames: (T, H, W, C) uint8, any C (RGB 3, flow 2).
        box: the crop, inside the frame.
        out_size: output side.

    Returns:
        (T, out_size, out_size, C) uint8.
    """
    top, left, size = box
    crops = frames[:, top : top + size, left : left + size]  # (T, s, s, C) view
    if size == out_size:
        return np.ascontiguousarray(crops)
    if min(crops.strides) < 0:  # a flipped view: torch wants positive strides
        crops = np.ascontiguousarray(crops)
    # (T, C, s, s) in channels-last memory: the layout the fast uint8 kernel wants.
    images = torch.from_numpy(crops).permute(0, 3, 1, 2)
    resized = F.interpolate(images, size=(out_size, out_size), mode="bilinear", antialias=True)
    return resized.permute(0, 2, 3, 1).numpy()  # (T, out, out, C)


def hflip_clip(modality: str, clip: torch.Tensor) -> torch.Tensor:
    """Mirror a normalized (C, T, H, W) clip left-right; flow also negates x.

    On normalized flow, ``(code - 127.5) * scale``, negating x is exactly the
    released code's ``code -> 255 - code`` on the 8-bit x image.
    """
    flipped = clip.flip(-1)
    if modality == "flow":
        flipped[0].neg_()
    return flipped


def to_clip_tensor(frames: np.ndarray, mean: Sequence[float], scale: float = 1.0) -> torch.Tensor:
    """(T, H, W, C) uint8 -> float32 (C, T, H, W) tensor ``(x - mean[c]) * scale``."""
    # Transposing the uint8 array first keeps the float work to two in-place passes.
    values = np.ascontiguousarray(frames.transpose(3, 0, 1, 2)).astype(np.float32)  # (C, T, H, W)
    values -= np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1, 1)
    if scale != 1.0:
        values *= np.float32(scale)
    return torch.from_numpy(values)


def normalize(modality: str, frames: np.ndarray, flow_scale: float = 1.0) -> torch.Tensor:
    """Normalize one modality's uint8 frames the released code's way; (C, T, H, W) float32."""
    if modality == "rgb":
        return to_clip_tensor(frames, RGB_MEAN)
    if modality == "flow":
        return to_clip_tensor(frames, (FLOW_CENTER, FLOW_CENTER), flow_scale)
    raise ValueError(f"unknown modality {modality!r}")


class TrainTransform:
    """Multi-scale corner crop + flip, identical for every modality of a sample, + normalize.

    Args:
        crop_size: output side (112 in the paper).
        scales: crop sides as fractions of the short side.
        positions: crop positions to draw from.
        flip_prob: probability of a horizontal flip.
        flow_scale: multiplier after subtracting 127.5 from flow codes.
    """

    def __init__(
        self,
        crop_size: int = 112,
        scales: Sequence[float] = SCALES,
        positions: Sequence[str] = POSITIONS,
        flip_prob: float = 0.5,
        flow_scale: float = 1.0,
    ) -> None:
        self.crop_size = crop_size
        self.scales = tuple(scales)
        self.positions = tuple(positions)
        self.flip_prob = flip_prob
        self.flow_scale = flow_scale

    def __call__(
        self, clips: Mapping[str, np.ndarray], rng: np.random.Generator
    ) -> dict[str, torch.Tensor]:
        height, width = _common_size(clips)
        box = sample_corner_box(height, width, rng, self.scales, self.positions)
        flip = rng.random() < self.flip_prob
        out = {}
        for modality, frames in clips.items():
            clip = normalize(modality, crop_resize(frames, box, self.crop_size), self.flow_scale)
            out[modality] = hflip_clip(modality, clip) if flip else clip
        return out


class EvalTransform:
    """Centre square of the short side resized to ``crop_size`` (Scale + CenterCrop), normalize.

    ``scale`` < 1 takes a smaller centre square. ``rng`` is accepted and unused, so
    both transforms share one call signature.
    """

    def __init__(self, crop_size: int = 112, scale: float = 1.0, flow_scale: float = 1.0) -> None:
        self.crop_size = crop_size
        self.scale = scale
        self.flow_scale = flow_scale

    def __call__(
        self, clips: Mapping[str, np.ndarray], rng: np.random.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        height, width = _common_size(clips)
        box = corner_box(height, width, self.scale, "c")
        return {
            modality: normalize(modality, crop_resize(frames, box, self.crop_size), self.flow_scale)
            for modality, frames in clips.items()
        }


def _common_size(clips: Mapping[str, np.ndarray]) -> tuple[int, int]:
    """(H, W) shared by every modality; a mismatch would make 'the same crop' meaningless."""
    sizes = {frames.shape[1:3] for frames in clips.values()}
    if len(sizes) != 1:
        raise ValueError(f"modalities have different frame sizes: {sorted(sizes)}")
    (size,) = sizes
    return size
