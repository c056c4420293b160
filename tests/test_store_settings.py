"""The store's settings travel: recorded by frames/flow, read into the checkpoint, checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mars_action.cli import main
from mars_action.data.synthetic import generate_dataset, spec_with_classes
from mars_action.errors import MarsError
from mars_action.models import load_checkpoint
from mars_action.training.config import load_experiment, resolve
from mars_action.video import store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """Two motion classes of tiny MP4s, frames at 10 fps and 32 px, Farneback flow."""
    root = tmp_path_factory.mktemp("store")
    spec = spec_with_classes(2, videos_per_class=4, num_frames=24, height=40, width=48,
                             test_fraction=0.25)
    generate_dataset(root / "videos", spec, progress=False)
    frames = root / "frames"
    videos = str(root / "videos")
    assert main(["frames", videos, str(frames), "--fps", "10", "--short-side", "32",
                 "--workers", "1"]) == 0
    assert main(["flow", str(frames), "--method", "farneback", "--workers", "1"]) == 0
    return root


def test_frames_and_flow_record_their_settings(made):
    settings = json.loads((made / "frames" / store.STORE_FILE).read_text())
    assert settings["frames"] == {"preset": "mars", "fps": 10.0, "short_side": 32,
                                  "quality": 95}
    assert settings["flow"]["FARNjpg_"] == {"method": "farneback", "bound": 20,
                                            "quantize": "floor", "quality": 95}
    assert store.frame_grid(made / "frames") == {"fps": 10.0, "short_side": 32}


def test_a_run_with_other_settings_on_the_same_store_is_one_error(made, capsys):
    frames = made / "frames"
    before = (frames / store.STORE_FILE).read_text()
    code = main(["frames", str(made / "videos"), str(frames), "--fps", "10",
                 "--short-side", "48", "--workers", "1"])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1
    assert "short_side 32 (recorded) vs 48 (this run)" in error[0] and str(frames) in error[0]
    assert (frames / store.STORE_FILE).read_text() == before


def test_an_all_skipped_rerun_keeps_the_report_of_the_real_extraction(made):
    report = made / "frames" / "frames-report.json"
    first = json.loads(report.read_text())
    assert first["done"] == 8 and first["seconds"] > 0
    assert main(["frames", str(made / "videos"), str(made / "frames"), "--fps", "10",
                 "--short-side", "32", "--workers", "1"]) == 0
    assert json.loads(report.read_text()) == first


def _config(made: Path, *overrides: str):
    return load_experiment(str(REPO / "configs/tiny/rgb.yaml"), [
        f"data.root={made / 'videos'}", f"data.annotations={made / 'videos/manifest.csv'}",
        f"data.frame_root={made / 'frames'}", "data.short_side=null", *overrides])


def test_training_takes_the_store_grid_and_refuses_a_contradicting_config(made):
    data = resolve(_config(made)).data
    assert (data.fps, data.short_side) == (10.0, 32)
    with pytest.raises(MarsError, match=r"data.fps=25.0 contradicts the frame store .*10.0"):
        resolve(_config(made, "data.fps=25.0"))
    assert resolve(_config(made, "data.frame_root=null")).data.fps == 25.0


def test_the_checkpoint_says_how_its_frames_were_made(made, tmp_path):
    run = tmp_path / "run"
    assert main(["train", str(REPO / "configs/tiny/rgb.yaml"), f"data.root={made / 'videos'}",
                 f"data.annotations={made / 'videos/manifest.csv'}",
                 f"data.frame_root={made / 'frames'}", "data.short_side=null", "data.clip_len=8",
                 "data.crop_size=32", "data.batch_size=4", "data.num_workers=0",
                 "--run-dir", str(run), "schedule.epochs=1", "train.progress=false",
                 "train.device=cpu", "train.threads=1"]) == 0
    _, meta = load_checkpoint(run / "checkpoints/last.pt")
    assert (meta.fps, meta.short_side) == (10.0, 32)


def test_tvl1_on_large_frames_is_forecast_before_it_starts(made, monkeypatch):
    from mars_action.flow import extract
    from mars_action.video import completeness, framestore

    dirs = completeness.list_video_dirs(made / "frames")
    job = extract.FlowJob(method="tvl1")
    assert extract.tvl1_forecast(dirs, job, workers=2) is None  # 32 px: seconds
    monkeypatch.setattr(extract, "FORECAST_FROM_S", 0.0)
    pairs = sum(framestore.frame_count(d) - 1 for d in dirs)
    line = extract.tvl1_forecast(dirs, job, workers=2)
    assert f"TV-L1 on {pairs} frame pairs of 32x38 px will take about" in line
    assert "--short-side" not in line  # already small: only the faster method is suggested
    assert extract.tvl1_forecast(dirs, extract.FlowJob(method="farneback"), 2) is None
