"""The paper's analyses: static clips, CAM, class-wise bars, alpha sweep, curves, timing."""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from mars_action.errors import MarsError
from mars_action.evaluation import VideoScores, save_scores
from mars_action.evaluation.cam import (
    cam_from_features,
    class_activation_maps,
    save_cam_grid,
    save_cam_video,
    video_cam,
)
from mars_action.evaluation.classwise import classwise_comparison, plot_classwise
from mars_action.evaluation.curves import curve_series, plot_curves, read_metrics
from mars_action.evaluation.static import (
    plot_static,
    repeat_middle_frame,
    static_summary,
    static_transform,
)
from mars_action.evaluation.sweep import plot_alpha_sweep, run_accuracy, run_alpha_sweep
from mars_action.evaluation.timing import (
    accuracy_vs_time,
    combined_costs,
    frames_per_video,
    measure_video_costs,
    plot_accuracy_vs_time,
    stream_costs,
)
from mars_action.models import CheckpointMeta, build_model


def assert_png(path, min_size=100):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(path))
    assert image is not None and min(image.shape[:2]) >= min_size


def result(stream, predictions, labels, num_classes=3, **kw):
    scores = np.eye(num_classes, dtype=np.float32)[predictions]
    ids = [f"v{i}" for i in range(len(labels))]
    return VideoScores(ids, labels, scores, [f"c{i}" for i in range(num_classes)], stream, **kw)


# --- static clips ---------------------------------------------------------------------

def test_static_rgb_clip_repeats_the_middle_frame():
    clips = torch.randn(2, 3, 8, 5, 6)
    static = repeat_middle_frame(clips)
    assert static.shape == clips.shape
    for t in range(8):
        torch.testing.assert_close(static[:, :, t], clips[:, :, 4])


def test_static_flow_is_the_code_of_zero_pixels():
    meta = CheckpointMeta("resnet10_tiny", 2, 3, stream="flow")
    static = static_transform(meta)(torch.randn(2, 2, 8, 5, 6))
    # 0 px -> code 127 (released quantization floors 127.5); loaders subtract 127.5.
    assert torch.all(static == -0.5)
    rgb = static_transform(CheckpointMeta("resnet10_tiny", 3, 3, stream="mars"))
    assert rgb is repeat_middle_frame


def test_static_summary_and_plot(tmp_path):
    labels = [0, 1, 2, 0]
    pairs = {"rgb": (result("rgb", [0, 1, 2, 0], labels), result("rgb", [0, 1, 0, 0], labels)),
             "flow": (result("flow", [0, 1, 1, 1], labels), result("flow", [1, 1, 1, 1], labels))}
    table = static_summary(pairs)
    assert table["rgb"]["normal_top1"] == 100 and table["rgb"]["static_top1"] == 75
    assert table["flow"]["drop"] == 25
    plot_static(table, tmp_path / "static.png")
    assert_png(tmp_path / "static.png")


# --- class activation maps ------------------------------------------------------------

def test_cam_from_hand_built_features_peaks_where_the_evidence_is():
    features = torch.zeros(1, 2, 2, 3, 4)
    features[0, 1, 0, 1, 2] = 5.0
    weight = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    maps = cam_from_features(features, weight, torch.tensor([1]))
    assert maps.shape == (1, 2, 3, 4)
    assert maps[0, 0, 1, 2] == 10.0 and maps.sum() == 10.0
    assert cam_from_features(features, weight, torch.tensor([0])).abs().sum() == 0


def test_cam_mean_plus_bias_is_the_logit():
    torch.manual_seed(0)
    model = build_model("resnet10_tiny", num_classes=5).eval()
    clips = torch.randn(2, 3, 8, 64, 64)
    classes = torch.tensor([3, 1])
    with torch.no_grad():
        maps, logits = class_activation_maps(model, clips, classes)
        raw = cam_from_features(model.forward_features(clips), model.fc.weight, classes)
    assert maps.shape == (2, 8, 64, 64)
    expected = logits[torch.arange(2), classes]
    torch.testing.assert_close(raw.mean(dim=(1, 2, 3)) + model.fc.bias[classes], expected)


class BlobModel(nn.Module):
    """forward_features: brightness pooled 4x4; class 0 likes brightness, class 1 dislikes it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.fc.bias.zero_()

    def forward_features(self, x):
        return nn.functional.avg_pool3d(x.mean(1, keepdim=True), (1, 4, 4))

    def forward_head(self, features):
        return self.fc(features.mean(dim=(2, 3, 4)))


def blob_sample(label):
    rgb = torch.zeros(2, 3, 4, 16, 16)
    rgb[:, :, :, 10:14, 2:6] = 100.0  # a bright square low on the left
    return {"rgb": rgb, "label": label, "video_id": "blob"}


def test_video_cam_locates_the_blob_and_writes_grid_and_video(tmp_path):
    meta = CheckpointMeta("blob", 3, 2, stream="rgb", crop_size=16, mean=[100.0] * 3)
    cam = video_cam(BlobModel(), meta, blob_sample(0), max_clips=2)
    assert cam.frames.shape == (8, 16, 16, 3) and cam.heat.shape == (8, 16, 16)
    assert cam.frames.dtype == np.uint8 and cam.frames[0, 12, 3].tolist() == [200, 200, 200]
    y, x = np.unravel_index(cam.heat[0].argmax(), (16, 16))
    assert 8 <= y < 16 and x < 8  # the map of the liked class peaks on the blob
    other = video_cam(BlobModel(), meta, blob_sample(1), max_clips=1)
    assert other.heat[0, 12, 3] < other.heat[0, 2, 12]  # the disliked class: away from it
    assert 0 <= cam.score <= 1 and cam.predicted == 0 and len(other.frames) == 4
    save_cam_grid([[cam, other], [other, cam]], tmp_path / "grid.png", ["bright", "dark"])
    assert_png(tmp_path / "grid.png")
    save_cam_video([cam, other], tmp_path / "cam.mp4", fps=10)
    with av.open(str(tmp_path / "cam.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (16, 32, 3)


def test_static_cam_shows_the_repeated_middle_frame():
    meta = CheckpointMeta("blob", 3, 2, stream="rgb", crop_size=16, mean=[100.0] * 3)
    sample = blob_sample(0)
    sample["rgb"][:, :, 0] = 0.0  # frame 0 differs; static clips never show it
    cam = video_cam(BlobModel(), meta, sample, max_clips=1, static=True)
    assert all(np.array_equal(frame, cam.frames[2]) for frame in cam.frames)


# --- class-wise -----------------------------------------------------------------------

def test_classwise_picks_largest_and_smallest_differences(tmp_path):
    labels = [0, 0, 1, 1, 2, 2, 3, 3]
    rgb = result("rgb", [0, 1, 1, 1, 0, 0, 3, 3], labels, 4)  # per class 50 100 0 100
    mars = result("mars", [0, 0, 1, 0, 2, 2, 3, 0], labels, 4)  # per class 100 50 100 50
    flow = result("flow", [0, 0, 0, 0, 2, 0, 0, 0], labels, 4)  # per class 100 0 50 0
    comparison = classwise_comparison({"rgb": rgb, "flow": flow, "mars": mars}, k=2)
    assert [r["class"] for r in comparison["top"]] == ["c2", "c0"]
    assert [r["difference"] for r in comparison["top"]] == [100.0, 50.0]
    assert [r["class"] for r in comparison["bottom"]] == ["c1", "c3"]
    assert comparison["bottom"][0]["flow"] == 0.0 and comparison["top"][0]["flow"] == 50.0
    plot_classwise(comparison, tmp_path / "classwise.png")
    assert_png(tmp_path / "classwise.png")


# --- runs: curves and alpha sweep -----------------------------------------------------

def make_run(path, stream="mars", alpha=50.0, val_acc=(0.2, 0.4, 0.3)):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"stream": stream,
                                                      "distill": {"alpha": alpha}}))
    records = [{"epoch": e + 1, "train_ce": 2.0 - e * 0.5, "train_alpha_mse": 1.0 + e,
                "train_acc": 0.1 * (e + 1), "val_acc": acc} for e, acc in enumerate(val_acc)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_curves_from_a_run_folder(tmp_path):
    run = make_run(tmp_path / "run")
    series = curve_series(read_metrics(run))
    assert series["epoch"] == [1, 2, 3] and series["train_ce"] == [2.0, 1.5, 1.0]
    assert series["val_acc"] == pytest.approx([20.0, 40.0, 30.0])  # percent
    plot_curves(series, tmp_path / "curves.png", "run")
    assert_png(tmp_path / "curves.png")
    (run / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(MarsError, match=r"metrics.jsonl:2: not a JSON record"):
        read_metrics(run)
    with pytest.raises(MarsError, match="no metrics.jsonl"):
        read_metrics(tmp_path)


def test_run_accuracy_prefers_a_score_file(tmp_path):
    run = make_run(tmp_path / "a50")
    point = run_accuracy(run)
    assert point["alpha"] == 50.0 and point["top1"] == pytest.approx(40.0)
    assert point["source"] == "best validation clip accuracy"
    save_scores(run / "scores" / "test.npz", result("mars", [0, 1, 1], [0, 1, 2]))
    point = run_accuracy(run)
    assert point["top1"] == pytest.approx(200 / 3) and "scores/test.npz" in point["source"]
    assert run_accuracy(make_run(tmp_path / "rgb", stream="rgb"))["alpha"] == 0.0
    assert run_accuracy(make_run(tmp_path / "flow", stream="flow"))["alpha"] is None


def test_alpha_sweep_trains_one_run_per_alpha(tmp_path, monkeypatch):
    import mars_action.training as training

    calls = []
    monkeypatch.setattr(training, "train", lambda config, run_dir, resume: calls.append(
        (config.stream, config.distill.alpha, config.name, resume)))
    config = tmp_path / "mars.yaml"
    config.write_text(yaml.safe_dump({"stream": "mars", "distill": {"teacher": "flow.pt"}}))
    runs = run_alpha_sweep(config, [0, 5, 50], tmp_path / "out", ["schedule.epochs=2"])
    assert [c[:2] for c in calls] == [("rgb", 50.0), ("mars", 5.0), ("mars", 50.0)]
    assert calls[1][2:] == ("mars-alpha5", True) and runs[2] == tmp_path / "out" / "alpha_50"


def test_alpha_sweep_plot(tmp_path):
    points = [{"alpha": a, "top1": t} for a, t in ((0, 60.0), (5, 63.0), (50, 66.0), (200, 62))]
    plot_alpha_sweep(points, tmp_path / "sweep.png", flow={"top1": 55.0})
    assert_png(tmp_path / "sweep.png")


# --- accuracy vs time -----------------------------------------------------------------

def test_costs_of_streams_and_fusions(tmp_path):
    labels = [0, 1, 2, 0]
    times = {"data": np.array([0.1, 0.3, 0.2, 0.2]), "network": np.array([0.5] * 4)}
    rgb = result("rgb", [0, 1, 2, 1], labels, times=times, info={"modality": "rgb"})
    flow = result("flow", [0, 1, 1, 0], labels, times=times, info={"modality": "flow"})
    with pytest.raises(MarsError, match="stream flow: takes optical flow"):
        stream_costs(flow)
    costs = {"rgb": stream_costs(rgb), "flow": stream_costs(flow, flow_seconds=30.0,
                                                         decode_seconds=0.4)}
    assert costs["rgb"] == pytest.approx({"decode": 0.2, "flow": 0.0, "network": 0.5})
    both = combined_costs(list(costs.values()))
    assert both == pytest.approx({"decode": 0.4, "flow": 30.0, "network": 1.0})
    points = accuracy_vs_time({"rgb": rgb, "flow": flow}, costs)
    assert [p["name"] for p in points] == ["RGB", "Flow", "RGB+Flow"]
    assert points[0]["top1"] == 75 and points[2]["total_s"] == pytest.approx(31.4)
    plot_accuracy_vs_time(points, tmp_path / "time.png", "test")
    assert_png(tmp_path / "time.png")


def test_measure_video_costs_on_a_real_file(make_video):
    video = make_video("moving.mp4")
    costs = measure_video_costs([video], method="farneback", short_side=None)
    assert costs["videos"] == 1 and costs["method"] == "farneback"
    assert costs["decode_s_per_frame"] > 0 and costs["flow_s_per_frame"] > 0
    with pytest.raises(MarsError, match="unknown flow method 'pwcnet'"):
        measure_video_costs([video], method="pwcnet")


def test_frames_per_video_needs_all_clips():
    base = result("rgb", [0, 1], [0, 1], clip_counts=np.array([3, 5]), clip_hits=np.array([1, 1]),
                  info={"clip_len": 16, "clips": "all"})
    assert frames_per_video(base) == 64.0
    base.info["clips"] = 10
    with pytest.raises(MarsError, match="does not tell the videos' length"):
        frames_per_video(base)
