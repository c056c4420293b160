"""The torch TV-L1: each OpenCV primitive reproduced, the solver against OpenCV's, batching."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mars_action.flow import torch_ops as ops
from mars_action.flow.opencv import to_gray, tvl1
from mars_action.flow.quantize import quantize
from mars_action.flow.synthetic import epe_summary, synthetic_pair, texture
from mars_action.flow.tvl1_torch import preset_params, solve_pairs, tvl1_torch
from mars_action.video.decode import decode_video

RNG = np.random.default_rng(0)


def _t(array: np.ndarray) -> torch.Tensor:
    """(H, W) numpy -> (1, 1, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(array, np.float32))[None, None]


def test_gray_is_bit_exact_to_opencv():
    rgb = RNG.integers(0, 256, (3, 17, 23, 3), dtype=np.uint8)
    ours = ops.rgb_to_gray(torch.from_numpy(rgb))[:, 0].numpy()
    np.testing.assert_array_equal(ours, to_gray(rgb))


@pytest.mark.parametrize("shape", [(256, 340), (240, 320), (64, 80), (37, 101)])
def test_pyramid_sizes_and_values_match_cv_resize(shape):
    image = RNG.uniform(0, 255, shape).astype(np.float32)
    sizes = ops.pyramid_sizes(*shape, scales=5, step=0.8)
    reference = image
    for size in sizes[1:]:
        device_path = ops.cv_resize_linear_torch(_t(reference), size, (0.8, 0.8))[0, 0].numpy()
        ours = ops.cv_resize_linear(_t(reference), size, (0.8, 0.8))[0, 0].numpy()
        reference = cv2.resize(reference, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
        assert reference.shape == size
        np.testing.assert_array_equal(ours, reference)  # the CPU path is OpenCV's call
        np.testing.assert_allclose(device_path, reference, atol=1e-4)
    if shape == (256, 340):
        assert sizes == [(256, 340), (205, 272), (164, 218), (131, 174), (105, 139)]


def test_flow_upsampling_matches_cv_resize_to_size():
    flow = RNG.uniform(-3, 3, (105, 139)).astype(np.float32)
    reference = cv2.resize(flow, (174, 131), interpolation=cv2.INTER_LINEAR) * np.float32(1.25)
    ours = ops.flow_upsample(_t(flow), (131, 174), 0.8)[0, 0].numpy()
    np.testing.assert_array_equal(ours, reference)
    device_path = ops.cv_resize_linear_torch(_t(flow), (131, 174))[0, 0].numpy() / 0.8
    np.testing.assert_allclose(device_path, reference, atol=1e-5)


def test_median_paths_equal_cv_median_blur():
    field = RNG.uniform(-3, 3, (2, 2, 30, 41)).astype(np.float32)
    reference = np.stack([[cv2.medianBlur(plane, 5) for plane in pair] for pair in field])
    np.testing.assert_array_equal(ops.median_blur(torch.from_numpy(field)).numpy(), reference)
    np.testing.assert_array_equal(ops.median_blur_torch(torch.from_numpy(field)).numpy(), reference)


def test_cubic_remap_matches_cv_remap_with_zero_border():
    image = RNG.uniform(0, 255, (30, 40)).astype(np.float32)
    ys, xs = np.mgrid[0:30, 0:40].astype(np.float32)
    map_x = xs + RNG.uniform(-5, 5, xs.shape).astype(np.float32)
    map_y = ys + RNG.uniform(-5, 5, ys.shape).astype(np.float32)
    reference = cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderValue=0)
    maps = _t(map_x)[0], _t(map_y)[0]
    np.testing.assert_array_equal(ops.remap_cubic_zero(_t(image), *maps)[0, 0].numpy(), reference)
    device_path = ops.remap_cubic_zero_torch(_t(image), *maps)[0, 0].numpy()
    np.testing.assert_allclose(device_path, reference, atol=5e-3)


def test_keys_clamped_remap_is_the_cuda_kernel():
    image = RNG.uniform(0, 255, (12, 15)).astype(np.float32)
    points = [(0.3, 0.7), (-2.2, 5.5), (14.6, 11.9), (7.0, 3.0), (20.0, -4.0)]

    def keys(t: float) -> float:  # the CUDA kernel's bicubicCoeff (a = -0.5)
        t = abs(t)
        return (
            t * t * (1.5 * t - 2.5) + 1
            if t <= 1
            else (t * (t * (-0.5 * t + 2.5) - 4) + 2 if t < 2 else 0.0)
        )

    def cuda(x: float, y: float) -> float:
        total = weights = 0.0
        for cy in range(int(np.ceil(y - 2)), int(np.floor(y + 2)) + 1):
            for cx in range(int(np.ceil(x - 2)), int(np.floor(x + 2)) + 1):
                w = keys(x - cx) * keys(y - cy)
                total += w * image[min(max(cy, 0), 11), min(max(cx, 0), 14)]
                weights += w
        return total / weights

    map_x = torch.tensor([[[p[0] for p in points]]], dtype=torch.float32)
    map_y = torch.tensor([[[p[1] for p in points]]], dtype=torch.float32)
    ours = ops.remap_keys_clamped(_t(image), map_x, map_y)[0, 0, 0].numpy()
    np.testing.assert_allclose(ours, [cuda(*p) for p in points], rtol=1e-5, atol=1e-3)


def test_divergence_rounds_like_opencv_on_the_first_column():
    px, py = (torch.from_numpy(RNG.uniform(-1, 1, (1, 1, 6, 5)).astype(np.float32)) for _ in "xy")
    div = ops.divergence(px, py)[0, 0].numpy()
    x, y = px[0, 0].numpy(), py[0, 0].numpy()
    np.testing.assert_array_equal(div[1:, 0], (x[1:, 0] + y[1:, 0]) - y[:-1, 0])
    np.testing.assert_array_equal(div[1:, 1:], (x[1:, 1:] - x[1:, :-1]) + (y[1:, 1:] - y[:-1, 1:]))
    np.testing.assert_array_equal(
        div[0], np.concatenate(([x[0, 0] + y[0, 0]], x[0, 1:] - x[0, :-1] + y[0, 1:]))
    )


def test_bit_identical_to_opencv_through_scales_warps_and_medians():
    """On the CPU every step rounds as OpenCV's does, so the flow is bit-identical
    (TV-L1 would amplify any last-bit difference)."""
    image0, image1 = texture(48, 64, seed=1), texture(48, 64, seed=1)
    image1 = np.roll(image1, 1, axis=1)
    settings = dict(scales=2, warps=2, inner_iterations=10, outer_iterations=3, epsilon=0.0)
    solver = cv2.optflow.DualTVL1OpticalFlow_create(
        nscales=2, warps=2, innnerIterations=10, outerIterations=3, epsilon=0.0
    )
    reference = solver.calc(image0, image1, None)
    ours = solve_pairs(_t(image0), _t(image1), preset_params("opencv-cpu", **settings))
    np.testing.assert_array_equal(ours[0].permute(1, 2, 0).numpy(), reference)


def test_matches_opencv_tvl1_on_real_frames(ucf101_subset):
    """Parity on real UCF101 frames (downscaled to keep it fast)."""
    video = sorted((ucf101_subset / "Biking").glob("*.mp4"))[0]
    frames = decode_video(video, fps=25.0, short_side=64)[20:23]  # (3, 64, 85, 3)
    reference, ours = tvl1(frames), tvl1_torch(frames)
    error = np.linalg.norm(ours - reference, axis=-1)
    assert error.mean() < 1e-3
    assert (quantize(ours) == quantize(reference)).mean() > 0.995
    assert np.linalg.norm(reference, axis=-1).mean() > 0.3  # there is motion to agree on


def test_the_gpu_operations_run_on_the_cpu_keep_parity(ucf101_subset):
    """What a GPU computes (torch resize, grid_sample remap, sort median), checked on the
    CPU: the issue's parity (mean EPE <= 0.02 px, >= 98% identical codes)."""
    video = sorted((ucf101_subset / "Biking").glob("*.mp4"))[0]
    frames = decode_video(video, fps=25.0, short_side=64)[20:23]  # (3, 64, 85, 3)
    reference = tvl1(frames)
    with ops.device_path_on_cpu():
        gpu_style = tvl1_torch(frames)
    assert not np.array_equal(gpu_style, tvl1_torch(frames))  # another arithmetic was used
    error = np.linalg.norm(gpu_style - reference, axis=-1)
    assert error.mean() <= 0.02
    assert (quantize(gpu_style) == quantize(reference)).mean() >= 0.98


def test_batched_equals_pair_by_pair():
    frames, _ = synthetic_pair("translation", 32, 40, magnitude=1.5)
    frames = np.concatenate([frames, np.roll(frames[1:], 1, axis=1)])  # 3 frames, 2 pairs
    batched = tvl1_torch(frames, batch_size=2)
    single = tvl1_torch(frames[..., :1], batch_size=1)  # gray input too
    assert batched.shape == (2, 32, 40, 2)
    np.testing.assert_allclose(batched, single, atol=1e-4)
    assert np.abs(batched[0] - batched[1]).max() > 0.5  # two different pairs


def test_cuda_preset_recovers_a_translation():
    frames, truth = synthetic_pair("translation", 64, 80, magnitude=2.5)
    flow = tvl1_torch(frames, preset="opencv-cuda")
    assert epe_summary(flow[0], truth)["epe_interior"] < 0.05
    with pytest.raises(ValueError, match="preset"):
        tvl1_torch(frames, preset="opencv-gpu")


def test_gpu_style_settings_give_the_same_flow(monkeypatch):
    """Stopped pairs are frozen by masks, so how often the host looks changes nothing; the
    median of the GPU path (a torch sort) equals OpenCV's: the CUDA settings, run on a CPU."""
    frames, _ = synthetic_pair("rotation", 32, 40, magnitude=1.5)
    frames = np.concatenate([frames, np.roll(frames[1:], 1, axis=1)])
    every = tvl1_torch(frames, batch_size=2, sync_every=1)
    monkeypatch.setattr(ops, "median_blur", ops.median_blur_torch)
    gpu_style = tvl1_torch(frames, batch_size=16, sync_every=10)
    np.testing.assert_array_equal(every, gpu_style)


@pytest.mark.slow
def test_compiled_iteration_gives_the_same_flow():
    """torch.compile fuses the iteration (C++ on the CPU, Triton on GPUs): same numbers."""
    frames, _ = synthetic_pair("translation", 32, 40, magnitude=1.5)
    eager = tvl1_torch(frames)
    compiled = tvl1_torch(frames, compile=True)
    np.testing.assert_allclose(compiled, eager, atol=1e-3)
