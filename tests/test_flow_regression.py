"""Flow regression: the student's maps regress the clip's pooled flow (no teacher)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from test_training import tiny_config
from torch import nn

from mars_action.cli import main
from mars_action.errors import MarsError
from mars_action.models import build_model, load_checkpoint, read_checkpoint
from mars_action.training import plan_phases
from mars_action.training.build import modalities
from mars_action.training.distributed import Process
from mars_action.training.engine import Meter
from mars_action.training.flow_regression import (
    EPS,
    FLOW_OUTPUT,
    FlowHead,
    build_flow_head,
    endpoint_error,
    flow_regression_loss,
    pool_flow,
)
from mars_action.training.losses import StreamLoss, Student, distill_spec

REPO = Path(__file__).resolve().parents[1]


def test_endpoint_error_is_the_mean_length_of_the_error_vectors():
    predicted = torch.zeros(1, 2, 1, 1, 2)
    target = torch.tensor([[3.0, 0.0], [4.0, 0.0]]).view(1, 2, 1, 1, 2)  # (3, 4) and (0, 0)
    wanted = (math.sqrt(25 + EPS) + math.sqrt(EPS)) / 2
    assert endpoint_error(predicted, target).item() == pytest.approx(wanted, rel=1e-6)
    assert endpoint_error(target, target).item() == pytest.approx(math.sqrt(EPS), rel=1e-3)


def test_the_gradient_is_a_unit_vector_per_position_whatever_the_error():
    for scale in (1.0, 100.0):
        predicted = torch.zeros(1, 2, 1, 1, 1, requires_grad=True)
        target = scale * torch.tensor([3.0, 4.0]).view(1, 2, 1, 1, 1)
        endpoint_error(predicted, target).backward()
        assert predicted.grad.flatten().tolist() == pytest.approx([-0.6, -0.8], rel=1e-5)


def test_flow_is_averaged_over_the_frames_and_pixels_of_each_cell():
    t = torch.arange(4.0).view(1, 1, 4, 1, 1).expand(1, 1, 4, 4, 4)
    x = torch.arange(4.0).view(1, 1, 1, 1, 4).expand(1, 1, 4, 4, 4)
    flow = torch.cat([t, x], dim=1)  # channel x: the frame index, channel y: the column
    pooled = pool_flow(flow, (2, 2, 2))  # temporal stride 2, spatial stride 2
    assert pooled.shape == (1, 2, 2, 2, 2)
    assert pooled[0, 0, :, 0, 0].tolist() == [0.5, 2.5]  # frames {0, 1} and {2, 3}
    assert pooled[0, 1, 0, 0, :].tolist() == [0.5, 2.5]  # columns {0, 1} and {2, 3}
    odd = pool_flow(flow[:, :, :3], (2, 1, 1))  # 3 frames into 2 cells: {0, 1}, {1, 2}
    assert odd[0, 0].flatten().tolist() == [0.5, 1.5]


def test_the_loss_pools_the_flow_to_the_prediction_grid():
    flow = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1, 1).expand(2, 2, 8, 6, 6)
    predicted = torch.zeros(2, 2, 2, 3, 3)
    assert flow_regression_loss(predicted, flow).item() == pytest.approx(5.0, rel=1e-6)
    with pytest.raises(ValueError, match="flow head"):
        flow_regression_loss(torch.zeros(2, 64, 2, 3, 3), flow)


def test_the_student_regresses_flow_through_its_head_without_a_teacher():
    config = tiny_config("pretrain", "distill.alpha=0", "distill.flow_regression=2",
                         "distill.flow_layer=layer2")
    (phase,) = plan_phases(config)
    objective = phase.objective
    assert not objective.uses_teacher and objective.uses_flow
    assert modalities([objective]) == ("rgb", "flow")
    torch.manual_seed(0)
    model = build_model("resnet10_tiny", num_classes=3)
    head = build_flow_head(model, "layer2", clip_len=8, crop_size=32)
    assert isinstance(head, FlowHead) and head.norm.num_features == 32
    student = Student(model, objective, nn.ModuleDict({FLOW_OUTPUT: head}))
    _, outputs = student(torch.randn(2, 3, 8, 32, 32))
    assert set(outputs) == {FLOW_OUTPUT}
    assert outputs[FLOW_OUTPUT].shape == (2, 2, 2, 4, 4)  # layer2's grid of 8x32x32 clips
    flow = torch.randn(2, 2, 8, 32, 32)
    parts = StreamLoss(objective)(torch.zeros(2, 3), outputs, {"label": torch.zeros(2).long(),
                                                                "flow": flow})
    epe = flow_regression_loss(outputs[FLOW_OUTPUT], flow)
    assert parts["epe"].item() == pytest.approx(epe.item())
    assert parts["loss"].item() == pytest.approx(2 * epe.item())  # no CE in pretraining


def test_flow_regression_adds_to_the_teacher_terms_of_mars():
    spec = distill_spec(tiny_config("mars", "distill.flow_regression=1", teacher="t.pt").distill)
    assert spec.uses_teacher and spec.flow_regression == 1.0 and spec.flow_layer == "layer3"
    assert FLOW_OUTPUT not in spec.outputs  # the teacher is never asked for it


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["distill.alpha=0", "distill.flow_regression=-1"], "distill.flow_regression"),
        (["distill.alpha=0", "distill.flow_regression=1", "distill.flow_layer=layer5"],
         "distill.flow_layer"),
        (["distill.alpha=0"], "no teacher term"),
        (["distill.flow_regression=1"], "distill.teacher"),  # alpha 50 still needs a teacher
    ],
)
def test_bad_flow_regression_settings_are_one_clear_error(overrides, message):
    with pytest.raises(MarsError, match=message):
        tiny_config("pretrain", *overrides)


def data_args(store: Path) -> list[str]:
    return ["data.format=folder", f"data.annotations={store}", f"data.frame_root={store}",
            "data.root=null", "data.clip_len=8", "data.crop_size=32", "data.short_side=32",
            "data.batch_size=6", "data.num_workers=0", "data.val_fraction=0.25",
            "train.progress=false", "train.device=cpu", "train.threads=1"]


def test_mars_pretrain_regresses_flow_resumes_and_starts_mars_train(
    synth_flow_store, tmp_path, capsys
):
    run = tmp_path / "pre"
    # configs/tiny/mars.yaml names a teacher that does not exist: flow mode never reads it.
    # One batch of the 6 training videos, whole frames, no flips: the EPE falls steadily
    # (3.9 to 1.5 in 6 epochs when written) instead of moving with the crops drawn.
    pretrain = ["pretrain", str(REPO / "configs/tiny/mars.yaml"), *data_args(synth_flow_store),
                "data.crop_scales=[1.0]", "data.flip=false", "distill.alpha=0",
                "distill.flow_regression=1", "optim.lr=0.1", "schedule.scheduler=constant",
                "--run-dir", str(run)]
    assert main([*pretrain, "schedule.epochs=5"]) == 0
    assert main([*pretrain, "schedule.epochs=6", "--resume"]) == 0
    assert "resuming" in capsys.readouterr().out
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == list(range(1, 7))
    epe = [r["train_epe"] for r in history]
    assert epe[-1] < 0.6 * epe[0] and epe[-1] < min(epe[:3]), epe  # it learns the flow
    assert all("train_mse" not in r for r in history)
    weights, meta, raw = read_checkpoint(run / "checkpoints" / "last.pt")
    assert set(raw["training"]["adapters"]) >= {"flow.proj.weight", "flow.norm.running_mean"}
    assert not any(key.startswith("flow.") for key in weights)  # the head is not the model
    pretrained, meta = load_checkpoint(run / "checkpoints" / "best.pt")
    assert (meta.stream, meta.in_channels) == ("pretrain", 3)

    out = tmp_path / "rgb"
    assert main(["train", str(REPO / "configs/tiny/rgb.yaml"), *data_args(synth_flow_store),
                 f"model.pretrained={run / 'checkpoints' / 'best.pt'}", "schedule.epochs=1",
                 "model.ft_begin_index=5", "--run-dir", str(out)]) == 0
    started, _ = load_checkpoint(out / "checkpoints" / "last.pt")
    torch.testing.assert_close(started.layer3[0].conv1.weight, pretrained.layer3[0].conv1.weight)


def test_a_mid_epoch_meter_written_before_the_epe_part_resumes():
    meter = Meter(torch.device("cpu"))
    # the six parts of before (loss, ce, mse, alpha_mse, kd, at), 3 correct of 4 clips
    meter.restore(torch.tensor([8.0, 4.0, 2.0, 2.0, 0.0, 0.0, 3.0, 4.0], dtype=torch.float64),
                  ["loss", "ce"])
    result = meter.result(Process(0, 1, torch.device("cpu")))
    assert (result["loss"], result["ce"], result["acc"], result["clips"]) == (2.0, 1.0, 0.75, 4)
    assert "epe" not in result
