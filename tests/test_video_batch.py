"""The batch runner: sharding, skipping, one reason per failure, reports, crash isolation."""

from __future__ import annotations

import csv
import json
import os

import pytest

from mars_action.errors import MarsError
from mars_action.video.batch import CRASH_REASON, in_shard, parse_shard, run_batch


def square_job(item: int) -> dict:
    if item == 3:
        raise ValueError("three is bad\nsecond line of detail")
    if item == 4:
        raise MarsError("item 4: a user-facing reason")
    return {"square": item * item}


def crashing_job(item: int) -> dict:
    if item == 5:
        os._exit(1)  # a worker dying hard, as a segfault would
    return {"square": item * item}


def test_parse_shard():
    assert parse_shard("0/1") == (0, 1)
    assert parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(MarsError, match="--shard"):
            parse_shard(bad)


def test_shards_partition_the_items():
    keys = [f"class/video_{i}.mp4" for i in range(200)]
    owners = [[i for i in range(4) if in_shard(key, (i, 4))] for key in keys]
    assert all(len(owner) == 1 for owner in owners)
    sizes = [sum(owner == [i] for owner in owners) for i in range(4)]
    assert min(sizes) > 30  # roughly balanced


def test_failures_have_one_line_reasons_and_reports(tmp_path):
    summary = run_batch(
        list(range(6)),
        square_job,
        workers=1,
        desc="squares",
        skip=lambda item: item == 0,
        report_path=tmp_path / "report.json",
    )
    assert [r.status for r in summary.results] == [
        "skipped",
        "done",
        "done",
        "failed",
        "failed",
        "done",
    ]
    assert summary.results[3].reason == "ValueError: three is bad"
    assert summary.results[4].reason == "item 4: a user-facing reason"
    assert summary.results[5].figures == {"square": 25}
    assert (summary.count("done"), summary.count("skipped"), summary.count("failed")) == (3, 1, 2)
    assert summary.exit_code == 1
    text = summary.format()
    assert text.splitlines()[0].startswith("squares: 3 done, 1 skipped, 2 failed")
    assert "  failed: 3: ValueError: three is bad" in text
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["done"], report["skipped"], report["failed"]) == (3, 1, 2)
    assert report["items"][4]["reason"] == "item 4: a user-facing reason"
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [row["status"] for row in rows] == [r.status for r in summary.results]
    assert rows[2]["square"] == "4" and rows[3]["square"] == ""


def test_all_done_exits_zero():
    summary = run_batch([1, 2], square_job, workers=1)
    assert summary.exit_code == 0 and summary.failures == []


def test_pool_isolates_a_crashing_worker():
    summary = run_batch(list(range(10)), crashing_job, workers=2, desc="crash")
    failed = {r.item: r.reason for r in summary.failures}
    assert failed == {"5": CRASH_REASON}
    assert [r.item for r in summary.results] == [str(i) for i in range(10)]  # input order
    assert summary.results[9].figures == {"square": 81}


def test_sharded_runs_cover_everything_once():
    done = []
    for index in range(3):
        summary = run_batch(list(range(30)), square_job, workers=1, shard=(index, 3))
        done += [r.item for r in summary.results]
    assert sorted(done, key=int) == [str(i) for i in range(30)]


def interrupting_job(item: int) -> dict:
    if item == 2:
        raise KeyboardInterrupt
    return {}


def test_interrupted_run_still_writes_its_report(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_batch(list(range(5)), interrupting_job, workers=1, report_path=tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["done"], report["failed"], report["not_run"]) == (2, 0, 3)
    assert not list(tmp_path.glob(".*.tmp"))
