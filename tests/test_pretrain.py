"""``mars pretrain``: an RGB network learns the Flow teacher's features from unlabelled video."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from test_training import save_teacher, tiny_config

from mars_action.cli import main
from mars_action.models import build_model, load_checkpoint
from mars_action.training import plan_phases
from mars_action.training.build import build_student

REPO = Path(__file__).resolve().parents[1]


def args(store: Path, teacher: str, run: Path, *extra: str) -> list[str]:
    return ["pretrain", str(REPO / "configs/tiny/mars.yaml"), "data.format=folder",
            f"data.annotations={store}", f"data.frame_root={store}", "data.root=null",
            "data.clip_len=8", "data.crop_size=32", "data.short_side=32", "data.batch_size=4",
            "data.num_workers=0", "data.val_fraction=0.25", f"distill.teacher={teacher}",
            "distill.hints.layer3=1", "distill.alpha=1", "optim.lr=0.01",
            "train.progress=false", "train.device=cpu", "train.threads=1", *extra,
            "--run-dir", str(run)]


def test_pretrain_plans_the_teacher_terms_on_the_backbone():
    (phase,) = plan_phases(tiny_config("pretrain", teacher="t.pt"))
    assert (phase.name, phase.trainable, phase.objective.ce) == ("pretrain", "backbone", False)
    assert phase.objective.distill.uses_teacher


def test_pretrain_writes_a_start_for_mars_train_and_resumes(synth_flow_store, tmp_path, capsys):
    teacher = save_teacher(tmp_path)
    run = tmp_path / "pre"
    assert main(args(synth_flow_store, teacher, run, "schedule.epochs=1")) == 0
    assert main(args(synth_flow_store, teacher, run, "schedule.epochs=2", "--resume")) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "model.pretrained=" in out
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2] and all(r["train_mse"] > 0 for r in history)
    assert all(0 < r["val_mse"] < float("inf") for r in history), history
    pretrained, meta = load_checkpoint(run / "checkpoints" / "best.pt")
    assert meta.in_channels == 3
    torch.manual_seed(0)
    fresh = build_model("resnet10_tiny", num_classes=2)
    assert not torch.equal(pretrained.conv1.weight, fresh.conv1.weight)
    config = tiny_config("mars", f"model.pretrained={run / 'checkpoints' / 'best.pt'}",
                         teacher=teacher)
    student = build_student(config, num_classes=5)
    assert torch.equal(student.layer3[0].conv1.weight, pretrained.layer3[0].conv1.weight)
    assert student.fc.out_features == 5
