"""Distillation on unlabelled video: clips for the teacher terms only, never a test video."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_training import ClipSet, batches, save_teacher, tiny_config

from mars_action.data.synthetic import generate_dataset, spec_with_classes
from mars_action.errors import MarsError
from mars_action.flow.extract import FlowJob, extract_flow
from mars_action.models import build_model
from mars_action.training import train
from mars_action.training.distill import DistillSpec, load_teacher
from mars_action.training.engine import Meter
from mars_action.training.losses import UNLABELED, Objective, StreamLoss, Student
from mars_action.training.unlabeled import mix, unlabeled_batch
from mars_action.video.extract import extract_frames


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, Path]:
    """``mars synth`` videos (with a test split in the manifest), frames and flow (Farneback,
    fast, under the default file prefix)."""
    root = tmp_path_factory.mktemp("unlabeled")
    spec = spec_with_classes(2, videos_per_class=3, num_frames=10, height=32, width=32,
                             test_fraction=0.34)
    generate_dataset(root / "videos", spec, progress=False)
    frames = root / "frames"
    extract_frames(root / "videos", frames, fps=None, short_side=32, workers=1)
    extract_flow(frames, FlowJob(method="farneback"), workers=1)
    return root / "videos", frames


def test_unlabelled_clips_feed_only_the_teacher_terms(tmp_path):
    labelled, extra = batches(1, 4)[0], batches(1, 2)[0]
    extra["label"] = torch.full((2,), UNLABELED)
    batch = mix(labelled, extra)
    assert batch["rgb"].shape[0] == 6 and batch["label"].tolist()[-2:] == [-1, -1]
    model = build_model("resnet10_tiny", num_classes=3).eval()
    spec = DistillSpec(alpha=1.0)
    teacher = load_teacher(save_teacher(tmp_path), model, spec)
    objective = Objective("rgb", distill=spec)
    logits, outputs = Student(model, objective)(batch["rgb"])
    parts = StreamLoss(objective, teacher)(logits, outputs, batch)
    ce = F.cross_entropy(logits[:4], batch["label"][:4])
    with torch.no_grad():
        target = teacher.forward_with_features(batch["flow"])[1]["pooled"]
    assert torch.allclose(parts["ce"], ce)
    assert torch.allclose(parts["mse"], F.mse_loss(outputs["pooled"], target))  # all 6 clips
    meter = Meter(torch.device("cpu"))
    meter.add(parts, logits, batch["label"])
    assert meter.sums[-1].item() == 4  # accuracy and losses over the labelled clips


def test_unlabelled_batch_size():
    assert unlabeled_batch(16, 1.0) == 16 and unlabeled_batch(16, 0.25) == 4
    assert unlabeled_batch(4, 0.01) == 1


def test_a_mars_run_mixes_a_synth_frame_store(store, tmp_path):
    _, frames = store
    config = tiny_config("mars", "schedule.epochs=1", f"distill.unlabeled={frames}",
                         "distill.unlabeled_ratio=0.5",
                         "data.short_side=32", teacher=save_teacher(tmp_path))
    summary = train(config, tmp_path / "run", train_set=ClipSet(8, frames=8),
                    val_set=ClipSet(3, frames=8))
    record = summary.history[0]
    assert record["train_clips"] == 8  # the labelled clips; 2 unlabelled rode along each step
    assert record["train_mse"] > 0


def test_a_store_with_a_test_video_is_refused(store, tmp_path):
    videos, frames = store
    config = tiny_config("mars", "schedule.epochs=1", "data.format=manifest",
                         f"data.root={videos}", f"data.annotations={videos / 'manifest.csv'}",
                         f"data.frame_root={frames}",
                         "data.short_side=32", "data.val_fraction=0",
                         f"distill.unlabeled={frames}", teacher=save_teacher(tmp_path))
    with pytest.raises(MarsError, match="test video"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_missing_store_is_one_clear_error(tmp_path):
    config = tiny_config("mars", f"distill.unlabeled={tmp_path / 'nope'}",
                         teacher=save_teacher(tmp_path))
    with pytest.raises(MarsError, match="nope: is not a folder|nope is not a folder"):
        train(config, tmp_path / "run", train_set=ClipSet(8), val_set=ClipSet(3))
