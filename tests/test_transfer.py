"""Motion transfer: the ratio, and where tables print it (fuse --table, report, JSON)."""

from __future__ import annotations

import numpy as np
import pytest

from mars_action.evaluation import VideoScores, format_table, stream_table
from mars_action.evaluation.report import build_report
from mars_action.evaluation.scores import save_scores
from mars_action.evaluation.transfer import transfer, transfer_rows

CLASSES = ["a", "b"]
IDS = [f"v{i}" for i in range(10)]
LABELS = np.array([0, 1] * 5)


def scores(stream: str, correct: int) -> VideoScores:
    """A stream right on its first ``correct`` of 10 videos."""
    values = np.zeros((10, 2), dtype=np.float32)
    for i, label in enumerate(LABELS):
        values[i, label if i < correct else 1 - label] = 1.0
    return VideoScores(IDS, LABELS, values, CLASSES, stream)


def test_transfer_is_the_share_of_flows_lead():
    assert transfer(40.0, 20.0, 60.0) == pytest.approx(0.5)
    assert transfer(10.0, 20.0, 60.0) == pytest.approx(-0.25)
    assert transfer(0.6, 0.2, 0.6) == pytest.approx(1.0)
    assert transfer(30.0, 20.0, 20.0) is None  # no lead: nothing to transfer


def test_transfer_rows_use_the_rgb_control_when_measured():
    rows = transfer_rows({"rgb": 20.0, "flow": 60.0, "mars": 50.0, "rgb_continued": 30.0})
    assert rows == {"mars": {"transfer": pytest.approx(0.75),
                             "transfer_vs_control": pytest.approx(2 / 3)}}
    assert transfer_rows({"rgb": 20.0, "mars": 50.0}) == {}


def test_the_table_prints_transfer_for_mars_and_mers():
    streams = {"rgb": scores("rgb", 2), "flow": scores("flow", 8), "mers": scores("mers", 5),
               "mars": scores("mars", 8), "rgb_continued": scores("rgb", 4)}
    rows = stream_table(streams)
    by_name = {row["name"]: row for row in rows if row}
    assert by_name["MERS"]["transfer"] == pytest.approx(0.5)
    assert by_name["MARS"]["transfer"] == pytest.approx(1.0)
    assert by_name["MARS"]["transfer_vs_control"] == pytest.approx(1.0)
    assert by_name["MERS"]["transfer_vs_control"] == pytest.approx(0.25)
    assert "transfer" not in by_name["RGB"]
    text = format_table(rows)
    assert "Transfer" in text and "vs control" in text
    mers_line = next(line for line in text.splitlines() if line.startswith("MERS "))
    assert mers_line.split()[-2:] == ["0.50", "0.25"]


def test_no_transfer_column_without_a_student():
    text = format_table(stream_table({"rgb": scores("rgb", 2), "flow": scores("flow", 8)}))
    assert "Transfer" not in text


def test_the_report_shows_the_transfer_columns(tmp_path):
    paths = []
    for stream, correct in (("rgb", 2), ("flow", 8), ("mars", 6)):
        paths.append(str(save_scores(tmp_path / f"{stream}.npz", scores(stream, correct))))
    page = build_report(paths)
    assert "<th>Transfer</th>" in page and "0.67" in page
