"""``mars report``: every table it is given; figures that say what they show."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from mars_action.evaluation.curves import run_title
from mars_action.evaluation.report import build_report
from mars_action.evaluation.scores import VideoScores, save_scores
from mars_action.evaluation.static import static_summary

LABELS = np.array([0, 1, 2, 0, 1, 2])


def scores(stream, predictions, static=False):
    eye = np.eye(3, dtype=np.float32)[predictions]
    ids = [f"v{i}" for i in range(len(LABELS))]
    return VideoScores(ids, LABELS, eye, ["a", "b", "c"], stream, info={"static": static})


def test_runs_and_the_static_analysis_keep_both_tables(tmp_path):
    runs, static = tmp_path / "runs", tmp_path / "analysis/static"
    for stream, predictions in (("rgb", [0, 1, 2, 0, 0, 0]), ("flow", [0, 1, 2, 1, 1, 2]),
                                ("mars", [0, 1, 2, 0, 1, 0])):
        save_scores(runs / stream / "scores/test.npz", scores(stream, predictions))
        # mars analyze static writes the normal clips again, and the static ones
        save_scores(static / f"{stream}.npz", scores(stream, predictions))
        save_scores(static / f"{stream}_static.npz", scores(stream, [0] * 6, static=True))
    page = build_report([runs, static])
    assert "Streams and fusions (Table 1 layout, equal weights)</h2>" in page
    assert "Streams and fusions (Table 1 layout, equal weights, static clips)</h2>" in page
    assert "not in this table: " in page and str(static / "rgb.npz") in page


def test_curves_are_titled_with_their_stream(tmp_path):
    (tmp_path / "ucf_run").mkdir()
    (tmp_path / "ucf_run/config.yaml").write_text(yaml.safe_dump({"stream": "mars"}))
    assert run_title(tmp_path / "ucf_run") == "MARS stream: ucf_run"
    (tmp_path / "bare").mkdir()
    assert run_title(tmp_path / "bare") == "bare"


def test_the_static_table_knows_chance():
    table = static_summary({"rgb": (scores("rgb", [0, 1, 2, 0, 0, 0]),
                                    scores("rgb", [0] * 6, static=True))})
    assert table["rgb"]["chance_top1"] == pytest.approx(100 / 3)
    assert table["rgb"]["static_top1"] == pytest.approx(100 * 2 / 6)
