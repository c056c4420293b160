"""Cross-family distillation: adapters map a student's outputs to the teacher's shapes,
train with it, and never reach its checkpoint."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from test_training import CPU, ClipSet, batches, save_teacher, tiny_config

from mars_action.models import build_model, load_checkpoint, read_checkpoint
from mars_action.training import plan_phases, train
from mars_action.training.adapters import MapAdapter, build_adapters, resize
from mars_action.training.build import build_engine
from mars_action.training.distill import DistillSpec, load_teacher
from mars_action.training.engine import train_one_epoch


def test_resize_pools_down_and_interpolates_up():
    maps = torch.arange(16.0).view(1, 1, 4, 2, 2)
    down = resize(maps, (1, 1, 1))
    assert down.shape == (1, 1, 1, 1, 1) and down.item() == pytest.approx(7.5)
    up = resize(torch.ones(1, 2, 1, 2, 2), (2, 4, 4))
    assert up.shape == (1, 2, 2, 4, 4) and torch.allclose(up, torch.ones_like(up))
    assert resize(maps, (4, 2, 2)) is maps


def test_adapters_where_the_families_differ():
    student = build_model("x3d_xs", num_classes=3)
    teacher = build_model("resnet10_tiny", in_channels=2, num_classes=3)
    adapters = build_adapters(student, teacher, ("layer3", "pooled", "logits"), 8, 32)
    assert set(adapters) == {"layer3", "pooled"}  # logits already have the same shape
    assert isinstance(adapters["layer3"], MapAdapter)
    with torch.no_grad():
        _, mine = student.forward_with_features(torch.randn(2, 3, 8, 32, 32), ("layer3",))
        _, theirs = teacher.forward_with_features(torch.randn(2, 2, 8, 32, 32), ("layer3",))
    assert adapters["layer3"](mine["layer3"]).shape == theirs["layer3"].shape  # (2, 64, 1, 2, 2)
    pooled = adapters["pooled"].proj
    assert pooled.in_features == 2048 and pooled.out_features == 128
    same = build_model("resnet10_tiny", num_classes=3)
    assert build_adapters(same, teacher, ("layer3", "pooled"), 8, 32) is None


def test_an_x3d_student_learns_from_a_resnet_flow_teacher(tmp_path):
    teacher = save_teacher(tmp_path)  # resnet10_tiny, Flow
    config = tiny_config("mars", "model.arch=x3d_xs", "distill.feature=layer3",
                         "distill.pool_maps=false", "schedule.epochs=1",
                         "model.channels_last=true", teacher=teacher)
    summary = train(config, tmp_path / "run", train_set=ClipSet(8), val_set=ClipSet(4))
    record = json.loads((tmp_path / "run/metrics.jsonl").read_text().splitlines()[0])
    assert record["train_mse"] > 0 and record["train_alpha_mse"] == pytest.approx(
        50 * record["train_mse"], rel=1e-4)
    state, meta, _ = read_checkpoint(summary.best_checkpoint)
    assert meta.arch == "x3d_xs" and not any("adapter" in key or "proj" in key for key in state)
    model, _ = load_checkpoint(summary.best_checkpoint)  # the student alone, exactly
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in build_model("x3d_xs", num_classes=3).parameters())


def test_adapters_train_with_the_student(tmp_path):
    config = tiny_config("mars", "model.arch=mobilenet3d_v2_half", "distill.feature=layer3",
                         "distill.pool_maps=false", teacher=save_teacher(tmp_path))
    torch.manual_seed(0)
    student = build_model("mobilenet3d_v2_half", num_classes=3)
    teacher = load_teacher(config.distill.teacher, student, DistillSpec())
    adapters = build_adapters(student, teacher, ("layer3",), 8, 32)
    before = adapters["layer3"].proj.weight.detach().clone()
    engine, _, _ = build_engine(plan_phases(config)[0], student, teacher, config, CPU,
                                adapters=adapters)
    parts, _ = train_one_epoch(engine, batches(1, 4), epoch=0)
    assert parts["mse"] > 0
    assert not torch.equal(adapters["layer3"].proj.weight, before)  # in the optimizer


def test_an_adapter_on_raw_x3d_maps_stays_stable_at_the_recipe_lr():
    """Without the adapter's input normalisation this loop reached an MSE of 1e6 by step 4
    and NaN by step 6 (X3D-XS layer3 maps, 96 channels, lr 0.1)."""
    torch.manual_seed(0)
    student = build_model("x3d_xs", num_classes=8)
    teacher = build_model("resnet10_tiny", in_channels=2, num_classes=8).eval()
    adapters = build_adapters(student, teacher, ["layer3"], clip_len=16, crop_size=32)
    optimizer = torch.optim.SGD(
        [*student.parameters(), *adapters.parameters()], lr=0.1, momentum=0.9
    )
    losses = []
    for _ in range(8):
        clips, flow = torch.randn(8, 3, 16, 32, 32), torch.randn(8, 2, 16, 32, 32) * 3
        with torch.no_grad():
            target = teacher.forward_with_features(flow, ("layer3",))[1]["layer3"]
            target = (target - target.mean((0, 2, 3, 4), keepdim=True)) / (
                target.std((0, 2, 3, 4), keepdim=True) + 1e-3
            )
        maps = student.forward_with_features(clips, ("layer3",))[1]["layer3"]
        loss = 5 * F.mse_loss(adapters["layer3"](maps), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert max(losses) < 10 and losses[-1] < losses[0]


def test_with_teacher_statistics_the_standardised_adapter_output_is_its_projection():
    """standardize() divides by the teacher's std: the adapter outputs z * std + mean so the
    compared value is its projection z, never z / std (a gradient 1/std**2 too large)."""
    from mars_action.training.distill import standardize

    torch.manual_seed(0)
    student = build_model("x3d_xs", num_classes=3)
    teacher = build_model("resnet10_tiny", in_channels=2, num_classes=3)
    mean, std = torch.randn(64), torch.rand(64) * 0.1 + 0.01
    adapters = build_adapters(student, teacher, ("layer3",), 8, 32, stats={"layer3": (mean, std)})
    adapter = adapters["layer3"].eval()
    maps = torch.randn(2, 96, 8, 4, 4)
    with torch.no_grad():
        z = adapter.proj(adapter.norm(resize(maps, adapter.size)))
        assert torch.allclose(standardize(adapter(maps), mean, std), z, atol=1e-5)
    plain = build_adapters(student, teacher, ("layer3",), 8, 32)["layer3"]
    assert isinstance(plain.units, torch.nn.Identity)


def test_a_resumed_cross_family_run_goes_on_with_its_trained_adapters(tmp_path):
    """A NaN at epoch 2 stops the run with last.pt at the end of epoch 1; resuming it must
    end exactly where a straight run ends (adapters and student), which it cannot if the
    adapters restart from their initial weights, nor if validation leaves the straight
    run's adapters in eval mode (their BatchNorm) while the resumed run's train."""
    from mars_action.training import NonFiniteLoss

    config = tiny_config("mars", "model.arch=mobilenet3d_v2_half", "distill.feature=layer3",
                         "distill.pool_maps=false", "train.threads=1",
                         teacher=save_teacher(tmp_path))
    with pytest.raises(NonFiniteLoss):
        train(config, tmp_path / "cut", train_set=ClipSet(8, nan_after=8), val_set=ClipSet(3))
    stopped = read_checkpoint(tmp_path / "cut/checkpoints/last.pt")[2]["training"]
    assert stopped["epoch"] == 1 and set(stopped["adapters"]) >= {"layer3.proj.weight"}
    train(config, tmp_path / "cut", resume=True, train_set=ClipSet(8), val_set=ClipSet(3))
    train(config, tmp_path / "straight", train_set=ClipSet(8), val_set=ClipSet(3))
    (cut, _, raw_cut), (straight, _, raw_straight) = (
        read_checkpoint(tmp_path / name / "checkpoints/last.pt") for name in ("cut", "straight"))
    adapters, want = raw_cut["training"]["adapters"], raw_straight["training"]["adapters"]
    assert adapters.keys() == want.keys()
    key = "layer3.proj.weight"
    assert not torch.equal(adapters[key], stopped["adapters"][key])  # epoch 2 trained them
    for key in want:
        torch.testing.assert_close(adapters[key], want[key], msg=key)
    for key in straight:
        torch.testing.assert_close(cut[key], straight[key], msg=key)
    assert not any("proj" in key for key in cut)  # the model's weights: the student alone
