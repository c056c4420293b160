"""A batched TV-L1 in torch that follows OpenCV's algorithm, for many frame pairs at once.

Same steps as ``cv::optflow::DualTVL1OpticalFlow`` (see ``notes/optical-flow.md``):
a pyramid by 0.8 with cv::resize sizes; per level the centred gradient of I1 and
zeroed duals; per warp a cubic warp of I1 and its gradient, then up to
``outer x inner`` iterations of thresholding, primal update with backward
divergence and dual (ROF) update with forward differences, a median of u at
the start of each outer iteration. Every pair stops on its own (a mask, no host
round trip) once its squared update falls to ``epsilon^2 H W``; the host only
asks whether any pair is still running every ``sync_every`` iterations.

Two presets: ``opencv-cpu`` reproduces the pip OpenCV (cubic A=-0.75 with a zero
border, median 5, 30 x 10 iterations; on the CPU its flow is bit-identical to
OpenCV's on most real frame pairs, see :mod:`torch_ops`); ``opencv-cuda`` is OpenCV's CUDA TV-L1 the
MARS authors ran (Keys a=-0.5 with a clamped border, no median, 300 iterations,
the CUDA code's sparse error checks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch

from mars_action.flow import torch_ops as ops

FLT_EPSILON = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class TVL1Params:
    """OpenCV's TV-L1 parameters plus the choices where its CPU and CUDA versions differ.

    ``warp``: ``"cubic-zero"`` (CPU remap) or ``"keys-clamped"`` (CUDA kernel);
    ``error_check``: ``"every"`` iteration (CPU) or ``"sparse"`` (CUDA's schedule,
    which skips about error / epsilon iterations after each check).
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    scales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    median: int = 5
    warp: str = "cubic-zero"
    error_check: str = "every"


PRESETS = {
    "opencv-cpu": TVL1Params(),
    "opencv-cuda": TVL1Params(
        inner_iterations=300,
        outer_iterations=1,
        median=0,
        warp="keys-clamped",
        error_check="sparse",
    ),
}
_WARPS: dict[str, Callable[..., torch.Tensor]] = {
    "cubic-zero": ops.remap_cubic_zero,
    "keys-clamped": ops.remap_keys_clamped,
}


def tvl1_torch(
    frames: np.ndarray | torch.Tensor,
    preset: str = "opencv-cpu",
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    params: TVL1Params | None = None,
    sync_every: int | None = None,
    compile: bool = False,
) -> np.ndarray:
    """Flow between consecutive frames: (N, H, W, 3|1) uint8 -> (N-1, H, W, 2) float32.

    Args:
        frames: RGB (converted to gray as OpenCV does) or single-channel frames.
        preset: key of :data:`PRESETS`, used when ``params`` is None.
        device: where to compute; frames go there as uint8.
        batch_size: frame pairs solved together (memory ~ 30 floats per pixel per pair);
            default 1 on CPU (fastest there: cache), 16 on GPU.
        sync_every: iterations between host checks for "all pairs done";
            default 1 on CPU (free there), 10 on GPU.
        compile: fuse the iteration with ``torch.compile`` (~5x faster per iteration
            on a CPU core here; compiles once per process, ~15 s).
    """
    params = params or preset_params(preset)
    device = torch.device(device)
    on_cpu = device.type == "cpu"
    sync_every = sync_every or (1 if on_cpu else 10)
    batch_size = batch_size or (1 if on_cpu else 16)
    frames = torch.as_tensor(frames)
    if frames.ndim == 3:
        frames = frames[..., None]
    pairs = frames.shape[0] - 1
    if pairs < 1:
        return np.zeros((0, *frames.shape[1:3], 2), np.float32)
    update = compiled_update() if compile else masked_update
    out = []
    for start in range(0, pairs, batch_size):
        chunk = frames[start : min(start + batch_size, pairs) + 1].to(device)
        gray = ops.rgb_to_gray(chunk) if chunk.shape[-1] == 3 else chunk.permute(0, 3, 1, 2).float()
        flow = solve_pairs(gray[:-1], gray[1:], params, sync_every, update)  # (B, 2, H, W)
        out.append(flow.permute(0, 2, 3, 1).cpu())
    return torch.cat(out).numpy()


def preset_params(preset: str, **overrides) -> TVL1Params:
    """The parameters of a named preset, with optional field overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown tvl1-torch preset {preset!r}; choose from {sorted(PRESETS)}")
    return replace(PRESETS[preset], **overrides)


@lru_cache(maxsize=1)
def compiled_update() -> Callable:
    """:func:`masked_update` through ``torch.compile`` (dynamic shapes: levels, batches)."""
    return torch.compile(masked_update, dynamic=True)


@torch.no_grad()
def solve_pairs(
    image0: torch.Tensor,
    image1: torch.Tensor,
    params: TVL1Params,
    sync_every: int = 1,
    update: Callable | None = None,
) -> torch.Tensor:
    """TV-L1 flow from image0 to image1, both (B, 1, H, W) float 0-255 -> (B, 2, H, W).

    ``update`` is :func:`masked_update` or its compiled version.
    """
    update = update or masked_update
    sizes = ops.pyramid_sizes(*image0.shape[-2:], params.scales, params.scale_step)
    step = (params.scale_step, params.scale_step)
    pyramid0, pyramid1 = [image0], [image1]
    for size in sizes[1:]:
        pyramid0.append(ops.cv_resize_linear(pyramid0[-1], size, step))
        pyramid1.append(ops.cv_resize_linear(pyramid1[-1], size, step))
    flow = image0.new_zeros(image0.shape[0], 2, *sizes[-1])  # (B, 2, h, w)
    for level in reversed(range(len(sizes))):
        flow = _solve_level(pyramid0[level], pyramid1[level], flow, params, sync_every, update)
        if level:
            flow = ops.flow_upsample(flow, sizes[level - 1], params.scale_step)
    return flow


def _solve_level(image0, image1, flow, params: TVL1Params, sync_every: int, update) -> torch.Tensor:
    """All warps at one pyramid level; duals start at zero on every level as in OpenCV."""
    batch, _, height, width = image0.shape
    images = torch.cat([image1, *ops.centered_gradient(image1)], 1)  # (B, 3, H, W): I1, I1x, I1y
    dual = image0.new_zeros(batch, 2, 2, height, width)  # (B, component, x|y, H, W)
    xs, ys = ops.pixel_grid(height, width, image0.device)
    warp = _WARPS[params.warp]
    for _ in range(params.warps):
        warped = warp(images, xs + flow[:, 0], ys + flow[:, 1])
        grads = warped[:, 1:]  # (B, 2, H, W): I1wx, I1wy
        grad_sq = grads[:, :1] * grads[:, :1] + grads[:, 1:] * grads[:, 1:]
        rho_c = warped[:, :1] - grads[:, :1] * flow[:, :1] - grads[:, 1:] * flow[:, 1:] - image0
        flow, dual = _iterate(flow, dual, grads, grad_sq, rho_c, params, sync_every, update)
    return flow


def _iterate(flow, dual, grads, grad_sq, rho_c, params: TVL1Params, sync_every: int, update):
    """The outer x inner loop of one warp, every pair stopping on its own.

    A stopped pair is masked (its state frozen) without asking the host; at each host
    check the pairs still running are compacted into a smaller batch, so finished
    pairs stop costing compute.
    """
    batch, _, height, width = flow.shape
    scaled_eps = float(np.float32(params.epsilon * params.epsilon * (height * width)))  # as OpenCV
    out_flow, out_dual = flow.clone(), dual.clone()
    rows = torch.arange(batch, device=flow.device)
    active = torch.ones(batch, dtype=torch.bool, device=flow.device)
    previous = flow.new_zeros(batch)  # the CUDA schedule's running error estimate
    constants = (params.lambda_ * params.theta, params.theta, params.tau / params.theta)
    for n in range(params.outer_iterations * params.inner_iterations):
        if params.median > 1 and n % params.inner_iterations == 0:
            blurred = ops.median_blur(flow, params.median)
            flow = torch.where(active[:, None, None, None], blurred, flow)
        flow, dual, error = update(flow, dual, active, grads, grad_sq, rho_c, *constants)
        if params.error_check == "sparse":
            checked = (previous < scaled_eps) & (n % 2 == 1) & (params.epsilon > 0)
            previous = torch.where(checked, error, previous - scaled_eps)
            error = torch.where(checked, error, torch.full_like(error, float("inf")))
        active = active & (error > scaled_eps)
        if (n + 1) % sync_every == 0:
            running = int(active.sum())  # the host check
            if running < len(rows):
                out_flow[rows], out_dual[rows] = flow, dual
                if running == 0:
                    return out_flow, out_dual
                keep = active.nonzero().squeeze(1)
                state = (rows, flow, dual, grads, grad_sq, rho_c, previous, active)
                rows, flow, dual, grads, grad_sq, rho_c, previous, active = (t[keep] for t in state)
    out_flow[rows], out_dual[rows] = flow, dual
    return out_flow, out_dual


def masked_update(flow, dual, active, grads, grad_sq, rho_c, l_t: float, theta: float, taut: float):
    """One iteration for the pairs still running (``active``, (B,) bool); others keep theirs."""
    new_flow, new_dual, error = _step(flow, dual, grads, grad_sq, rho_c, l_t, theta, taut)
    mask = active[:, None, None, None]
    return torch.where(mask, new_flow, flow), torch.where(mask[..., None], new_dual, dual), error


def _step(flow, dual, grads, grad_sq, rho_c, l_t: float, theta: float, taut: float):
    """One TV-L1 iteration for every pair: threshold, primal, error, dual. All (B, ., H, W)."""
    rho = rho_c + (grads[:, :1] * flow[:, :1] + grads[:, 1:] * flow[:, 1:])  # (B, 1, H, W)
    bound = l_t * grad_sq
    fallback = torch.where(grad_sq > FLT_EPSILON, (-rho / grad_sq) * grads, torch.zeros_like(grads))
    shift = torch.where(rho < -bound, l_t * grads, torch.where(rho > bound, -l_t * grads, fallback))
    new_flow = flow + shift + theta * ops.divergence(dual[:, :, 0], dual[:, :, 1])  # (B, 2, H, W)
    error = (new_flow - flow).square().sum(dim=(1, 2, 3))  # (B,)
    flow_dx, flow_dy = ops.forward_gradient(new_flow)
    norm = 1.0 + taut * torch.hypot(flow_dx, flow_dy)  # (B, 2, H, W)
    new_dual = (dual + taut * torch.stack((flow_dx, flow_dy), 2)) / norm[:, :, None]
    return new_flow, new_dual, error
