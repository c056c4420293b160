"""Flow methods: quantization, accuracy on synthetic ground truth, codec motion vectors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import moving_square_frames

from mars_action.flow.methods import compute_flow, default_prefix
from mars_action.flow.mpeg import iter_mpeg_flow, mpeg_flow
from mars_action.flow.quantize import BOUND, dequantize, quantize
from mars_action.flow.synthetic import epe_summary, synthetic_pair
from mars_action.flow.visualize import flow_to_color

SIZE = (64, 80)


def test_zero_flow_maps_to_127_with_floor_and_128_with_round():
    assert quantize(np.zeros(3), "floor").tolist() == [127] * 3
    assert quantize(np.zeros(3), "round").tolist() == [128] * 3
    assert dequantize(np.array([127], np.uint8), "floor")[0] == 0.0
    assert quantize(np.array([-25.0, -20.0, 20.0, 99.0])).tolist() == [0, 0, 255, 255]


@pytest.mark.parametrize("mode", ["floor", "round"])
def test_quantize_round_trip_within_half_a_step(mode):
    flow = np.random.default_rng(0).uniform(-BOUND, BOUND, 10_000)
    error = np.abs(dequantize(quantize(flow, mode), mode) - flow)
    step = 2 * BOUND / 255
    assert error.max() <= step / 2 + 1e-6
    assert error.mean() == pytest.approx(step / 4, rel=0.05)  # uniform within the step


def test_quantize_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        quantize(np.zeros(2), "ceil")


@pytest.mark.parametrize(
    "method, kind, bound",
    [
        ("tvl1", "translation", 0.05),
        ("tvl1", "rotation", 0.03),
        ("tvl1", "smooth", 0.2),
        ("tvl1-torch", "translation", 0.05),
        ("tvl1-torch", "smooth", 0.2),
        ("farneback", "translation", 0.15),
        ("farneback", "rotation", 0.2),
        ("mpeg", "translation", 0.4),
    ],
)
def test_interior_epe_on_synthetic_ground_truth(method, kind, bound):
    frames, truth = synthetic_pair(kind, *SIZE, magnitude=2.5)
    flow = compute_flow(frames, method)
    assert flow.shape == (1, *SIZE, 2) and flow.dtype == np.float32
    summary = epe_summary(flow[0], truth)
    assert summary["epe_interior"] < bound
    assert summary["epe_interior"] < 0.2 * np.linalg.norm(truth, axis=-1).mean()


@pytest.mark.parametrize("method", ["tvl1", "farneback", "mpeg"])
def test_every_method_gives_n_minus_1_fields_from_gray_or_rgb(method):
    frames = moving_square_frames(num_frames=4, height=48, width=64)
    assert compute_flow(frames, method).shape == (3, 48, 64, 2)
    gray = frames[..., :1]
    assert compute_flow(gray, method).shape == (3, 48, 64, 2)
    assert compute_flow(frames[:1], method).shape == (0, 48, 64, 2)


def test_compute_flow_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown flow method"):
        compute_flow(np.zeros((2, 8, 8, 3), np.uint8), "raft")
    with pytest.raises(ValueError, match="uint8"):
        compute_flow(np.zeros((2, 8, 8, 3), np.float32))


def test_method_prefixes_differ():
    prefixes = {default_prefix(m) for m in ("tvl1", "tvl1-torch", "farneback", "mpeg")}
    assert default_prefix("tvl1") == "TVL1jpg_" and len(prefixes) == 4
    assert default_prefix("tvl1-torch", "opencv-cuda") not in prefixes


def _square_motion(flow: np.ndarray, step: int = 2, height: int = 64) -> np.ndarray:
    """Median x, y flow inside the moving square of ``moving_square_frames`` per pair."""
    size, top = height // 3, height // 3
    out = []
    for index, field in enumerate(flow):
        left = 4 + index * step  # the square's left edge in frame ``index``
        out.append(np.median(field[top + 4 : top + size - 4, left + 4 : left + size - 4], (0, 1)))
    return np.array(out)


def test_mpeg_vectors_of_moving_square_have_its_direction_and_speed():
    frames = moving_square_frames(num_frames=12, height=64, width=96, step=2)
    flow = mpeg_flow(frames)
    assert flow.shape == (11, 64, 96, 2)
    np.testing.assert_allclose(_square_motion(flow), [[2.0, 0.0]] * 11, atol=0.3)
    assert np.abs(np.median(flow[:, :16], axis=(1, 2))).max() < 0.3  # static background


def test_mpeg_b_frames_are_normalised_by_reference_distance(make_video):
    frames = moving_square_frames(num_frames=24, height=64, width=96, step=2)
    params = "bframes=3:b-adapt=0:b-pyramid=none:ref=1"  # P-frames 4 frames apart
    path = make_video("b.mp4", frames, options={"x264-params": params})
    flow = np.stack(list(iter_mpeg_flow(path, fps=None, short_side=None)))
    assert flow.shape == (23, 64, 96, 2)
    speeds = _square_motion(flow[:18])[:, 0]
    assert np.median(speeds) == pytest.approx(2.0, abs=0.1)  # not 4 or 8 (P), not -2 (B)
    assert (np.abs(speeds - 2.0) < 0.5).mean() >= 0.8


def test_mpeg_from_video_resamples_to_fps_and_resizes(make_video):
    frames = moving_square_frames(num_frames=20, height=64, width=96, step=2)
    path = make_video("half.mp4", frames, fps=12.5, options={"x264-params": "bframes=0:ref=1"})
    flow = np.stack(list(iter_mpeg_flow(path, fps=25.0, short_side=128)))
    assert flow.shape[1:] == (128, 192, 2)
    assert len(flow) == 39  # 40 frames at 25 fps from 20 at 12.5
    moving = np.abs(flow[..., 0]).max(axis=(1, 2)) > 1
    # grid frame 2k is native k, 2k+1 (halfway) rounds to native k+1: every other pair moves
    assert moving[0:36:2].all() and not moving[1::2].any()
    square = flow[0::2, 48:80, 60:140, 0]
    assert np.median(square[square > 1]) == pytest.approx(4.0, abs=0.5)  # 2 px x 2 (resize)


def test_color_wheel_directions():
    flow = np.array([[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    colors = flow_to_color(flow, max_magnitude=1.0)
    assert colors.shape == (1, 4, 3) and colors.dtype == np.uint8
    right, left, down, still = colors[0].astype(int)
    assert right[0] == 255 and right[1] < 30  # red
    assert left[0] < 30 and left[2] == 255  # cyan-blue
    assert down[0] > 200 and down[2] < 30  # yellow
    assert still.tolist() == [255, 255, 255]


def test_tvl1_does_not_depend_on_the_sizes_seen_before():
    """OpenCV shrinks an instance's scale count in place on small frames: never reuse it."""
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 255, size=(96, 128), dtype=np.uint8)
    shifted = [np.roll(texture, shift, axis=1) for shift in (0, 2, 4)]
    frames = np.stack(shifted)[..., None]  # (3, 96, 128, 1)
    clean = compute_flow(frames, "tvl1")
    compute_flow(frames[:, :16, :16], "tvl1")  # a tiny video first, as in a mixed dataset
    assert np.array_equal(compute_flow(frames, "tvl1"), clean)
