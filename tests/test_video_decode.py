"""Decoding: fps resampling by timestamp, resizing, rotation, audio tracks, seeking, probe."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import moving_square_frames

from mars_action.errors import MarsError
from mars_action.video import decode
from mars_action.video.decode import (
    VideoError,
    decode_video,
    iter_frames,
    probe,
    resample,
    resized_size,
)


def gray_ramp(num_frames: int, height: int = 32, width: int = 48, step: int = 4) -> np.ndarray:
    """Flat frames whose gray level says their index (``step * i``), to see which was picked."""
    levels = (np.arange(num_frames) * step).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (num_frames, height, width, 3)).copy()


def picked(frames: np.ndarray, step: int = 4) -> list[int]:
    """Source indices of decoded gray-ramp frames."""
    return [int(round(float(frame.mean()) / step)) for frame in frames]


def write_av(
    path, frames, rate=25, codec="ffv1", pix_fmt="bgr0", pts_ms=None, rotation=0, audio=False
):
    """Write with PyAV directly: odd sizes (ffv1 is lossless), explicit pts (VFR),
    a display rotation, or an AAC audio track beside the video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "0"}
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=44100) if audio else None
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        if sound is not None:
            for i in range(round(len(frames) / rate * 44100 / 1024)):
                chunk = av.AudioFrame.from_ndarray(
                    np.zeros((2, 1024), np.float32), format="fltp", layout="stereo"
                )
                chunk.sample_rate, chunk.pts = 44100, i * 1024
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path


def test_30fps_two_seconds_gives_50_frames_nearest_in_time(make_video):
    path = make_video("f30.mp4", gray_ramp(60), fps=30, crf=0)
    frames = decode_video(path, fps=25, short_side=None)
    assert frames.shape == (50, 32, 48, 3)
    # Output k at k/25 s takes source frame round(k * 30 / 25) (never a tie at 30 -> 25).
    assert picked(frames) == [round(k * 30 / 25) for k in range(50)]


def test_2997_fps_resamples_by_timestamp(make_video):
    path = make_video("ntsc.mp4", gray_ramp(30), fps=30000 / 1001, crf=0)
    info = probe(path)
    assert info.fps == pytest.approx(29.97, abs=1e-3)
    assert info.duration == pytest.approx(30 * 1001 / 30000)
    frames = decode_video(path, fps=25, short_side=None)
    # Grid times k/25 s below the clip's end (1.001 s): k = 0..25.
    assert len(frames) == 26
    assert picked(frames) == [min(29, round(k / 25 * 30000 / 1001)) for k in range(26)]


def test_native_rate_and_upsampling(make_video):
    path = make_video("f10.mp4", gray_ramp(10, step=20), fps=10, crf=0)
    assert len(decode_video(path, fps=None, short_side=None)) == 10
    frames = decode_video(path, fps=25, short_side=None)
    assert len(frames) == 25  # 1 s at 25 fps: frames repeat
    assert picked(frames, step=20) == [min(9, round(k * 10 / 25)) for k in range(25)]


def test_variable_frame_rate(tmp_path):
    pts = [0, 40, 100, 110, 200, 400]
    path = write_av(
        tmp_path / "vfr.mp4", gray_ramp(6, step=40), codec="libx264", pix_fmt="yuv420p", pts_ms=pts
    )
    decoded = list(iter_frames(path, fps=25, short_side=None))
    assert np.allclose([t for t, _ in decoded], np.arange(11) * 0.04)
    frames = [frame for _, frame in decoded]
    # Nearest frame in time; the last one (0.4 s) lasts until 0.44 s.
    assert picked(np.stack(frames), step=40) == [0, 1, 2, 3, 4, 4, 4, 4, 5, 5, 5]


def test_resample_pure_grid():
    timed = [(t, None, i) for i, t in enumerate([0.0, 0.5, 1.0])]
    # Grid 0, .25, ..., 1.25: a tie at a midpoint goes to the later item; the last item
    # lasts as long as the gap before it (no duration given), so up to 1.5 s.
    assert [i for _, i in resample(timed, fps=4)] == [0, 1, 1, 2, 2, 2]
    assert [i for _, i in resample(timed, fps=4, start=0.5, end=1.0)] == [1, 2]
    assert list(resample([], fps=4)) == []
    with pytest.raises(ValueError, match="fps must be positive"):
        list(resample(timed, fps=0))


@pytest.mark.parametrize(
    "size, short, expected",
    [
        ((320, 240), 256, (341, 256)),
        ((240, 320), 256, (256, 341)),
        ((47, 33), 21, (30, 21)),
        ((256, 256), 256, (256, 256)),
    ],
)
def test_resized_size_keeps_aspect(size, short, expected):
    assert resized_size(*size, short) == expected


def test_odd_size_resize_and_exact_pixels(tmp_path):
    frames = moving_square_frames(4, height=33, width=47)
    path = write_av(tmp_path / "odd.mkv", frames)
    assert np.array_equal(decode_video(path, fps=None, short_side=None), frames)
    resized = decode_video(path, fps=None, short_side=21)
    assert resized.shape == (4, 21, 30, 3)
    up = decode_video(path, fps=None, short_side=66)
    assert up.shape == (4, 66, 94, 3)


@pytest.mark.parametrize("rotation, corner", [(90, (-1, 0)), (180, (-1, -1)), (270, (0, -1))])
def test_rotation_metadata_is_applied(tmp_path, rotation, corner):
    frames = np.zeros((2, 32, 64, 3), np.uint8)
    frames[:, :8, :8] = 255  # a white block in the stored top-left corner
    path = write_av(
        tmp_path / f"rot{rotation}.mp4",
        frames,
        codec="libx264",
        pix_fmt="yuv420p",
        rotation=rotation,
    )
    info = probe(path)
    assert info.rotation == rotation
    out = decode_video(path, fps=None, short_side=None)
    expected_shape = (64, 32) if rotation in (90, 270) else (32, 64)
    assert (info.height, info.width) == expected_shape
    assert out.shape == (2, *expected_shape, 3)
    assert out[0, corner[0], corner[1]].min() > 200  # the block moved to the rotated corner
    assert out[0, 16, 16].max() < 50
    # The short side is the same whichever way the video is shown.
    assert min(decode_video(path, fps=None, short_side=16).shape[1:3]) == 16


def test_audio_track_is_ignored(tmp_path):
    frames = gray_ramp(25)
    path = write_av(
        tmp_path / "with audio.mp4", frames, codec="libx264", pix_fmt="yuv420p", audio=True
    )
    info = probe(path)
    assert info.has_audio and info.num_frames == 25
    decoded = decode_video(path, fps=25, short_side=None)
    assert picked(decoded) == list(range(25))


def test_start_end_seek_matches_full_decode(make_video):
    path = make_video("long.mp4", gray_ramp(60), fps=25, crf=0, options={"g": "10"})
    full = decode_video(path, fps=25, short_side=None)
    part = decode_video(path, fps=25, short_side=None, start=1.2, end=1.6)
    assert np.array_equal(part, full[30:40])
    times = [t for t, _ in iter_frames(path, fps=25, short_side=None, start=1.2, end=1.6)]
    assert np.allclose(times, np.arange(30, 40) / 25)


def test_seeking_skips_unreferenced_frames_before_the_window(make_video):
    # Lossy H.264 with B-frames (lossless has none) and one keyframe every 60 frames.
    path = make_video("gop.mp4", moving_square_frames(60), fps=25, crf=18, options={"g": "60"})
    full = decode_video(path, fps=25, short_side=None)
    for start in (0.4, 1.0, 1.72):
        k = round(start * 25)
        part = decode_video(path, fps=25, short_side=None, start=start, end=start + 0.4)
        assert np.array_equal(part, full[k : k + 10])  # references intact: bit-exact frames
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [t for t, _, _ in decode._decode(container, stream, path, 1, skip_until=1.6)]
    assert len(times) < 50  # B-frames before 1.6 s were not decoded
    assert np.allclose([t for t in times if t >= 1.6 - 1e-6], np.arange(40, 60) / 25)


def test_one_frame_and_unicode_path(make_video):
    path = make_video("clé vidéo 動画.mp4", gray_ramp(1), fps=25)
    info = probe(path)
    assert info.num_frames == 1 and (info.width, info.height) == (48, 32)
    assert decode_video(path, short_side=32).shape == (1, 32, 48, 3)


def test_errors_are_video_errors_with_reason(tmp_path, make_video):
    (tmp_path / "empty.mp4").touch()
    (tmp_path / "text.mp4").write_text("not a video\n" * 20)
    cases = {
        tmp_path / "missing.mp4": "no such file",
        tmp_path / "empty.mp4": "empty file",
        tmp_path / "text.mp4": "not a readable video",
    }
    for path, reason in cases.items():
        with pytest.raises(VideoError, match=reason) as info:
            probe(path)
        assert isinstance(info.value, MarsError) and str(path) in str(info.value)
        assert "\n" not in str(info.value)
    path = make_video("ok.mp4", gray_ramp(10))
    with pytest.raises(VideoError, match="no frames in the requested time range"):
        decode_video(path, start=5.0)


def test_unreadable_permissions(make_video, monkeypatch):
    path = make_video("locked.mp4", gray_ramp(5))
    path.chmod(0)
    if os.access(path, os.R_OK):  # running as root, where the mode does not stop reading
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: p != path and real_access(p, mode))
    with pytest.raises(VideoError, match="permission denied"):
        probe(path)
