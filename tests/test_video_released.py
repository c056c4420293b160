"""The released code's frame extraction (``mars frames --preset released``).

The comparisons with the ``ffmpeg`` command need the ``ffmpeg`` program (Debian:
``apt-get install ffmpeg``); they skip cleanly without it. The frame-selection
rules are checked on their own everywhere.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from mars_action.video import completeness, framestore
from mars_action.video.extract import extract_frames
from mars_action.video.released import (
    cfr_select,
    frame_duration,
    iter_released_jpegs,
    released_indices,
    scale_args,
)
from mars_action.video.writer import write_video

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg program not installed")


def picks(native_rate: float, count: int, video_only: bool = True, offset: float = 0.0):
    times = [(offset + i / native_rate) * 25 + 1 / (1 << 17) for i in range(count)]
    items = zip(times, range(count), strict=True)
    return list(cfr_select(items, frame_duration(native_rate), video_only))


def test_2997_fps_drops_frames_where_ffmpeg_does():
    # Debian ffmpeg 5.1 on a 104-frame 29.97 fps UCF101 clip wrote these 88 frames.
    runs = [(0, 11), (13, 17), (19, 23), (25, 29), (31, 35), (37, 41), (43, 47), (49, 53)]
    runs += [(55, 59), (61, 65), (67, 71), (73, 77), (79, 84), (86, 90), (92, 96), (98, 102)]
    expected = [k for first, last in runs for k in range(first, last + 1)]
    assert len(expected) == 88
    assert picks(30000 / 1001, 104) == expected


def test_25_fps_is_kept_and_lower_rates_repeat_frames():
    assert picks(25, 50) == list(range(50))
    fifteen = picks(15, 30)  # 2 s -> 50 output frames, each input shown 1 or 2 times
    assert len(fifteen) == 50 - 1  # the last frame's tail is cut, as the command does
    assert sorted(set(fifteen)) == list(range(30))
    assert max(np.bincount(fifteen)) == 2


def test_late_first_frame_starts_output_only_without_other_streams():
    alone = picks(25, 10, video_only=True, offset=0.2)  # first frame at 5 output frames
    assert alone == list(range(10))
    with_audio = picks(25, 10, video_only=False, offset=0.2)
    assert with_audio == [0] * 6 + list(range(1, 10))  # repeated back to time 0


def test_scale_follows_orientation():
    assert scale_args(320, 240) == "-1:256"
    assert scale_args(240, 320) == "256:-1"
    assert scale_args(256, 256) == "-1:256"


def moving_texture(count: int, height: int, width: int) -> np.ndarray:
    """A textured scene panning 3 px a frame, coloured like camera video (low saturation)."""
    rng = np.random.default_rng(0)
    grey = cv2.resize(
        rng.integers(0, 256, (height // 4, width // 2), np.uint8), (width * 2, height)
    )
    tint = cv2.resize(rng.integers(-24, 25, (4, 8, 3)).astype(np.float32), (width * 2, height))
    base = np.clip(cv2.GaussianBlur(grey, (5, 5), 0)[..., None] + tint, 0, 255).astype(np.uint8)
    return np.stack([np.roll(base, 3 * i, axis=1)[:, :width] for i in range(count)])


def ffmpeg_frames(video: Path, out: Path, *extra: str) -> list[bytes]:
    out.mkdir()
    width, height = cv2.VideoCapture(str(video)).get(3), cv2.VideoCapture(str(video)).get(4)
    scale = scale_args(int(width), int(height))
    command = [FFMPEG, "-v", "error", "-i", str(video), *extra, "-q:v", "2", "-vf"]
    subprocess.run([*command, f"scale={scale}", str(out / "%05d.jpg")], check=True)
    return [path.read_bytes() for path in sorted(out.glob("*.jpg"))]


def ffmpeg_indices(video: Path, tmp: Path) -> list[int]:
    """Which native frame each ``-r 25`` output frame is (same encoder: same bytes)."""
    native = ffmpeg_frames(video, tmp / "native", "-vsync", "passthrough")
    index = {hashlib.md5(data).digest(): k for k, data in enumerate(native)}
    return [
        index[hashlib.md5(data).digest()] for data in ffmpeg_frames(video, tmp / "r25", "-r", "25")
    ]


def decoded(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).astype(np.int16)


@needs_ffmpeg
@pytest.mark.parametrize(
    ("fps", "height", "width"), [(30000 / 1001, 120, 160), (25, 120, 160), (15, 160, 96)]
)
def test_same_frames_as_the_ffmpeg_command(tmp_path, fps, height, width):
    video = write_video(tmp_path / "clip.mp4", moving_texture(40, height, width), fps=fps)
    reference = ffmpeg_frames(video, tmp_path / "ref", "-r", "25")
    ours = list(iter_released_jpegs(video))
    assert len(ours) == len(reference)
    assert released_indices(video) == ffmpeg_indices(video, tmp_path)
    for mine, theirs in zip(ours, reference, strict=True):
        assert decoded(mine).shape == decoded(theirs).shape
        assert np.abs(decoded(mine) - decoded(theirs)).mean() <= 0.5


@needs_ffmpeg
def test_ucf101_2997_fps_clip_matches_the_command(ucf101_subset, tmp_path):
    clip = next(
        path
        for path in sorted(ucf101_subset.glob("*/*.mp4"))
        if cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) < 29.98
        and cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) > 29.9
    )
    reference = ffmpeg_frames(clip, tmp_path / "ref", "-r", "25")
    ours = list(iter_released_jpegs(clip))
    assert len(ours) == len(reference)
    worst = max(
        np.abs(decoded(a) - decoded(b)).mean() for a, b in zip(ours, reference, strict=True)
    )
    assert worst <= 0.5


def test_mars_frames_released_preset_writes_the_store(tmp_path):
    video = write_video(tmp_path / "videos" / "wave" / "a.mp4", moving_texture(30, 120, 160), 30)
    summary = extract_frames(tmp_path / "videos", tmp_path / "frames", workers=1, preset="released")
    assert not summary.failures
    out = tmp_path / "frames" / "wave" / "a"
    expected = len(picks(30, 30))  # 1 s at 30 fps: drops wait for a 1.1-frame drift
    assert framestore.frame_count(out) == len(list(iter_released_jpegs(video))) == expected == 27
    assert framestore.read_rgb(out, [0]).shape == (1, 256, 341, 3)
    assert completeness.read_done(out) == {"frames": expected}


def test_paper_configs_refuse_frames_made_otherwise(tmp_path):
    from mars_action.errors import MarsError
    from mars_action.training.config import load_experiment
    from mars_action.video import store

    config = Path(__file__).resolve().parents[1] / "configs/paper/ucf101_rgb_16f.yaml"
    assert load_experiment(config).data.frames == "released"
    assert load_experiment(config, [f"data.frame_root={tmp_path}"])  # nothing recorded: passes
    store.record(tmp_path, {"preset": "mars", "fps": 25.0, "short_side": 256})
    with pytest.raises(MarsError, match="frames made with --preset mars"):
        load_experiment(config, [f"data.frame_root={tmp_path}"])
    assert load_experiment(config, [f"data.frame_root={tmp_path}", "data.frames=null"])
