"""Evaluation core: metrics on hand-made scores, the score file, video-level evaluate()."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mars_action.errors import MarsError
from mars_action.evaluation import (
    VideoScores,
    evaluate,
    load_scores,
    mean_class_accuracy,
    per_class_accuracy,
    save_scores,
    spatial_crops,
    summarize,
    topk_accuracy,
)
from mars_action.models import CheckpointMeta, build_model

CLASSES = ["a", "b", "c", "d"]


class TinyVideos:
    """A test-time dataset in memory: each item is all clips of one video."""

    def __init__(self, items, class_names=CLASSES):
        self.items, self.class_names = items, class_names

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def make_videos(clip_counts=(3, 1, 2, 4), size=36, modality="rgb", seed=0):
    gen = torch.Generator().manual_seed(seed)
    channels = 3 if modality == "rgb" else 2
    return TinyVideos([
        {modality: torch.randn(k, channels, 8, size, size + 8, generator=gen),
         "label": i % len(CLASSES), "video_id": f"v{i}"}
        for i, k in enumerate(clip_counts)
    ])


def tiny_model(in_channels=3, seed=0):
    torch.manual_seed(seed)
    return build_model("resnet10_tiny", in_channels=in_channels, num_classes=len(CLASSES)).eval()


def tiny_meta(stream="rgb", in_channels=3, crop=32):
    return CheckpointMeta("resnet10_tiny", in_channels, len(CLASSES), stream=stream,
                          class_names=CLASSES, clip_len=8, crop_size=crop)


# --- metrics --------------------------------------------------------------------------

SCORES = np.array([
    [0.9, 0.1, 0.0, 0.0],  # label 0: rank 0
    [0.2, 0.5, 0.3, 0.0],  # label 2: rank 1
    [0.1, 0.2, 0.3, 0.4],  # label 0: rank 3
    [0.0, 0.0, 0.0, 1.0],  # label 3: rank 0
    [0.0, 0.7, 0.2, 0.1],  # label 1: rank 0
])
LABELS = np.array([0, 2, 0, 3, 1])


def test_topk_on_known_scores():
    assert topk_accuracy(SCORES, LABELS, 1) == pytest.approx(60.0)
    assert topk_accuracy(SCORES, LABELS, 2) == pytest.approx(80.0)
    assert topk_accuracy(SCORES, LABELS, 4) == pytest.approx(100.0)


def test_ties_never_count_as_right_for_every_class():
    flat = np.zeros((4, 4))
    assert topk_accuracy(flat, np.array([0, 1, 2, 3]), 1) == pytest.approx(25.0)


def test_per_class_and_mean_class_accuracy():
    per_class = per_class_accuracy(SCORES, LABELS, 5)
    np.testing.assert_allclose(per_class[:4], [50.0, 100.0, 0.0, 100.0])
    assert np.isnan(per_class[4])  # a class without videos is left out of the mean
    assert mean_class_accuracy(SCORES, LABELS, 5) == pytest.approx(62.5)


def test_summary_has_clip_accuracy_and_times():
    result = VideoScores([f"v{i}" for i in range(5)], LABELS, SCORES, list("abcd"), "rgb",
                         clip_hits=np.array([1, 0, 2, 3, 0]), clip_counts=np.array([2, 2, 2, 3, 1]),
                         times={"network": np.array([1.0, 2.0, 3.0, 4.0, 5.0])})
    summary = summarize(result)
    assert summary["top1"] == pytest.approx(60.0)
    assert summary["clip_top1"] == pytest.approx(60.0)  # 6 of 10 clips
    assert summary["seconds_per_video_network"] == pytest.approx(3.0)
    assert summary["top5"] == pytest.approx(100.0)  # top-5 of 4 classes is top-4


# --- score files ----------------------------------------------------------------------

def test_score_file_round_trip_and_summary_json(tmp_path):
    result = VideoScores(["x", "y"], [1, 0], np.array([[0.1, 0.9], [0.3, 0.2]]), ["p", "q"],
                         "mars", clip_hits=np.array([2, 1]), clip_counts=np.array([3, 1]),
                         times={"data": np.array([0.5, 0.25])}, info={"split": "test"})
    path = save_scores(tmp_path / "mars.npz", result)
    back = load_scores(path)
    assert back.video_ids == ["x", "y"] and back.class_names == ["p", "q"]
    assert back.stream == "mars" and back.aggregate == "logits" and back.info == {"split": "test"}
    np.testing.assert_array_equal(back.scores, result.scores)
    np.testing.assert_array_equal(back.clip_counts, [3, 1])
    np.testing.assert_array_equal(back.times["data"], [0.5, 0.25])
    summary = json.loads((tmp_path / "mars.json").read_text())
    assert summary["top1"] == pytest.approx(100.0) and summary["clip_top1"] == pytest.approx(75.0)
    assert not list(tmp_path.glob(".*tmp*"))


def test_load_scores_rejects_other_files(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(MarsError, match="not a mars-action score file"):
        load_scores(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(MarsError, match="junk.npz: not a readable score file"):
        load_scores(tmp_path / "junk.npz")
    with pytest.raises(MarsError, match="no such score file"):
        load_scores(tmp_path / "missing.npz")


# --- clips and crops ------------------------------------------------------------------

def test_spatial_crops_centre_and_three():
    clips = torch.arange(40.0).reshape(1, 1, 1, 1, 40).expand(2, 3, 4, 20, 40)
    centre = spatial_crops(clips, 20, 1)
    assert centre.shape == (2, 1, 3, 4, 20, 20)
    assert centre[0, 0, 0, 0, 0, 0] == 10  # (40 - 20) // 2
    three = spatial_crops(clips, 20, 3)
    assert three.shape == (2, 3, 3, 4, 20, 20)
    assert [three[0, v, 0, 0, 0, 0].item() for v in range(3)] == [0, 10, 20]
    tall = spatial_crops(clips.transpose(-1, -2), 20, 3)
    assert [tall[0, v, 0, 0, 0, 0].item() for v in range(3)] == [0, 10, 20]
    with pytest.raises(MarsError, match="smaller than the 64x64 crop"):
        spatial_crops(clips, 64)


# --- evaluate -------------------------------------------------------------------------

def manual_video_scores(model, dataset, crop=32, softmax=False):
    out = []
    with torch.no_grad():
        for item in dataset.items:
            clips = item["rgb"]
            top, left = (clips.shape[-2] - crop) // 2, (clips.shape[-1] - crop) // 2
            logits = model(clips[..., top : top + crop, left : left + crop])
            out.append((logits.softmax(-1) if softmax else logits).mean(0).numpy())
    return np.stack(out)


@pytest.mark.parametrize("aggregate", ["logits", "softmax"])
def test_evaluate_averages_clips_as_by_hand(aggregate):
    model, dataset = tiny_model(), make_videos()
    result = evaluate(model, tiny_meta(), dataset, aggregate=aggregate, batch_size=3,
                      progress=False)
    expected = manual_video_scores(model, dataset, softmax=aggregate == "softmax")
    np.testing.assert_allclose(result.scores, expected, rtol=1e-4, atol=1e-5)
    assert result.video_ids == ["v0", "v1", "v2", "v3"]
    assert result.labels.tolist() == [0, 1, 2, 3]
    assert result.clip_counts.tolist() == [3, 1, 2, 4]
    assert result.aggregate == aggregate and result.stream == "rgb"
    assert set(result.times) == {"data", "network"} and (result.times["network"] > 0).all()
    assert result.info["modality"] == "rgb" and result.info["crops"] == 1


def test_evaluate_clip_hits_match_per_clip_argmax():
    model, dataset = tiny_model(), make_videos()
    result = evaluate(model, tiny_meta(), dataset, progress=False)
    with torch.no_grad():
        hits = [int((model(item["rgb"][..., 2:34, 6:38]).argmax(1) == item["label"]).sum())
                for item in dataset.items]
    assert result.clip_hits.tolist() == hits
    summary = summarize(result)
    assert summary["clip_top1"] == pytest.approx(100.0 * sum(hits) / 10)


def test_evaluate_three_crops_along_the_long_side():
    model, dataset = tiny_model(), make_videos(clip_counts=(2,))
    result = evaluate(model, tiny_meta(), dataset, crops=3, progress=False)
    clips = dataset.items[0]["rgb"]  # (2, 3, 8, 36, 44)
    with torch.no_grad():
        views = [model(clips[..., 2:34, x : x + 32]) for x in (0, 6, 12)]
    expected = torch.stack(views).mean(0).mean(0).numpy()
    np.testing.assert_allclose(result.scores[0], expected, rtol=1e-4, atol=1e-5)
    assert result.clip_counts.tolist() == [2] and result.info["crops"] == 3


def test_evaluate_goes_on_past_unreadable_videos():
    dataset = make_videos()
    dataset.items[1] = {"error": "v1.mp4: broken", "video_id": "v1"}
    result = evaluate(tiny_model(), tiny_meta(), dataset, progress=False)
    assert result.video_ids == ["v0", "v2", "v3"]
    assert result.info["failed"] == [{"video_id": "v1", "reason": "v1.mp4: broken"}]
    broken = TinyVideos([{"error": "bad", "video_id": "v0"}])
    with pytest.raises(MarsError, match="no video could be read; the first: v0: bad"):
        evaluate(tiny_model(), tiny_meta(), broken, progress=False)


def test_evaluate_flow_stream_with_workers():
    model, dataset = tiny_model(in_channels=2), make_videos(modality="flow")
    result = evaluate(model, tiny_meta("flow", 2), dataset, workers=1, progress=False)
    np.testing.assert_allclose(
        result.scores,
        manual_video_scores(model, TinyVideos([{"rgb": i["flow"]} for i in dataset.items])),
        rtol=1e-4, atol=1e-5,
    )


def test_evaluate_errors_name_the_problem():
    model = tiny_model()
    with pytest.raises(MarsError, match="needs 'flow' clips"):
        evaluate(tiny_model(2), tiny_meta("flow", 2), make_videos(), progress=False)
    with pytest.raises(MarsError, match="classes differ from the dataset's"):
        evaluate(model, tiny_meta(), TinyVideos(make_videos().items, ["a", "b", "x", "d"]),
                 progress=False)
    twice = TinyVideos(make_videos().items[:1] * 2)
    with pytest.raises(MarsError, match="repeats video ids: v0"):
        evaluate(model, tiny_meta(), twice, progress=False)
    with pytest.raises(MarsError, match="no videos"):
        evaluate(model, tiny_meta(), TinyVideos([]), progress=False)
    with pytest.raises(MarsError, match="aggregate must be one of"):
        evaluate(model, tiny_meta(), make_videos(), aggregate="max", progress=False)
