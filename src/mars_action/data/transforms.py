"""Clip transforms: pure functions on uint8 frames plus two thin wrappers.

Frames travel as numpy ``(T, H, W, C)`` uint8 arrays (what the frame store and the
decoder give) until the last step, which turns them into float32 ``(C, T, H, W)``
tensors. Cropping happens before resizing so only the cropped pixels are resampled,
all frames of a clip are resized in one call, and flipping and normalization are one
pass over the small resized clip. A dataset may also draw the :class:`ClipPlan`
(crop, flip) first, read only the crop from its source - at half the decoding size
when the crop is at least twice the output - and :meth:`CropTransform.finish` it.

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

from mars_action.video.framestore import REDUCTIONS

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


class ClipPlan(NamedTuple):
    """Everything a transform draws for one sample, before any pixel is read.

    ``reduction`` tells a frame source that it may decode at ``1 / reduction`` of
    the size (JPEG DCT scaling): the crop is at least that many times the output
    side, so the output is still a downscale of the decoded pixels.
    """

    box: CropBox
    flip: bool
    reduction: int


# How much a reduced decode may then be enlarged to the output side. At 1.1 the paper's
# 2^-1/4 crop (215 px of 256 -> 112) decodes at half size too (107 px, enlarged 1.04x):
# 1.35 grey levels of mean difference to a full decode on real UCF101 frames (exactly a
# 2x crop: 1.05; bilinear vs area resize of the same crop: 0.80), and 40% of the training
# crops instead of 20% skip three quarters of the decoding.
MAX_UPSCALE = 1.1


def decode_reduction(crop_side: int, out_size: int) -> int:
    """Largest JPEG decoding reduction with ``crop_side / reduction * MAX_UPSCALE >= out_size``."""
    return max(r for r in REDUCTIONS if r == 1 or crop_side * MAX_UPSCALE >= r * out_size)


def crop_resize(frames: np.ndarray, box: CropBox, out_size: int) -> np.ndarray:
    """Crop ``box`` out of every frame and resize it to ``out_size`` square: (T, out, out, C)."""
    top, left, size = box
    return resize_clip(frames[:, top : top + size, left : left + size], out_size)


def resize_clip(frames: np.ndarray, out_size: int) -> np.ndarray:
    """Resize (T, s, s, C) uint8 frames (any C; RGB 3, flow 2) to (T, out, out, C).

    Bilinear with antialiasing (torch's uint8 kernel), which matches PIL's
    ``resize(BILINEAR)`` of the released code to within one grey level, and
    is several times faster than it or than OpenCV's area resize.
    """
    if frames.shape[1:3] == (out_size, out_size):
        return np.ascontiguousarray(frames)
    if min(frames.strides) < 0:  # a flipped view: torch wants positive strides
        frames = np.ascontiguousarray(frames)
    # (T, C, s, s) in channels-last memory: the layout the fast uint8 kernel wants.
    images = torch.from_numpy(frames).permute(0, 3, 1, 2)
    resized = F.interpolate(images, size=(out_size, out_size), mode="bilinear", antialias=True)
    return resized.permute(0, 2, 3, 1).numpy()  # (T, out, out, C)


def to_clip_tensor(
    frames: np.ndarray, mean: Sequence[float], scale: float | Sequence[float] = 1.0
) -> torch.Tensor:
    """(T, H, W, C) uint8 -> float32 (C, T, H, W) tensor ``(x - mean[c]) * scale[c]``.

    ``frames`` may be any strided view (e.g. a flipped one): the uint8 transpose
    copy takes it in (cheaper than a strided float conversion), then the float work
    is in-place passes, the scaling only when a scale is not 1.
    """
    channels = frames.shape[-1]
    values = np.ascontiguousarray(frames.transpose(3, 0, 1, 2)).astype(np.float32)
    values -= _per_channel(mean, channels)  # (C, T, H, W)
    scales = _per_channel(scale, channels)
    if np.any(scales != 1.0):
        values *= scales
    return torch.from_numpy(values)


def _per_channel(values: float | Sequence[float], channels: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, dtype=np.float32), (channels,)).reshape(-1, 1, 1, 1)


def normalize(
    modality: str, frames: np.ndarray, flow_scale: float = 1.0, flip: bool = False
) -> torch.Tensor:
    """Normalize one modality's uint8 (T, H, W, C) frames the released code's way.

    ``flip`` mirrors the frames left-right on the way (flow also negates x: on
    normalized flow ``(code - 127.5) * scale`` that is exactly the released code's
    ``code -> 255 - code`` on the 8-bit x image). Returns (C, T, H, W) float32.
    """
    if flip:
        frames = frames[:, :, ::-1]
    if modality == "rgb":
        return to_clip_tensor(frames, RGB_MEAN)
    if modality == "flow":
        x_scale = -flow_scale if flip else flow_scale
        return to_clip_tensor(frames, FLOW_CENTER, (x_scale, flow_scale))
    raise ValueError(f"unknown modality {modality!r}")


class CropTransform:
    """Crop, resize to ``crop_size``, flip (maybe) and normalize; subclasses draw the plan.

    A dataset can ask for the :class:`ClipPlan` first (:meth:`plan`), read only
    the crop (at a reduced decoding scale when the plan allows it) and finish
    with :meth:`finish`; calling the transform on whole frames gives the same result
    (at reduction 1).

    Args:
        crop_size: output side (112 in the paper).
        flow_scale: multiplier after subtracting 127.5 from flow codes.
        reduced_decode: allow sources to decode at 1/2 (1/4...) size when the crop
            is at least twice (four times...) ``crop_size``: about half the decoding
            time for those crops, for a mean difference under one grey level.
        scale_vectors: multiply flow by ``crop_size / crop side``, so that vectors are
            in pixels of the network's input, whatever the crop's scale (the released
            code kept frame-store pixels: a 2x zoomed crop showed half the motion).
    """

    def __init__(
        self, crop_size: int, flow_scale: float, reduced_decode: bool, scale_vectors: bool
    ) -> None:
        self.crop_size = crop_size
        self.flow_scale = flow_scale
        self.reduced_decode = reduced_decode
        self.scale_vectors = scale_vectors

    def plan(self, height: int, width: int, rng: np.random.Generator | None) -> ClipPlan:
        """The crop box, flip and decoding reduction for frames of this size, drawn
        before any frame is read so that the source decodes only the box."""
        raise NotImplementedError

    def finish(self, crops: Mapping[str, np.ndarray], plan: ClipPlan) -> dict[str, torch.Tensor]:
        """Resize each modality's crops (T, s, s, C), at any scale, then flip and normalize."""
        zoom = self.crop_size / plan.box.size if self.scale_vectors else 1.0
        return {
            modality: normalize(
                modality, resize_clip(frames, self.crop_size), self.flow_scale * zoom, plan.flip
            )
            for modality, frames in crops.items()
        }

    def __call__(
        self, clips: Mapping[str, np.ndarray], rng: np.random.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        plan = self.plan(*_common_size(clips), rng)
        top, left, size = plan.box
        crops = {m: frames[:, top : top + size, left : left + size] for m, frames in clips.items()}
        return self.finish(crops, plan)

    def _plan(self, box: CropBox, flip: bool) -> ClipPlan:
        """The plan of ``box``; with a reduction, the box snaps to the reduced pixel grid.

        Snapping (at most ``reduction - 1`` source pixels up/left, e.g. a right-corner
        crop of a 341 px wide frame starts at 84, not 85) keeps the reduced crop the
        same pixels: half a reduced pixel off shifts every output pixel by 0.44 px.
        """
        reduction = decode_reduction(box.size, self.crop_size) if self.reduced_decode else 1
        if reduction > 1:
            box = CropBox(*(value - value % reduction for value in box))
        return ClipPlan(box, flip, reduction)


class TrainTransform(CropTransform):
    """Multi-scale corner crop + flip, identical for every modality of a sample, + normalize.

    Args:
        crop_size: output side (112 in the paper).
        scales: crop sides as fractions of the short side.
        positions: crop positions to draw from.
        flip_prob: probability of a horizontal flip.
        flow_scale: multiplier after subtracting 127.5 from flow codes.
        reduced_decode, scale_vectors: see :class:`CropTransform`.
    """

    def __init__(
        self,
        crop_size: int = 112,
        scales: Sequence[float] = SCALES,
        positions: Sequence[str] = POSITIONS,
        flip_prob: float = 0.5,
        flow_scale: float = 1.0,
        reduced_decode: bool = True,
        scale_vectors: bool = True,
    ) -> None:
        super().__init__(crop_size, flow_scale, reduced_decode, scale_vectors)
        self.scales = tuple(scales)
        self.positions = tuple(positions)
        self.flip_prob = flip_prob

    def plan(self, height: int, width: int, rng: np.random.Generator | None) -> ClipPlan:
        """A random scale and corner and a coin flip, one draw for every modality."""
        box = sample_corner_box(height, width, rng, self.scales, self.positions)
        return self._plan(box, rng.random() < self.flip_prob)


class EvalTransform(CropTransform):
    """Centre square of the short side resized to ``crop_size`` (Scale + CenterCrop), normalize.

    ``scale`` < 1 takes a smaller centre square. ``rng`` is accepted and unused, so
    both transforms share one call signature.
    """

    def __init__(
        self,
        crop_size: int = 112,
        scale: float = 1.0,
        flow_scale: float = 1.0,
        reduced_decode: bool = True,
        scale_vectors: bool = True,
    ) -> None:
        super().__init__(crop_size, flow_scale, reduced_decode, scale_vectors)
        self.scale = scale

    def plan(self, height: int, width: int, rng: np.random.Generator | None = None) -> ClipPlan:
        """The centre square, never flipped: the same clip on every evaluation."""
        return self._plan(corner_box(height, width, self.scale, "c"), False)


def _common_size(clips: Mapping[str, np.ndarray]) -> tuple[int, int]:
    """(H, W) shared by every modality; a mismatch would make 'the same crop' meaningless."""
    sizes = {frames.shape[1:3] for frames in clips.values()}
    if len(sizes) != 1:
        raise ValueError(f"modalities have different frame sizes: {sorted(sizes)}")
    (size,) = sizes
    return size
