"""The frame store: JPEG round trip, flow codes, counts, atomic writes, listing."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import moving_square_frames

from mars_action.video import completeness
from mars_action.video import framestore as fs
from mars_action.video.decode import VideoError


def smooth_frames(num: int = 5, height: int = 40, width: int = 56) -> np.ndarray:
    """Smooth gradients (JPEG keeps them well) that differ per frame."""
    y, x = np.mgrid[0:height, 0:width]
    frames = [np.stack([x * 4 + 10 * t, y * 5, (x + y) * 2 + 20 * t], axis=-1) for t in range(num)]
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def test_rgb_round_trip(tmp_path):
    frames = smooth_frames()
    video = tmp_path / "Class A" / "vidéo 1"
    assert fs.write_frames(video, iter(frames)) == 5
    assert sorted(p.name for p in video.iterdir()) == [f"{i:05d}.jpg" for i in range(1, 6)] + [
        "done"
    ]
    assert fs.is_done(video) and fs.frame_count(video) == 5
    back = fs.read_rgb(video, [4, 0, 2])
    assert back.shape == (3, 40, 56, 3) and back.dtype == np.uint8
    error = np.abs(back.astype(int) - frames[[4, 0, 2]].astype(int))
    assert error.mean() < 2.0  # quality 95 on smooth images; channel order kept (RGB)
    fs.write_frames(tmp_path / "c" / "low", frames, quality=10)
    low = fs.read_rgb(tmp_path / "c" / "low", [4])
    assert np.abs(low.astype(int) - frames[4].astype(int)).mean() > error.mean()


def test_flow_round_trip_and_counts(tmp_path):
    video = tmp_path / "c" / "v"
    fs.write_frames(video, smooth_frames(3))
    rng = np.random.default_rng(0)
    codes = np.full((2, 40, 56, 2), 127, np.uint8) + rng.integers(
        0, 3, (2, 40, 56, 2), dtype=np.uint8
    )
    named = [
        (name, codes[i, ..., axis]) for i in range(2) for axis, name in enumerate(fs.flow_names(i))
    ]
    fs.write_jpegs_atomic(video, named, quality=100, marker="done_flow")
    assert fs.flow_count(video) == 2 and fs.frame_count(video) == 3
    assert fs.flow_count(video, prefix="MPEGjpg_") == 0
    assert fs.is_done(video) and fs.is_done(video, "done_flow")
    back = fs.read_flow(video, [1, 0])
    assert back.shape == (2, 40, 56, 2)
    assert np.abs(back.astype(int) - codes[[1, 0]].astype(int)).max() <= 2
    assert fs.flow_names(0) == ("TVL1jpg_x_00001.jpg", "TVL1jpg_y_00001.jpg")


def test_missing_and_corrupt_frames_raise(tmp_path):
    video = tmp_path / "c" / "v"
    fs.write_frames(video, smooth_frames(2))
    with pytest.raises(VideoError, match="00003.jpg: missing frame"):
        fs.read_rgb(video, [0, 2])
    (video / "00002.jpg").write_bytes(b"garbage")
    with pytest.raises(VideoError, match="00002.jpg: not a readable JPEG"):
        fs.read_rgb(video, [1])
    assert fs.frame_count(tmp_path / "nowhere") == 0


def interrupted(frames, after: int):
    for i, frame in enumerate(frames):
        if i == after:
            raise KeyboardInterrupt
        yield frame


def test_interrupted_write_leaves_nothing_complete(tmp_path):
    video = tmp_path / "c" / "v"
    with pytest.raises(KeyboardInterrupt):
        fs.write_frames(video, interrupted(smooth_frames(), after=3))
    assert not video.exists() and not fs.is_done(video)
    assert list((tmp_path / "c").iterdir()) == []  # temporary folder removed
    # A hard kill leaves the hidden temporary folder; the next run replaces it.
    stale = tmp_path / "c" / ".v.done.tmp"
    stale.mkdir()
    (stale / "00009.jpg").write_bytes(b"old")
    assert fs.write_frames(video, smooth_frames(2)) == 2
    assert not stale.exists() and fs.frame_count(video) == 2


def test_interrupted_write_into_existing_folder_keeps_no_marker(tmp_path):
    video = tmp_path / "c" / "v"
    fs.write_frames(video, smooth_frames(3))
    gray = ((fs.flow_names(i)[0], frame[..., 0]) for i, frame in enumerate(smooth_frames(3)))
    with pytest.raises(KeyboardInterrupt):
        fs.write_jpegs_atomic(video, interrupted(gray, after=2), marker="done_flow")
    assert fs.is_done(video) and not fs.is_done(video, "done_flow")
    assert fs.flow_count(video) == 0  # nothing moved in before the set was complete


def test_rewrite_of_incomplete_folder_drops_stale_frames(tmp_path):
    video = tmp_path / "c" / "v"
    video.mkdir(parents=True)
    for i in range(1, 8):  # an old, incomplete extraction with more frames
        (video / f"{i:05d}.jpg").write_bytes(b"old")
    (video / "TVL1jpg_x_00001.jpg").write_bytes(b"flow")
    fs.write_frames(video, smooth_frames(3))
    assert fs.frame_count(video) == 3 and fs.is_done(video)
    assert (video / "TVL1jpg_x_00001.jpg").exists()
    assert fs.read_rgb(video, [0, 1, 2]).shape == (3, 40, 56, 3)


def test_list_video_dirs(tmp_path):
    for name in ("b/v2", "a/v1", "a/v0", "a/.v3.done.tmp", ".hidden/v"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "frames-report.json").write_text("{}")
    want = [tmp_path / "a/v0", tmp_path / "a/v1", tmp_path / "b/v2"]
    assert completeness.list_video_dirs(tmp_path) == want
    with pytest.raises(VideoError, match="not found"):
        completeness.list_video_dirs(tmp_path / "nowhere")


def test_encode_grayscale_and_color_sizes(tmp_path):
    frame = moving_square_frames(1, height=33, width=47)[0]
    video = tmp_path / "c" / "odd"
    fs.write_frames(video, [frame])
    assert fs.read_rgb(video, [0]).shape == (1, 33, 47, 3)


def test_windowed_and_reduced_reads(tmp_path):
    frames = smooth_frames(4, 40, 56)
    video = tmp_path / "c" / "v"
    fs.write_frames(video, frames)
    full = fs.read_rgb(video, [0, 3])
    window = (4, 6, 32, 32)  # (top, left, height, width)
    part = fs.read_rgb(video, [0, 3], window)
    assert part.flags.c_contiguous and np.array_equal(part, full[:, 4:36, 6:38])
    half = fs.read_rgb(video, [0, 3], window, reduction=2)  # decoded at 20 x 28, window / 2
    assert half.shape == (2, 16, 16, 3)
    pooled = full[:, 4:36, 6:38].reshape(2, 16, 2, 16, 2, 3).mean(axis=(2, 4))
    assert np.abs(half - pooled).mean() < 2.0  # RGB order kept; the same pixels, smaller
    assert fs.image_size(video / "00001.jpg") == (40, 56)
    codes = np.clip(frames[:2, ..., :2].astype(int) // 2 + 60, 0, 255).astype(np.uint8)
    named = [(name, codes[i, ..., a]) for i in range(2) for a, name in enumerate(fs.flow_names(i))]
    fs.write_jpegs_atomic(video, named, quality=100, marker="done_flow")
    flow = fs.read_flow(video, [1, 0], window=window, reduction=2)
    assert flow.shape == (2, 16, 16, 2)
    pooled = codes[[1, 0], 4:36, 6:38].reshape(2, 16, 2, 16, 2, 2).mean(axis=(2, 4))
    assert np.abs(flow - pooled).mean() < 1.0  # x and y kept apart, same window
    with pytest.raises(ValueError, match="reduction must be one of"):
        fs.read_rgb(video, [0], reduction=3)
    with pytest.raises(ValueError, match="outside"):
        fs.read_rgb(video, [0], (20, 30, 32, 32))
