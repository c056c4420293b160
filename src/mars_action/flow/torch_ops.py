"""Image operations in torch that reproduce OpenCV's, so the torch TV-L1 can match it.

Each function works on batches ``(B, C, H, W)`` float32 on any device and mirrors
one OpenCV call the CPU TV-L1 makes: ``cvtColor(RGB2GRAY)``, ``resize(INTER_LINEAR)``
(sizes rounded like ``cv::resize``, pixel centres at +0.5), the centred and forward
gradients and backward divergence of ``tvl1flow.cpp``, ``medianBlur`` (replicate
border) and ``remap(INTER_CUBIC, BORDER_CONSTANT)``. The Keys cubic with a clamped
border is the warp of OpenCV's CUDA TV-L1 (what the MARS authors ran).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


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


def _linear_taps(src: int, dst: int, scale: float, device: torch.device):
    """Source indices and weights along one axis for ``cv::resize`` INTER_LINEAR.

    ``scale`` is source pixels per destination pixel (``1 / fx``); OpenCV computes
    the position in float and replicates the border.
    """
    pos = ((torch.arange(dst, dtype=torch.float64) + 0.5) * scale - 0.5).to(torch.float32)
    left = torch.floor(pos)
    frac = pos - left
    left = left.to(torch.int64)
    frac = torch.where((left < 0) | (left >= src - 1), torch.zeros_like(frac), frac)
    left = left.clamp(0, src - 1)
    right = (left + 1).clamp(max=src - 1)
    return left.to(device), right.to(device), frac.to(device)


def cv_resize_linear(
    image: torch.Tensor, size: tuple[int, int], scale: tuple[float, float] | None = None
) -> torch.Tensor:
    """``cv::resize(INTER_LINEAR)`` of (B, C, H, W) to ``size`` = (h, w).

    ``scale`` = (fy, fx) when OpenCV was called with factors (the pyramid); without
    it the factors are the size ratios (the flow upsampling). Horizontal pass first.
    """
    h_src, w_src = image.shape[-2:]
    fy, fx = scale if scale is not None else (size[0] / h_src, size[1] / w_src)
    x0, x1, wx = _linear_taps(w_src, size[1], 1.0 / fx, image.device)
    y0, y1, wy = _linear_taps(h_src, size[0], 1.0 / fy, image.device)
    rows = image.index_select(-1, x0) * (1 - wx) + image.index_select(-1, x1) * wx
    wy = wy[:, None]
    return rows.index_select(-2, y0) * (1 - wy) + rows.index_select(-2, y1) * wy


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
    """Backward-difference divergence; the first row / column uses p itself (zero outside)."""
    div_x = px - F.pad(px[..., :, :-1], (1, 0, 0, 0))
    div_y = py - F.pad(py[..., :-1, :], (0, 0, 1, 0))
    return div_x + div_y


def median_blur(field: torch.Tensor, ksize: int = 5) -> torch.Tensor:
    """``cv::medianBlur`` on float data: k x k median, replicate border. (B, C, H, W).

    On the CPU it *is* OpenCV's (exact and ~100x faster than a torch sort there);
    elsewhere a sort over unfolded windows gives the same values.
    """
    b, c, h, w = field.shape
    if field.device.type == "cpu":
        planes = field.reshape(b * c, h, w).numpy()
        blurred = np.stack([cv2.medianBlur(np.ascontiguousarray(p), ksize) for p in planes])
        return torch.from_numpy(blurred).reshape(b, c, h, w)
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

    image (B, C, H, W), maps (B, H, W) absolute pixel coordinates. grid_sample's
    bicubic uses the same A and reads zeros outside, tap by tap, as OpenCV does.
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
