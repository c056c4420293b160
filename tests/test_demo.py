"""``mars demo --quick``: every stage runs end to end, writes what it promises, and resumes."""

from __future__ import annotations

import json

import pytest
import yaml

from mars_action.cli import main
from mars_action.demo.settings import PRETRAIN, STREAMS, DemoSettings, Layout
from mars_action.errors import MarsError
from mars_action.evaluation.fusion import TABLE1_ROWS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "quick"
    assert main(["demo", "--quick", "--out", str(out), "--workers", "1"]) == 0
    return Layout(out)


def test_quick_demo_writes_table_static_analysis_report_and_runs(quick_demo):
    results = json.loads(quick_demo.results.read_text())
    names = [row["name"] for row in results["table1"]]
    assert len(names) == sum(combo is not None for combo in TABLE1_ROWS)
    assert names[:3] == ["RGB", "Flow", "RGB+Flow"] and "MARS+RGB" in names
    for row in results["table1"]:
        assert 0.0 <= row["top1"] <= 100.0 and row["num_videos"] == 3  # 1 test video x 3 classes
    assert set(results["static"]) == set(STREAMS)
    assert results["chance_top1"] == pytest.approx(100 / 3)
    for stream in STREAMS:
        assert quick_demo.checkpoint(stream).is_file()
        assert (quick_demo.scores / f"{stream}_static.npz").is_file()
    html = quick_demo.report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "MARS+RGB" in html and "data:image/png" in html
    assert (quick_demo.analysis / "static" / "static.png").is_file()


def test_mars_starts_from_the_flow_regression_step_which_is_no_stream(quick_demo):
    results = json.loads(quick_demo.results.read_text())
    steps = list(results["stage_seconds"])
    pretrain = next(name for name in steps if name.startswith("pretrain"))
    assert steps.index("train rgb") < steps.index(pretrain) < steps.index("train mars")
    assert not (quick_demo.scores / f"{PRETRAIN}.npz").exists()
    assert PRETRAIN not in results["static"]
    metrics = [json.loads(line) for line in
               (quick_demo.run(PRETRAIN) / "metrics.jsonl").read_text().splitlines() if line]
    epochs = [m for m in metrics if "train_epe" in m]
    assert len(epochs) == DemoSettings.quick().epochs and all(m["train_epe"] > 0 for m in epochs)
    mars = yaml.safe_load((quick_demo.run("mars") / "config.yaml").read_text())
    assert mars["model"]["pretrained"] == str(quick_demo.checkpoint(PRETRAIN))
    assert quick_demo.checkpoint(PRETRAIN).is_file()


def test_second_run_reuses_everything(quick_demo, capsys):
    checkpoints = {s: quick_demo.checkpoint(s).stat().st_mtime_ns for s in (*STREAMS, PRETRAIN)}
    before = json.loads(quick_demo.results.read_text())
    assert main(["demo", "--quick", "--out", str(quick_demo.root), "--workers", "1"]) == 0
    after = json.loads(quick_demo.results.read_text())
    assert after["table1"] == before["table1"] and after["static"] == before["static"]
    assert {s: quick_demo.checkpoint(s).stat().st_mtime_ns
            for s in (*STREAMS, PRETRAIN)} == checkpoints
    assert "0 done" in capsys.readouterr().out  # frames and flow were all skipped


def test_refuses_a_foreign_folder_and_other_settings(tmp_path, quick_demo):
    (tmp_path / "precious.txt").write_text("not a demo")
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 2
    assert (tmp_path / "precious.txt").is_file()
    marker = json.loads(quick_demo.settings.read_text())
    assert marker == json.loads(json.dumps(DemoSettings.quick().to_dict()))
    with pytest.raises(MarsError, match="other settings"):
        from mars_action.demo.pipeline import run

        run(quick_demo.root, DemoSettings.full())
