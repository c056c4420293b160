"""``mars eval | fuse | analyze | report`` end to end on a tiny frame store."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from mars_action.cli import main
from mars_action.evaluation import load_scores
from mars_action.models import CheckpointMeta, build_model, save_checkpoint
from mars_action.video.framestore import flow_names, rgb_name

CLASSES = ["left", "right"]
VIDEOS = [("left", "l0"), ("left", "l1"), ("right", "r0"), ("right", "r1")]
FRAMES = 17  # -> 16 flow fields: two 8-frame clips per video for either modality
CHANNELS = {"rgb": 3, "flow": 2, "mars": 3}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Frames + TV-L1-style flow codes, a manifest, and RGB / Flow / MARS checkpoints."""
    root = tmp_path_factory.mktemp("evalcli")
    rng = np.random.default_rng(0)
    for cls, video in VIDEOS:
        folder = root / "frames" / cls / video
        folder.mkdir(parents=True)
        for i in range(FRAMES):
            cv2.imwrite(str(folder / rgb_name(i)), rng.integers(0, 255, (40, 56, 3), np.uint8))
        for i in range(FRAMES - 1):
            for name in flow_names(i):
                cv2.imwrite(str(folder / name), rng.integers(100, 155, (40, 56), np.uint8))
    lines = [f"{cls}/{video}.avi {cls} test" for cls, video in VIDEOS]
    (root / "manifest.txt").write_text("\n".join(lines) + "\n")
    for seed, (stream, channels) in enumerate(CHANNELS.items()):
        torch.manual_seed(seed)
        model = build_model("resnet10_tiny", in_channels=channels, num_classes=2)
        meta = CheckpointMeta("resnet10_tiny", channels, 2, stream=stream, class_names=CLASSES,
                              clip_len=8, crop_size=32)
        save_checkpoint(root / f"{stream}.pt", model, meta)
    return root


def data_args(store: Path) -> list[str]:
    return ["--data", "manifest", "--annotations", str(store / "manifest.txt"),
            "--frame-root", str(store / "frames"), "--workers", "0"]


@pytest.fixture(scope="module")
def scores(store) -> dict[str, Path]:
    """Each stream evaluated once with ``mars eval``."""
    out = {}
    for stream in CHANNELS:
        out[stream] = store / "scores" / f"{stream}.npz"
        assert main(["eval", str(store / f"{stream}.pt"), *data_args(store),
                     "--out", str(out[stream])]) == 0
    return out


def test_eval_writes_scores_and_summary(scores, capsys):
    result = load_scores(scores["flow"])
    assert sorted(result.video_ids) == ["l0", "l1", "r0", "r1"]
    assert result.clip_counts.tolist() == [2, 2, 2, 2] and result.class_names == CLASSES
    assert result.stream == "flow" and result.info["modality"] == "flow"
    summary = json.loads(scores["flow"].with_suffix(".json").read_text())
    assert summary["num_videos"] == 4 and summary["num_clips"] == 8
    assert 0 <= summary["top1"] <= 100 and summary["info"]["split"] == "test"


def test_eval_three_crops_and_even_clips(store, tmp_path, capsys):
    out = tmp_path / "rgb3.npz"
    assert main(["eval", str(store / "rgb.pt"), *data_args(store), "--crops", "3",
                 "--clips", "1", "--out", str(out)]) == 0
    result = load_scores(out)
    assert result.clip_counts.tolist() == [1, 1, 1, 1] and result.info["crops"] == 3
    assert "top-1" in capsys.readouterr().out


def test_eval_finds_the_run_folder_config(store, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(store / "mars.pt", run / "checkpoints" / "best.pt")
    data = {"format": "manifest", "annotations": str(store / "manifest.txt"),
            "frame_root": str(store / "frames")}
    (run / "config.yaml").write_text(yaml.safe_dump({"stream": "mars", "data": data}))
    assert main(["eval", str(run / "checkpoints" / "best.pt"), "--workers", "0"]) == 0
    assert load_scores(run / "scores" / "test.npz").num_videos == 4
    assert main(["eval", str(run / "checkpoints" / "best.pt"), "--workers", "0",
                 "--clips", "1", "--limit", "2"]) == 0
    assert load_scores(run / "scores" / "test-clips1-first2.npz").num_videos == 2
    assert main(["eval", str(store / "mars.pt")]) == 2
    assert "no data given" in capsys.readouterr().err


def test_fuse_table_and_weighted(scores, tmp_path, capsys):
    table = tmp_path / "table.json"
    assert main(["fuse", "--table", str(scores["rgb"]), str(scores["flow"]),
                 str(scores["mars"]), "--out", str(table)]) == 0
    printed = capsys.readouterr().out
    for row in ("RGB+Flow", "MARS+RGB", "MARS+Flow", "MARS+RGB+Flow"):
        assert f"\n{row} " in printed
    assert [r["name"] for r in json.loads(table.read_text())][:3] == ["RGB", "Flow", "RGB+Flow"]
    fused = tmp_path / "fused.npz"
    assert main(["fuse", str(scores["rgb"]), str(scores["mars"]), "--weights", "1", "3",
                 "--out", str(fused)]) == 0
    rgb, mars = load_scores(scores["rgb"]), load_scores(scores["mars"])
    np.testing.assert_allclose(load_scores(fused).scores, (rgb.scores + 3 * mars.scores) / 4,
                               rtol=1e-6)


def test_fuse_mismatch_is_a_one_line_error(store, scores, tmp_path, capsys):
    fewer = tmp_path / "fewer.npz"
    assert main(["eval", str(store / "rgb.pt"), *data_args(store), "--limit", "2",
                 "--out", str(fewer)]) == 0
    capsys.readouterr()
    assert main(["fuse", str(scores["flow"]), str(fewer)]) == 2
    error = capsys.readouterr().err
    assert "video set differs" in error and "only in" in error and error.count("\n") == 1


def test_analyze_static_and_cam(store, tmp_path, capsys):
    out = tmp_path / "static"
    assert main(["analyze", "static", str(store / "rgb.pt"), str(store / "flow.pt"),
                 *data_args(store), "--out", str(out)]) == 0
    table = json.loads((out / "static.json").read_text())
    assert set(table) == {"rgb", "flow"} and (out / "static.png").is_file()
    assert load_scores(out / "flow_static.npz").info["static"] is True
    cam = tmp_path / "cam"
    assert main(["analyze", "cam", str(store / "flow.pt"), str(store / "mars.pt"),
                 *data_args(store), "--num-videos", "2", "--static", "--out", str(cam)]) == 0
    assert (cam / "cam_grid.png").is_file() and len(list(cam.glob("cam_*.mp4"))) == 2
    cells = json.loads((cam / "cam_grid.json").read_text())
    assert [c["stream"] for c in cells] == ["flow", "mars", "flow", "mars"]


def test_analyze_classwise_time_curves_sweep(scores, tmp_path, capsys):
    named = [f"rgb={scores['rgb']}", f"flow={scores['flow']}", f"mars={scores['mars']}"]
    assert main(["analyze", "classwise", *named, "-k", "1", "--out", str(tmp_path)]) == 0
    comparison = json.loads((tmp_path / "classwise.json").read_text())
    assert len(comparison["top"]) == 1 and comparison["streams"][-1] == "mars"
    assert main(["analyze", "time", *named, "--out", str(tmp_path)]) == 2
    assert "takes optical flow" in capsys.readouterr().err
    assert main(["analyze", "time", *named, "--flow-seconds", "flow=2.5",
                 "--out", str(tmp_path)]) == 0
    points = json.loads((tmp_path / "accuracy_vs_time.json").read_text())["points"]
    flow = next(p for p in points if p["name"] == "Flow")
    assert flow["flow_s"] == 2.5 and flow["total_s"] > 2.5
    run = tmp_path / "runs" / "mars50"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"stream": "mars",
                                                     "distill": {"alpha": 50}}))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_ce": 1.0,
                                                   "train_alpha_mse": 0.5, "val_acc": 0.5}))
    assert main(["analyze", "curves", str(run), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "curves_mars50.png").is_file()
    assert main(["analyze", "alpha-sweep", "--runs", str(run), "--flow", str(scores["flow"]),
                 "--out", str(tmp_path)]) == 0
    sweep = json.loads((tmp_path / "alpha_sweep.json").read_text())
    assert sweep["points"][0]["alpha"] == 50 and sweep["flow"]["stream"] == "flow"


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.cells, self.external = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        for key in ("src", "href"):
            if attrs.get(key, "data:").split(":")[0] not in ("data",):
                self.external.append(attrs[key])

    def handle_data(self, data):
        self.cells.append(data.strip())


def test_report_is_self_contained_html(scores, tmp_path, capsys):
    analysis = tmp_path / "analysis"
    named = [f"rgb={scores['rgb']}", f"mars={scores['mars']}"]
    assert main(["analyze", "classwise", *named, "--out", str(analysis)]) == 0
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_ce": 1.0, "val_acc": 0.5}))
    report = tmp_path / "report.html"
    assert main(["report", str(scores["rgb"].parent), str(analysis), str(run),
                 "--out", str(report)]) == 0
    page = _Page()
    page.feed(report.read_text())
    assert len(page.images) == 2 and not page.external  # classwise + the run's curves
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "MARS+RGB+Flow" in page.cells and "Evaluations" in page.cells
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("headless Chromium not installed; the page was checked by parsing only")
    shot = tmp_path / "shot.png"
    subprocess.run([str(chromium), "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={shot}", report.as_uri()], check=True, timeout=60)
    assert shot.stat().st_size > 1000


def test_eval_on_real_ucf101_videos(ucf101_subset, tmp_path, capsys):
    from mars_action.models import read_labels

    classes = read_labels(ucf101_subset / "ucfTrainTestlist" / "classInd.txt")
    torch.manual_seed(0)
    model = build_model("resnet10_tiny", num_classes=len(classes))
    meta = CheckpointMeta("resnet10_tiny", 3, len(classes), stream="rgb", class_names=classes,
                          clip_len=8, crop_size=32, short_side=48)
    save_checkpoint(tmp_path / "rgb.pt", model, meta)
    out = tmp_path / "ucf.npz"
    assert main(["eval", str(tmp_path / "rgb.pt"), "--data", "ucf101", "--root",
                 str(ucf101_subset), "--clips", "2", "--limit", "3", "--workers", "0",
                 "--out", str(out)]) == 0
    result = load_scores(out)
    assert result.num_videos == 3 and result.clip_counts.tolist() == [2, 2, 2]
    assert all(v.startswith("v_") for v in result.video_ids) and result.num_classes == 20
    assert np.isfinite(result.scores).all() and (result.times["data"] > 0).all()


def test_test_set_takes_the_checkpoints_settings(store):
    from mars_action.evaluation.loading import DataSettings, ShortSideTransform, build_test_set

    settings = DataSettings("manifest", annotations=str(store / "manifest.txt"),
                            frame_root=str(store / "frames"))
    meta = CheckpointMeta("resnet10_tiny", 2, 2, stream="flow", class_names=CLASSES,
                          clip_len=4, crop_size=24, std=[2.0, 2.0])
    dataset = build_test_set(settings, meta, "test", clips=3)
    item = dataset[0]
    assert item["flow"].shape == (3, 2, 4, 24, 24)  # 3 evenly spaced 4-frame clips
    assert dataset.transform.flow_scale == 0.5  # flow input = (code - 127.5) / std
    three = build_test_set(settings, meta, "test", crops=3)
    assert isinstance(three.transform, ShortSideTransform)
    assert three[0]["flow"].shape == (4, 2, 4, 24, 34)  # short side 24, aspect 40:56 kept
    assert float(three[0]["flow"].abs().max()) <= 13.75  # codes 100-155 minus 127.5, halved
