"""Image operations in torch that reproduce OpenCV's, so the torch TV-L1 can match it.

Each function works on batches ``(B, C, H, W)`` float32 on any device and mirrors
one OpenCV call the CPU TV-L1 makes: ``cvtColor(RGB2GRAY)``, ``resize(INTER_LINEAR)``
(sizes rounded like ``cv::resize``, pixel centres at +0.5), the centred and forward
gradients and backward divergence of ``tvl1flow.cpp``, ``medianBlur`` (replicate
border) and ``remap(INTER_CUBIC, BORDER_CONSTANT)``. The Keys cubic with a clamped
border is the warp of OpenCV's CUDA TV-L1 (what the MARS authors ran).

TV-L1 amplifies last-bit differences (an input change of 1e-4 gray levels moves
OpenCV's own flow by ~0.04 px on real frames), so parity needs bit-identical
arithmetic. The iteration's own operations are written in OpenCV's order (float32,
same association); the library calls (resize, remap, median) *are* OpenCV's on the
CPU, and torch re-implementations (equal up to float rounding) elsewhere.
:func:`device_path_on_cpu` runs those re-implementations on the CPU too, so what a
GPU computes can be checked against OpenCV on a machine without one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import cv2
import numpy as np
import torch
import torch.nn.functional as F

_DEVICE_PATH_ON_CPU = False


@contextmanager
def device_path_on_cpu() -> Iterator[None]:
    """Within the block, CPU tensors take the torch paths a GPU takes (not OpenCV's calls)."""
    global _DEVICE_PATH_ON_CPU
    before, _DEVICE_PATH_ON_CPU = _DEVICE_PATH_ON_CPU, True
    try:
        yield
    finally:
        _DEVICE_PATH_ON_CPU = before


def _opencv_call(tensor: torch.Tensor) -> bool:
    """Whether a library operation on ``tensor`` is OpenCV's own call (CPU, not forced)."""
    return tensor.device.type == "cpu" and not _DEVICE_PATH_ON_CPU


def rgb_to_gray(frames: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 1, H, W) float32 0-255, bit-exact to OpenCV's RGB2GRAY.

    OpenCV (5.0) converts 8-bit colour with 15-bit fixed-point weights and rounding.
    """
    rgb = frames.to(torch.int32)
    gray = (rgb[..., 0] * 9798 + rgb[..., 1] * 19235 + rgb[..., 2] * 3735 + 16384) >> 15
    return gray.to(torch.float32).unsqueeze(1)  # (N, 1, H, W)


def cv_round(value: float) -> int:
    """``saturate_cast<int>(double)``: round half to even, as ``cvRound`` does."""
    return int(round(value))


def pyramid_sizes(height: int, width: int, scales: int, step: float) -> list[tuple[int, int]]:
    """Level sizes of OpenCV's TV-L1 pyramid: ``resize(fx=fy=step)`` repeated, stop under 16 px."""
    sizes = [(height, width)]
    for _ in range(1, scales):
        h, w = sizes[-1]
        h, w = cv_round(h * step), cv_round(w * step)
        if h < 16 or w < 16:
            break
        sizes.append((h, w))
    return sizes


def per_plane(field: torch.Tensor, function) -> torch.Tensor:
    """Apply a numpy (h, w) -> (h', w') float32 function (an OpenCV call) to every plane.

    (B, C, H, W) CPU tensor -> (B, C, H', W').
    """
    b, c, h, w = field.shape
    planes = field.reshape(b * c, h, w).contiguous().numpy()
    out = np.stack([function(np.ascontiguousarray(plane)) for plane in planes])
    return torch.from_numpy(out).reshape(b, c, *out.shape[1:])


def _linear_taps(src: int, dst: int, scale: float, device: torch.device):
    """Source indices and weights along one axis for ``cv::resize`` INTER_LINEAR.

    ``scale`` is source pixels per destination pixel (``1 / fx``); OpenCV computes
    the position and the weights in double, rounds the weights to float and
    replicates the border.
    """
    pos = (torch.arange(dst, dtype=torch.float64) + 0.5) * scale - 0.5
    left = torch.floor(pos)
    frac = pos - left
    left = left.to(torch.int64)
    frac = torch.where((left < 0) | (left >= src - 1), torch.zeros_like(frac), frac)
    left = left.clamp(0, src - 1)
    right = (left + 1).clamp(max=src - 1)
    weights = (1 - frac).to(torch.float32), frac.to(torch.float32)
    return left.to(device), right.to(device), *(w.to(device) for w in weights)


def cv_resize_linear(
    image: torch.Tensor, size: tuple[int, int], scale: tuple[float, float] | None = None
) -> torch.Tensor:
    """``cv::resize(INTER_LINEAR)`` of (B, C, H, W) to ``size`` = (h, w).

    ``scale`` = (fy, fx) when OpenCV was called with factors (the pyramid); without
    it the factors are the size ratios (the flow upsampling). On the CPU it is
    OpenCV's own call (bit-exact); elsewhere :func:`cv_resize_linear_torch`.
    """
    if not _opencv_call(image):
        return cv_resize_linear_torch(image, size, scale)
    if scale is None:
        return per_plane(image, lambda p: cv2.resize(p, size[::-1], interpolation=cv2.INTER_LINEAR))
    fy, fx = scale
    return per_plane(
        image, lambda p: cv2.resize(p, None, fx=fx, fy=fy, interpolation=cv2.INTER_LINEAR)
    )


def cv_resize_linear_torch(
    image: torch.Tensor, size: tuple[int, int], scale: tuple[float, float] | None = None
) -> torch.Tensor:
    """The device path of :func:`cv_resize_linear`: horizontal pass, then vertical.

    Same taps and weights as OpenCV; values differ from it in the last bit on some pixels.
    """
    h_src, w_src = image.shape[-2:]
    fy, fx = scale if scale is not None else (size[0] / h_src, size[1] / w_src)
    x0, x1, ax, bx = _linear_taps(w_src, size[1], 1.0 / fx, image.device)
    y0, y1, ay, by = _linear_taps(h_src, size[0], 1.0 / fy, image.device)
    rows = image.index_select(-1, x0) * ax + image.index_select(-1, x1) * bx
    return rows.index_select(-2, y0) * ay[:, None] + rows.index_select(-2, y1) * by[:, None]


def centered_gradient(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half the central difference, replicate border: (B, C, H, W) -> (dx, dy)."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    dx = 0.5 * (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2])
    dy = 0.5 * (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1])
    return dx, dy


def forward_gradient(field: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences, zero in the last column / row: (B, C, H, W) -> (dx, dy)."""
    dx = F.pad(field[..., :, 1:] - field[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(field[..., 1:, :] - field[..., :-1, :], (0, 0, 0, 1))
    return dx, dy


def divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Backward-difference divergence; the first row / column uses p itself (zero outside).

    Rounded as OpenCV does: ``(px - px_left) + (py - py_up)`` inside and on the first
    row, but ``(px + py) - py_up`` on the first column (a last-bit difference there
    grows, through TV-L1's sensitivity, into ~0.03 px of mean flow difference).
    """
    py_up = F.pad(py[..., :-1, :], (0, 0, 1, 0))
    inner = (px[..., 1:] - px[..., :-1]) + (py[..., 1:] - py_up[..., 1:])
    first = (px[..., :1] + py[..., :1]) - py_up[..., :1]
    return torch.cat((first, inner), -1)


def median_blur(field: torch.Tensor, ksize: int = 5) -> torch.Tensor:
    """``cv::medianBlur`` on float data: k x k median, replicate border. (B, C, H, W).

    On the CPU it *is* OpenCV's (exact and ~100x faster than a torch sort there);
    elsewhere a sort over unfolded windows gives the same values.
    """
    if _opencv_call(field):
        return per_plane(field, lambda plane: cv2.medianBlur(plane, ksize))
    return median_blur_torch(field, ksize)


def median_blur_torch(field: torch.Tensor, ksize: int = 5) -> torch.Tensor:
    """The device path of :func:`median_blur`: median of unfolded k x k windows. (B, C, H, W)."""
    b, c, h, w = field.shape
    r = ksize // 2
    padded = F.pad(field.reshape(b * c, 1, h, w), (r, r, r, r), mode="replicate")
    windows = padded.unfold(2, ksize, 1).unfold(3, ksize, 1)  # (BC, 1, H, W, k, k)
    return windows.reshape(b, c, h, w, ksize * ksize).median(dim=-1).values


def remap_cubic_zero(image: torch.Tensor, map_x: torch.Tensor, map_y: torch.Tensor) -> torch.Tensor:
    """``cv::remap(INTER_CUBIC, BORDER_CONSTANT 0)``: Catmull-Rom-like cubic A = -0.75.

    image (B, C, H, W), maps (B, H, W) absolute pixel coordinates. On the CPU it is
    OpenCV's own call (bit-exact); elsewhere :func:`remap_cubic_zero_torch`.
    """
    if not _opencv_call(image):
        return remap_cubic_zero_torch(image, map_x, map_y)
    maps = zip(map_x.contiguous().numpy(), map_y.contiguous().numpy(), strict=True)
    warped = [
        per_plane(pair[None], partial(_cv_remap_cubic, maps=m))
        for pair, m in zip(image, maps, strict=True)
    ]
    return torch.cat(warped)


def _cv_remap_cubic(plane: np.ndarray, maps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return cv2.remap(plane, *maps, cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def remap_cubic_zero_torch(
    image: torch.Tensor, map_x: torch.Tensor, map_y: torch.Tensor
) -> torch.Tensor:
    """The device path of :func:`remap_cubic_zero`: grid_sample's bicubic.

    It uses the same A and reads zeros outside, tap by tap, as OpenCV does; values
    differ from OpenCV's by float rounding (~1e-6 relative).
    """
    h, w = image.shape[-2:]
    grid = torch.stack(
        (map_x * (2.0 / max(w - 1, 1)) - 1.0, map_y * (2.0 / max(h - 1, 1)) - 1.0), -1
    )
    return F.grid_sample(image, grid, mode="bicubic", padding_mode="zeros", align_corners=True)


def _keys(t: torch.Tensor, a: float) -> torch.Tensor:
    """Keys cubic convolution kernel of parameter ``a`` at distance ``t``."""
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def remap_keys_clamped(
    image: torch.Tensor, map_x: torch.Tensor, map_y: torch.Tensor, a: float = -0.5
) -> torch.Tensor:
    """The CUDA TV-L1 warp: 4 x 4 Keys cubic, clamped (replicate) border, weights / their sum.

    image (B, C, H, W), maps (B, h, w) in pixels -> (B, C, h, w).
    """
    b, c, h, w = image.shape
    ix, iy = torch.floor(map_x), torch.floor(map_y)
    tx, ty = map_x - ix, map_y - iy
    flat = image.reshape(b, c, h * w)
    out = image.new_zeros(b, c, map_x[0].numel())
    wsum = torch.zeros_like(map_x)
    for dy in range(-1, 3):
        wy = _keys(ty - dy, a)
        row = (iy + dy).clamp(0, h - 1).to(torch.int64) * w
        for dx in range(-1, 3):
            weight = wy * _keys(tx - dx, a)  # (B, h, w)
            index = (row + (ix + dx).clamp(0, w - 1).to(torch.int64)).reshape(b, 1, -1)
            out += weight.reshape(b, 1, -1) * flat.gather(2, index.expand(b, c, -1))
            wsum += weight
    return out.reshape(b, c, *map_x.shape[1:]) / wsum[:, None]


def pixel_grid(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W) float32 x and y pixel coordinates."""
    ys = torch.arange(height, device=device, dtype=torch.float32)
    xs = torch.arange(width, device=device, dtype=torch.float32)
    return xs[None, :].expand(height, width), ys[:, None].expand(height, width)


def flow_upsample(flow: torch.Tensor, size: tuple[int, int], step: float) -> torch.Tensor:
    """Flow of a coarser level to the next finer one: resize to ``size``, divide by ``step``."""
    return cv_resize_linear(flow, size) * (1.0 / step)
