"""``mars frames``: the bad-input corpus, lists, sharding, resuming, and real UCF101 clips."""

from __future__ import annotations

import json
import os

import av
import numpy as np
import pytest
from conftest import moving_square_frames

from mars_action.cli import main
from mars_action.errors import MarsError
from mars_action.video import completeness
from mars_action.video import framestore as fs
from mars_action.video.decode import decode_video, probe
from mars_action.video.extract import decoder_threads, find_videos
from mars_action.video.writer import write_video


def write_audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        for i in range(10):
            chunk = av.AudioFrame.from_ndarray(
                np.zeros((2, 1024), np.float32), format="fltp", layout="stereo"
            )
            chunk.sample_rate, chunk.pts = 44100, i * 1024
            container.mux(stream.encode(chunk))
        container.mux(stream.encode())


def write_faststart(path, frames):
    """An MP4 with its index first, so that cutting it keeps it openable but short."""
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())


def cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def bad_corpus(root):
    """A class folder with good videos between every kind of bad input; returns reasons."""
    folder = root / "Mixed Class"
    frames = moving_square_frames(10, 48, 64)
    write_video(folder / "a_good.mp4", frames)
    write_video(folder / "clé vidéo 動画 one frame.mp4", frames[:1])
    (folder / "empty.mp4").touch()
    (folder / "text.mp4").write_text("this is not a video\n" * 50)
    write_video(folder / "truncated.mp4", moving_square_frames(50, 48, 64))
    cut_in_half(folder / "truncated.mp4")
    write_faststart(folder / "truncated_faststart.mp4", moving_square_frames(100, 48, 64))
    cut_in_half(folder / "truncated_faststart.mp4")
    write_audio_only(folder / "audio.m4a")
    write_video(folder / "locked.mp4", frames)
    (folder / "locked.mp4").chmod(0)
    write_video(folder / "z_good.avi", frames, codec="mpeg4", crf=None)
    (folder / "notes.txt").write_text("not a video, not even tried")
    return {
        "empty.mp4": "empty file (0 bytes)",
        "text.mp4": "not a readable video",
        "truncated.mp4": "not a readable video",
        "truncated_faststart.mp4": "truncated",
        "audio.m4a": "no video stream (audio only)",
        "locked.mp4": "permission denied",
    }


def fake_unreadable(monkeypatch, name):
    """Root reads any file whatever its mode: make ``os.access`` say no for ``name``."""
    if os.geteuid() == 0:
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: not str(p).endswith(name) and real_access(p, mode)
        )


def report_items(path):
    return {os.path.basename(i["item"]): i for i in json.loads(path.read_text())["items"]}


def test_bad_corpus_each_gets_one_reason_and_exit_is_nonzero(tmp_path, monkeypatch, capsys):
    reasons = bad_corpus(tmp_path / "videos")
    fake_unreadable(monkeypatch, "locked.mp4")
    out = tmp_path / "frames"
    assert main(["frames", str(tmp_path / "videos"), str(out), "--workers", "1"]) == 1
    items = report_items(out / "frames-report.json")
    assert len(items) == 9  # notes.txt is not a video candidate
    for name, reason in reasons.items():
        assert items[name]["status"] == "failed" and reason in items[name]["reason"], name
        assert "\n" not in items[name]["reason"]
    for name, count in [
        ("a_good.mp4", 10),
        ("clé vidéo 動画 one frame.mp4", 1),
        ("z_good.avi", 10),
    ]:
        assert items[name]["status"] == "done" and items[name]["figures"]["frames"] == count
        video = out / "Mixed Class" / name.rsplit(".", 1)[0]
        assert fs.is_done(video) and fs.frame_count(video) == count
    assert completeness.list_video_dirs(out) == sorted(
        [
            out / "Mixed Class" / "a_good",
            out / "Mixed Class" / "clé vidéo 動画 one frame",
            out / "Mixed Class" / "z_good",
        ]
    )
    err = capsys.readouterr().err
    assert "frames: 3 done, 0 skipped, 6 failed" in err
    assert "empty.mp4: " in err and (out / "frames-report.csv").is_file()
    # Resuming: the done ones are skipped, the bad ones fail again.
    assert main(["frames", str(tmp_path / "videos"), str(out), "--workers", "1"]) == 1
    items = report_items(out / "frames-report.json")
    assert sum(i["status"] == "skipped" for i in items.values()) == 3


def test_list_input_shards_and_resume(tmp_path):
    paths = [
        write_video(tmp_path / "src" / cls / f"{cls}_{i}.mp4", moving_square_frames(5 + i))
        for cls in ("walk", "run")
        for i in range(3)
    ]
    listing = tmp_path / "src" / "list.txt"
    lines = ["# a comment", "", "walk/walk_0.mp4", *map(str, paths[1:]), "walk/missing.mp4"]
    listing.write_text("\r\n".join(lines) + "\r\n")
    out = tmp_path / "out"
    for index, workers in ((0, 2), (1, 1)):
        code = main(
            [
                "frames",
                str(listing),
                str(out),
                "--shard",
                f"{index}/2",
                "--workers",
                str(workers),
                "--short-side",
                "32",
            ]
        )
        assert code in (0, 1)
    done = {p.name for p in completeness.list_video_dirs(out) if fs.is_done(p)}
    assert done == {p.stem for p in paths}
    assert fs.frame_count(out / "run" / "run_2") == 7
    assert fs.read_rgb(out / "run" / "run_2", [0]).shape == (1, 32, 40, 3)
    shard_items = [report_items(out / f"frames-report-shard-{i}-of-2.json") for i in range(2)]
    assert sum(len(items) for items in shard_items) == 7
    missing = [i for items in shard_items for i in items.values() if i["status"] == "failed"]
    assert [os.path.basename(m["item"]) for m in missing] == ["missing.mp4"]
    assert "no such file" in missing[0]["reason"]
    # Everything done is skipped on the next run; only the missing file fails again.
    again = ["frames", str(listing), str(out), "--short-side", "32"]
    assert main([*again, "--report", str(tmp_path / "r.json")]) == 1
    statuses = [i["status"] for i in report_items(tmp_path / "r.json").values()]
    assert sorted(statuses) == ["failed"] + ["skipped"] * 6


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["frames", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "no such folder or list file" in capsys.readouterr().err
    assert main(["frames", str(tmp_path), str(tmp_path / "out"), "--shard", "2/2"]) == 2
    assert main(["frames", str(tmp_path), str(tmp_path / "out"), "--quality", "0"]) == 2
    assert main(["frames", str(tmp_path), str(tmp_path / "out"), "--fps", "-25"]) == 2


def test_same_output_folder_is_refused(tmp_path):
    write_video(tmp_path / "c" / "v.mp4", moving_square_frames(2))
    write_video(tmp_path / "c" / "v.avi", moving_square_frames(2), codec="mpeg4", crf=None)
    with pytest.raises(MarsError, match="same output folder c/v"):
        find_videos(tmp_path)


def test_real_ucf101_clips(ucf101_subset, tmp_path):
    clips = sorted(ucf101_subset.glob("*/*.mp4"))[:2]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(map(str, clips)))
    out = tmp_path / "frames"
    assert main(["frames", str(listing), str(out), "--workers", "1"]) == 0
    for clip in clips:
        video = out / clip.parent.name / clip.stem
        info = probe(clip)
        assert (info.width, info.height) == (320, 240) and info.has_audio
        count = fs.frame_count(video)
        assert abs(count - info.duration * 25) <= 1
        first = fs.read_rgb(video, [0, count - 1])
        assert first.shape == (2, 256, 341, 3)
        decoded = decode_video(clip, end=0.04)
        assert decoded.shape == (1, 256, 341, 3)
        assert np.abs(first[0].astype(int) - decoded[0].astype(int)).mean() < 4  # JPEG q95


def test_decoder_threads_share_the_cores_and_the_report_has_cpu_time(tmp_path, capsys):
    assert [decoder_threads(w, cores=8) for w in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    write_video(tmp_path / "videos" / "c" / "v.mp4", moving_square_frames(6))
    out = tmp_path / "frames"
    assert main(["frames", str(tmp_path / "videos"), str(out), "--threads", "1"]) == 0
    (item,) = json.loads((out / "frames-report.json").read_text())["items"]
    assert item["figures"]["frames"] == 6 and 0 < item["figures"]["cpu_seconds"] < 60
    assert main(["frames", str(tmp_path / "videos"), str(out), "--threads", "0"]) == 2
    assert "--threads 0: must be at least 1" in capsys.readouterr().err
