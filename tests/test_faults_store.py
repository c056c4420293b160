"""Fault matrix, stores: concurrent writers, dead writers' claims, kill -9 and SIGTERM, records.

Small synthetic videos on the CPU; the real-clip repetitions are benchmarks/fault_matrix.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import moving_square_frames

from mars_action.cli import main
from mars_action.flow.extract import FlowJob, extract_flow
from mars_action.video import completeness
from mars_action.video import framestore as fs
from mars_action.video.claim import ClaimedElsewhere, claim
from mars_action.video.extract import extract_frames
from mars_action.video.writer import write_video

MARS = [sys.executable, "-m", "mars_action.cli"]


def make_videos(root: Path, count: int, frames: int = 12) -> Path:
    """``root/src/c<i%2>/v<i>.mp4`` and a list of them; returns the list."""
    lines = []
    for i in range(count):
        path = root / "src" / f"c{i % 2}" / f"v{i}.mp4"
        write_video(path, moving_square_frames(frames + i, 48, 64, seed=i))
        lines.append(f"c{i % 2}/v{i}.mp4")
    listing = root / "src" / "list.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def hold_lock(video_dir: Path, marker: str = "done"):
    """Lock a video's claim file as another process would (flock is per open file)."""
    lock = video_dir.with_name(f".{video_dir.name}.{marker}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock, "w")  # noqa: SIM115 - held until the test closes it
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write("4242")
    handle.flush()
    return handle


def test_done_records_what_was_written_and_old_empty_markers_still_count(tmp_path):
    video = tmp_path / "c" / "v"
    assert fs.write_frames(video, moving_square_frames(7)) == 7
    assert completeness.read_done(video) == {"frames": 7} and completeness.done_problem(video) == ""
    (video / "00004.jpg").unlink()  # a set marked done that lost a frame
    assert completeness.done_problem(video) == f"{video}: marked done with 7 frames, holds 6"
    (video / "done").write_text("")  # an old empty marker: done, nothing to check
    assert fs.is_done(video) and completeness.read_done(video) == {}
    assert completeness.done_problem(video) == ""
    (video / "done").write_text("garbage")
    assert "not a JSON record" in completeness.done_problem(video)
    checked, problems = completeness.verify_store(tmp_path)
    assert checked == 1 and len(problems) == 1 and str(video) in problems[0]


def test_a_second_writer_skips_a_claimed_video_and_touches_nothing(tmp_path):
    video = tmp_path / "c" / "v"
    video.mkdir(parents=True)
    (video / "00001.jpg").write_bytes(b"the other writer's frame")
    other = hold_lock(video)
    try:
        with pytest.raises(ClaimedElsewhere, match="being written by another process .pid 4242"):
            fs.write_frames(video, moving_square_frames(3))
        assert (video / "00001.jpg").read_bytes() == b"the other writer's frame"
        assert not fs.is_done(video)
    finally:
        other.close()
    assert fs.write_frames(video, moving_square_frames(3)) == 3  # released: taken over
    assert completeness.read_done(video) == {"frames": 3}


def test_a_dead_writers_claim_and_temporary_folders_are_taken_over(tmp_path):
    video = tmp_path / "c" / "v"
    video.parent.mkdir(parents=True)
    (tmp_path / "c" / ".v.done.lock").write_text("999999")  # its holder died: no flock
    stale = tmp_path / "c" / ".v.done.999999-0badf00d.tmp"
    stale.mkdir()
    (stale / "00001.jpg").write_bytes(b"half")
    flow_temp = tmp_path / "c" / ".v.TVL1jpg_done.999999-0badf00d.tmp"
    flow_temp.mkdir()  # another set's temporary folder is not this claim's to remove
    assert fs.write_frames(video, moving_square_frames(4)) == 4
    assert not stale.exists() and flow_temp.exists()
    assert not (tmp_path / "c" / ".v.done.lock").exists()  # released and removed


def test_claims_nest_in_one_process(tmp_path):
    video = tmp_path / "c" / "v"
    with claim(video, "done"):
        assert fs.write_frames(video, moving_square_frames(2)) == 2


def test_batch_reports_a_claimed_video_as_skipped_not_failed(tmp_path):
    listing = make_videos(tmp_path, 2)
    out = tmp_path / "out"
    other = hold_lock(out / "c0" / "v0")
    try:
        summary = extract_frames(listing, out, workers=1, short_side=32)
    finally:
        other.close()
    by_item = {Path(r.item).name: r for r in summary.results}
    assert by_item["v0.mp4"].status == "skipped"
    assert "being written by another process" in by_item["v0.mp4"].reason
    assert by_item["v1.mp4"].status == "done" and summary.exit_code == 0
    assert not (out / "c0" / "v0").exists()


def test_two_and_three_concurrent_runs_leave_only_complete_videos(tmp_path):
    listing = make_videos(tmp_path, 6, frames=20)
    out = tmp_path / "out"
    runs = []
    for _ in range(3):
        command = [*MARS, "frames", str(listing), str(out), "--workers", "1"]
        runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        time.sleep(0.3)
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert not any(b"Traceback" in err for _, err in outputs)
    checked, problems = completeness.verify_store(out)
    assert (checked, problems) == (6, [])
    for video in completeness.list_video_dirs(out):
        assert completeness.read_done(video)["frames"] == fs.frame_count(video) > 0
    assert not [p for p in out.glob("*/.*") if p.name.endswith((".tmp", ".lock"))]


def running_children_write(out: Path, seconds: float = 1.0) -> bool:
    """Whether anything under ``out`` still changes (a surviving worker writing)."""
    before = sorted(str(p) for p in out.rglob("*"))
    time.sleep(seconds)
    return before != sorted(str(p) for p in out.rglob("*"))


def wait_for_temp(out: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if any(p.name.endswith(".tmp") for p in out.rglob(".*")):
            return
        time.sleep(0.02)
    pytest.fail("the run never started writing")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_leaves_no_worker_writing_and_a_rerun_completes(tmp_path, sig):
    listing = make_videos(tmp_path, 8, frames=60)
    out = tmp_path / "out"
    command = [*MARS, "frames", str(listing), str(out), "--workers", "2", "--quality", "100"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_temp(out, run)
    run.send_signal(sig)
    _, err = run.communicate(timeout=30)
    if sig == signal.SIGTERM:
        assert run.returncode == 130 and b"interrupted" in err and b"Traceback" not in err
        report = json.loads((out / "frames-report.json").read_text())
        assert report["not_run"] + report["done"] + report["skipped"] == 8
    time.sleep(0.5)  # a worker that outlived its run would still be writing now
    assert not running_children_write(out)
    checked, problems = completeness.verify_store(out)
    assert checked < 8 and problems == []  # cut short; whatever is marked done is complete
    assert main(["frames", str(listing), str(out), "--workers", "1", "--quality", "100"]) == 0
    checked, problems = completeness.verify_store(out)
    assert (checked, problems) == (8, [])
    assert not [p for p in out.glob("*/.*") if p.name.endswith((".tmp", ".lock"))]


def test_flow_marker_records_pairs_and_method_and_is_verified(tmp_path):
    video = tmp_path / "store" / "c" / "v"
    fs.write_frames(video, moving_square_frames(5, 48, 64))
    summary = extract_flow(tmp_path / "store", FlowJob(method="farneback"), workers=1)
    assert summary.exit_code == 0
    assert completeness.read_done(video, "TVL1jpg_done") == {"pairs": 4, "method": "farneback"}
    (video / "TVL1jpg_x_00002.jpg").unlink()
    problem = completeness.done_problem(video, "TVL1jpg_done")
    assert problem == f"{video}: marked TVL1jpg_done with 4 flow fields, holds 3"


def test_a_list_entry_leaving_out_is_one_failure_and_the_batch_goes_on(tmp_path):
    listing = make_videos(tmp_path, 2)
    src = listing.parent
    write_video(src / "...mp4", moving_square_frames(4))  # stem '..'
    (src / "sub").mkdir()
    listing.write_text(listing.read_text() + "sub/../...mp4\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "nest" / "out"
    out.mkdir(parents=True)
    (out / "c1").symlink_to(outside, target_is_directory=True)  # a class folder leading out
    summary = extract_frames(listing, out, workers=1, short_side=32)
    status = {Path(r.item).name: (r.status, r.reason) for r in summary.results}
    assert status["v0.mp4"][0] == "done"
    assert status["...mp4"][0] == "failed" and "would leave" in status["...mp4"][1]
    assert status["v1.mp4"][0] == "failed" and "outside the output folder" in status["v1.mp4"][1]
    assert summary.exit_code == 1
    assert list(outside.iterdir()) == [] and sorted(os.listdir(tmp_path / "nest")) == ["out"]
    assert sorted(os.listdir(tmp_path)) == ["nest", "outside", "src"]


def test_flow_of_a_video_claimed_by_another_run_is_skipped(tmp_path):
    store = tmp_path / "store"
    for name in ("c/v0", "c/v1"):
        fs.write_frames(store / name, moving_square_frames(4, 48, 64))
    other = hold_lock(store / "c" / "v0", "TVL1jpg_done")
    try:
        summary = extract_flow(store, FlowJob(method="farneback"), workers=1)
    finally:
        other.close()
    status = {Path(r.item).name: r.status for r in summary.results}
    assert status == {"v0": "skipped", "v1": "done"} and summary.exit_code == 0
    assert fs.flow_count(store / "c" / "v0") == 0 and fs.flow_count(store / "c" / "v1") == 3
