"""Whole runs: the run folder, divergence, resume after SIGKILL, DDP on gloo, ``mars train``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_training import ClipSet, save_teacher, tiny_config

from mars_action.cli import main
from mars_action.data import load_annotations
from mars_action.data.synthetic import generate_dataset, spec_with_classes
from mars_action.errors import MarsError
from mars_action.models import (
    CheckpointMeta,
    build_model,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from mars_action.training import NonFiniteLoss, train

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PYTHON = sys.executable


@pytest.fixture
def teacher_path(tmp_path) -> str:
    return save_teacher(tmp_path)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)[0]


def test_a_run_fills_its_folder(tmp_path, teacher_path):
    config = tiny_config("mars", teacher=teacher_path)
    summary = train(config, tmp_path / "run", train_set=ClipSet(12), val_set=ClipSet(6))
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and summary.epochs == 2
    for key in (
        "train_loss",
        "train_ce",
        "train_mse",
        "train_alpha_mse",
        "train_acc",
        "val_loss",
        "val_acc",
        "train_clips_per_s",
    ):
        assert all(isinstance(r[key], float) for r in records), key
    first = records[0]
    assert first["train_loss"] == pytest.approx(first["train_ce"] + first["train_alpha_mse"])
    assert first["train_alpha_mse"] == pytest.approx(50 * first["train_mse"])
    assert first["lr"] == [0.01] and first["train_clips"] == 12
    model, meta = load_checkpoint(summary.best_checkpoint, expect_modality="rgb")
    assert (meta.stream, meta.class_names, meta.clip_len, meta.crop_size) == (
        "mars",
        ["a", "b", "c"],
        8,
        32,
    )
    assert meta.provenance["config"]["distill"]["teacher"] == teacher_path
    assert summary.best_val_acc == max(r["val_acc"] for r in records)
    training = read_checkpoint(run / "checkpoints/last.pt")[2]["training"]  # weights_only load
    assert (training["epoch"], training["step"], training["global_step"]) == (2, 0, 6)
    assert (run / "config.yaml").read_text().count("stream: mars") == 1
    assert (run / "curves.png").stat().st_size > 10_000
    with pytest.raises(MarsError, match="holds a run already"):
        train(config, run, train_set=ClipSet(12), val_set=ClipSet(6))
    again = train(config, run, resume=True, train_set=ClipSet(12), val_set=ClipSet(6))
    assert again.epochs == 2 and len(again.history) == 2  # finished: nothing more to do
    changed = tiny_config("mars", "optim.lr=0.5", teacher=teacher_path)
    with pytest.raises(MarsError, match="optim.lr"):
        train(changed, run, resume=True, train_set=ClipSet(12), val_set=ClipSet(6))


def test_fine_tuning_keeps_frozen_layers_and_replaces_the_classifier(tmp_path):
    pretrained = build_model("resnet10_tiny", num_classes=5)
    save_checkpoint(tmp_path / "k.pt", pretrained, CheckpointMeta("resnet10_tiny", 3, 5))
    config = tiny_config("rgb", f"model.pretrained={tmp_path / 'k.pt'}", "model.ft_begin_index=4")
    assert (config.optim.lr, config.model.frozen_bn) == (0.01, "freeze")
    summary = train(config, tmp_path / "run", train_set=ClipSet(8, modalities=("rgb",)))
    tuned = weights(summary.last_checkpoint)
    before = pretrained.state_dict()
    assert tuned["fc.weight"].shape == (3, 128)
    assert all(torch.equal(tuned[k], v) for k, v in before.items() if k.startswith("layer3"))
    assert not torch.equal(tuned["layer4.0.conv1.weight"], before["layer4.0.conv1.weight"])


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny_config("rgb", "schedule.epochs=3")
    data = ClipSet(12, modalities=("rgb",), nan_after=12)  # epoch 2 turns NaN
    with pytest.raises(NonFiniteLoss, match=r"loss is nan at epoch 2, step 1.*end of epoch 1"):
        train(config, tmp_path / "run", train_set=data)
    kept = tmp_path / "run/checkpoints/last.pt"
    assert read_checkpoint(kept)[2]["training"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in weights(kept).values() if v.is_floating_point())
    assert len((tmp_path / "run/metrics.jsonl").read_text().splitlines()) == 1


RESUME_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_training import ClipSet, tiny_config
from mars_action.training import train
config = tiny_config("mars", "train.save_every_steps=1", "train.grad_accum=2", "train.threads=1",
                     teacher={teacher!r})
train(config, sys.argv[1], resume=sys.argv[2] == "1",
      train_set=ClipSet(24, delay=float(sys.argv[3])), val_set=ClipSet(6))
"""


@pytest.mark.slow
def test_resume_after_sigkill_mid_epoch_matches_a_straight_run(tmp_path, teacher_path):
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT.format(tests=str(TESTS), teacher=teacher_path))
    run = tmp_path / "killed"
    process = subprocess.Popen(
        [PYTHON, str(script), str(run), "0", "0.05"], stdout=subprocess.PIPE, text=True
    )
    try:
        for line in process.stdout:
            if "(epoch 1, step 1)" in line:  # a mid-epoch checkpoint exists: kill now
                break
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    resumed = subprocess.run(
        [PYTHON, str(script), str(run), "1", "0"], capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert re.search(r"resuming .* at epoch 1, step [12]\n", resumed.stdout)  # mid-epoch
    straight = subprocess.run(
        [PYTHON, str(script), str(tmp_path / "straight"), "0", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert straight.returncode == 0, straight.stderr[-2000:]
    got, want = (
        weights(run / "checkpoints/last.pt"),
        weights(tmp_path / "straight/checkpoints/last.pt"),
    )
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], msg=key)
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    expected = [
        json.loads(line) for line in (tmp_path / "straight/metrics.jsonl").read_text().splitlines()
    ]
    assert [r["train_loss"] for r in history] == pytest.approx([r["train_loss"] for r in expected])
    assert [r["train_clips"] for r in history] == [24, 24]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """Two motion classes, 6 tiny videos each (MP4), with a manifest."""
    root = tmp_path_factory.mktemp("synth")
    spec = spec_with_classes(
        2, videos_per_class=6, num_frames=12, height=32, width=32, test_fraction=0.2
    )
    generate_dataset(root, spec, progress=False)
    return root


def cli_args(synth: Path, run: Path, *extra: str) -> list[str]:
    return [
        "train",
        str(REPO / "configs/tiny/rgb.yaml"),
        f"data.root={synth}",
        f"data.annotations={synth / 'manifest.csv'}",
        "data.frame_root=null",
        "data.clip_len=8",
        "data.crop_size=32",
        "data.short_side=32",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.val_fraction=0.25",
        "schedule.epochs=1",
        "train.progress=false",
        "train.device=cpu",
        "train.threads=1",
        *extra,
        "--run-dir",
        str(run),
    ]


def test_mars_train_cli_on_real_video_files(synth, tmp_path, capsys):
    assert main(cli_args(synth, tmp_path / "run")) == 0
    assert "mars train: 1 epochs" in capsys.readouterr().out
    _, meta = load_checkpoint(tmp_path / "run/checkpoints/best.pt")
    annotations = load_annotations("manifest", synth, synth / "manifest.csv")
    assert meta.class_names == annotations.class_names and meta.stream == "rgb"
    assert len(meta.class_names) == 2
    assert main(cli_args(synth, tmp_path / "bad", "stream=mars")) == 2  # no teacher: one line


@pytest.mark.slow
def test_ddp_on_gloo_with_two_processes_equals_one_process(synth, tmp_path):
    """Only the classifier trains (ft_begin_index 5, frozen BN in eval mode), so the
    result must not depend on how a batch of 4 is split over processes: DDP's
    gradient average over 2 x 2 clips equals one process's mean over 4."""
    frozen = ("model.ft_begin_index=5", "model.frozen_bn=freeze")
    two = subprocess.run(
        [
            PYTHON,
            "-m",
            "mars_action.cli",
            *cli_args(synth, tmp_path / "two", *frozen),
            "--gpus",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert main(cli_args(synth, tmp_path / "one", *frozen)) == 0
    got, want = (
        weights(tmp_path / "two/checkpoints/last.pt"),
        weights(tmp_path / "one/checkpoints/last.pt"),
    )
    torch.manual_seed(0)  # the run's seed: its initial weights
    assert not torch.equal(want["fc.weight"], build_model("resnet10_tiny", num_classes=2).fc.weight)
    for key in want:
        torch.testing.assert_close(got[key], want[key], msg=key)
    records = [
        json.loads((tmp_path / name / "metrics.jsonl").read_text()) for name in ("two", "one")
    ]
    assert records[0]["train_clips"] == records[1]["train_clips"] == 8
    assert records[0]["train_loss"] == pytest.approx(records[1]["train_loss"])
