"""``mars flow`` end to end (frame store and videos, resume, failures) and ``mars flow-check``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import moving_square_frames

from mars_action.cli import main
from mars_action.flow.check import run_flow_check
from mars_action.flow.quantize import dequantize
from mars_action.video import framestore


def _store(root, videos=("a", "b"), frames=6):
    for name in videos:
        framestore.write_frames(root / "walk" / name, moving_square_frames(frames, 64, 80, step=2))
    return root


def _square_speed(codes: np.ndarray) -> float:
    """Median dequantized x flow inside the square of the first pair."""
    flow = dequantize(codes[0])
    return float(np.median(flow[21 + 5 : 42 - 5, 4 + 5 : 25 - 5, 0]))


def test_flow_beside_a_frame_store_resumes_and_reports_a_bad_video(tmp_path, capsys):
    root = _store(tmp_path / "frames")
    bad = root / "walk" / "broken"
    framestore.write_frames(bad, moving_square_frames(3, 64, 80))
    (bad / "00002.jpg").write_bytes(b"not a jpeg")
    framestore.write_frames(root / "walk" / "single", moving_square_frames(1, 64, 80))

    assert main(["flow", str(root), "--workers", "2"]) == 1
    out = capsys.readouterr()
    assert "2 done, 0 skipped, 2 failed" in out.err
    assert "not a readable JPEG" in out.err and "flow needs at least 2" in out.err
    video = root / "walk" / "a"
    assert framestore.flow_count(video) == 5 and framestore.is_done(video, "TVL1jpg_done")
    codes = framestore.read_flow(video, range(5))
    assert codes.shape == (5, 64, 80, 2)
    assert _square_speed(codes) == pytest.approx(2.0, abs=0.2)
    assert not framestore.is_done(bad, "TVL1jpg_done") and framestore.flow_count(bad) == 0
    report = json.loads((root / "flow-tvl1-report.json").read_text())
    assert {item["item"]: item["figures"].get("pairs") for item in report["items"]}["walk/a"] == 5

    before = (video / "TVL1jpg_x_00001.jpg").stat().st_mtime_ns
    assert main(["flow", str(root), "--workers", "1"]) == 1
    assert "0 done, 2 skipped, 2 failed" in capsys.readouterr().err
    assert (video / "TVL1jpg_x_00001.jpg").stat().st_mtime_ns == before


def test_other_methods_write_their_own_prefix_and_stale_files_go(tmp_path, capsys):
    root = _store(tmp_path / "frames", videos=("a",))
    stale = root / "walk" / "a" / "FARNjpg_x_00042.jpg"
    stale.write_bytes(b"left by an interrupted run")
    assert main(["flow", str(root), "--method", "farneback", "--workers", "1"]) == 0
    assert main(["flow", str(root), "--method", "mpeg", "--workers", "1"]) == 0
    video = root / "walk" / "a"
    assert not stale.exists()
    for prefix in ("FARNjpg_", "MPEGjpg_"):
        assert framestore.flow_count(video, prefix) == 5
        assert framestore.is_done(video, f"{prefix}done")
        speed = _square_speed(framestore.read_flow(video, [0], prefix))
        assert speed == pytest.approx(2.0, abs=0.5)
    assert framestore.flow_count(video) == 0  # no TV-L1 written
    assert "1 done" in capsys.readouterr().out


def test_flow_straight_from_videos_writes_no_rgb(tmp_path, make_video, capsys):
    videos = tmp_path / "videos"
    for name in ("one", "two"):
        path = make_video(f"{name}.mp4", moving_square_frames(4, 48, 64))
        (videos / "walk").mkdir(parents=True, exist_ok=True)
        path.rename(videos / "walk" / f"{name}.mp4")
    (videos / "walk" / "junk.mp4").write_bytes(b"not a video")
    out = tmp_path / "flow"
    args = ["flow", str(videos), "--out", str(out), "--method", "tvl1-torch", "--prefix", "T_"]
    code = main([*args, "--fps", "0", "--short-side", "0", "--workers", "1"])
    assert code == 1
    assert "2 done, 0 skipped, 1 failed" in capsys.readouterr().err
    folder = out / "walk" / "one"
    assert framestore.flow_count(folder, "T_") == 3 and framestore.frame_count(folder) == 0
    assert framestore.read_flow(folder, [0], "T_").shape == (1, 48, 64, 2)
    assert framestore.is_done(folder, "T_done")


def test_flow_needs_out_for_videos_and_checks_arguments(tmp_path, make_video, capsys):
    videos = tmp_path / "videos" / "walk"
    videos.mkdir(parents=True)
    make_video("x.mp4").rename(videos / "x.mp4")
    assert main(["flow", str(tmp_path / "videos")]) == 2
    assert "needs --out" in capsys.readouterr().err
    assert main(["flow", str(tmp_path), "--device", "cuda"]) == 2
    assert "only tvl1-torch" in capsys.readouterr().err


def test_shards_split_the_videos(tmp_path, capsys):
    root = _store(tmp_path / "frames", videos=("a", "b", "c", "d"), frames=3)
    for index in range(2):
        main(
            ["flow", str(root), "--method", "farneback", "--shard", f"{index}/2", "--workers", "1"]
        )
    capsys.readouterr()
    assert all(framestore.flow_count(folder, "FARNjpg_") == 2 for folder in root.glob("walk/*"))
    assert (root / "flow-farneback-report-shard-1-of-2.json").is_file()


def test_flow_check_writes_table_json_and_figure(tmp_path, ucf101_subset):
    video = sorted((ucf101_subset / "Biking").glob("*.mp4"))[0]
    report = run_flow_check(
        ["tvl1", "farneback"], tmp_path, size=(48, 64), real_videos=[video], real_short_side=48
    )
    assert (tmp_path / "flow-check.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "flow-check.json").read_text())
    assert saved["synthetic"]["translation"]["tvl1"]["epe_interior"] < 0.05
    tvl1, farneback = (saved["synthetic"]["rotation"][m]["epe"] for m in ("tvl1", "farneback"))
    assert tvl1 < farneback
    assert report["real"]["mean"]["torch_epe"] < 0.05
    assert report["real"]["mean"]["torch_identical_codes"] > 0.95
