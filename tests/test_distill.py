"""The distillation terms: exact values on small tensors, the Distiller, statistics, configs."""

from __future__ import annotations

import math

import pytest
import torch
from test_training import ClipSet, batches, engine_for, save_teacher, tiny_config
from torch import nn

from mars_action.errors import MarsError
from mars_action.models import build_model
from mars_action.training import plan_phases, train
from mars_action.training.distill import (
    Distiller,
    DistillSpec,
    apply_adapters,
    attention_map,
    attention_transfer,
    cached_statistics,
    channel_moments,
    feature_mse,
    kd_kl,
    l2_normalize,
    load_teacher,
    standardize,
    teacher_statistics,
)
from mars_action.training.engine import train_one_epoch
from mars_action.training.losses import Objective, StreamLoss, Student


def test_feature_mse_is_the_mean_over_every_element():
    student = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert feature_mse(student, torch.zeros(2, 2)).item() == pytest.approx(7.5)


def test_standardize_per_channel_of_vectors_and_maps():
    mean, std = torch.tensor([1.0, 1.0]), torch.tensor([1.0, 2.0])
    assert standardize(torch.tensor([[1.0, 3.0]]), mean, std).tolist() == [[0.0, 1.0]]
    maps = torch.tensor([1.0, 3.0]).view(1, 2, 1, 1, 1).expand(1, 2, 2, 1, 1)
    assert standardize(maps, mean, std).flatten().tolist() == [0.0, 0.0, 1.0, 1.0]


def test_l2_mse_is_the_scaled_cosine_distance():
    a, b = l2_normalize(torch.tensor([[3.0, 4.0]])), l2_normalize(torch.tensor([[4.0, 3.0]]))
    assert a[0].tolist() == pytest.approx([0.6, 0.8])
    assert feature_mse(a, b).item() == pytest.approx((2 - 2 * 0.96) / 2)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_kd_is_t_squared_kl_of_softened_logits(temperature):
    teacher, student = torch.tensor([[math.log(3.0), 0.0]]), torch.zeros(1, 2)
    e = 3.0 ** (1 / temperature)
    p = [e / (e + 1), 1 / (e + 1)]
    wanted = temperature**2 * sum(pi * math.log(pi / 0.5) for pi in p)
    assert kd_kl(student, teacher, temperature).item() == pytest.approx(wanted, rel=1e-5)
    assert kd_kl(teacher, teacher, temperature).item() == pytest.approx(0.0, abs=1e-7)


def test_attention_map_and_transfer():
    maps = torch.tensor([[1.0, 0.0], [1.0, 2.0]]).view(1, 2, 1, 1, 2)  # 2 channels, 2 positions
    assert attention_map(maps)[0].tolist() == pytest.approx([1 / 5**0.5, 2 / 5**0.5])
    flipped = maps.flip(-1)  # attention [2, 1] / sqrt 5
    assert attention_transfer(maps, flipped).item() == pytest.approx(0.2)
    wider = torch.cat([maps, maps], 1)  # channel count may differ, the map may not
    assert attention_transfer(maps, wider).item() == pytest.approx(0.0, abs=1e-7)


def test_channel_moments_and_the_dead_channel_floor():
    mean, std = channel_moments([torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]])])
    assert mean.tolist() == [2.0, 3.0] and std.tolist() == [1.0, 1.0]
    _, std = channel_moments([torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 3.0]])])
    assert std.tolist() == pytest.approx([0.125, 1.0])  # floor: a quarter of the mean std
    with pytest.raises(MarsError, match="no training clip"):
        channel_moments([])


class FixedTeacher(nn.Module):
    """A 'network' whose named outputs are given tensors (exact loss values)."""

    def __init__(self, outputs: dict[str, torch.Tensor]):
        super().__init__()
        self.outputs = outputs

    def forward_with_features(self, x, names):
        return self.outputs["logits"], {n: self.outputs[n] for n in names}


def test_distiller_adds_every_term_with_its_weight():
    teacher_out = {
        "pooled": torch.tensor([[1.0, 1.0]]),
        "layer1": torch.zeros(1, 2, 1, 1, 2),
        "layer3": torch.tensor([[1.0, 0.0], [1.0, 2.0]]).view(1, 2, 1, 1, 2).flip(-1),
        "logits": torch.tensor([[math.log(3.0), 0.0]]),
    }
    student = {
        "pooled": torch.tensor([[3.0, 1.0]]),  # MSE 2
        "layer1": torch.ones(1, 2, 1, 1, 2),  # MSE 1
        "layer3": torch.tensor([[1.0, 0.0], [1.0, 2.0]]).view(1, 2, 1, 1, 2),  # AT 0.2
        "logits": torch.zeros(1, 2),  # KL 0.130812 at T 1
    }
    spec = DistillSpec(alpha=10.0, hints=(("layer1", 0.5),), kd=2.0, temperature=1.0,
                       attention=(("layer3", 100.0),))
    assert spec.outputs == ("pooled", "layer1", "logits", "layer3")
    parts = Distiller(spec, FixedTeacher(teacher_out))(student, torch.zeros(1))
    assert parts["mse"].item() == pytest.approx(2.5)
    assert parts["alpha_mse"].item() == pytest.approx(25.0)
    assert parts["kd"].item() == pytest.approx(0.130812, abs=1e-5)
    assert parts["at"].item() == pytest.approx(20.0)
    assert parts["distill"].item() == pytest.approx(25.0 + 2 * 0.130812 + 20.0, abs=1e-4)


def test_standardize_and_l2_apply_to_the_compared_feature():
    teacher_out = {"pooled": torch.tensor([[1.0, 1.0]]), "logits": torch.zeros(1, 2)}
    student = {"pooled": torch.tensor([[3.0, 5.0]])}
    stats = {"pooled": (torch.tensor([1.0, 1.0]), torch.tensor([2.0, 4.0]))}
    spec = DistillSpec(alpha=1.0, normalize="standardize")
    parts = Distiller(spec, FixedTeacher(teacher_out), stats)(student, torch.zeros(1))
    assert parts["mse"].item() == pytest.approx(1.0)  # (1, 1) vs (0, 0)
    with pytest.raises(ValueError, match="statistics"):
        Distiller(spec, FixedTeacher(teacher_out))
    l2 = Distiller(DistillSpec(alpha=1.0, normalize="l2"), FixedTeacher(teacher_out))
    cos = 8 / (34**0.5 * 2**0.5)
    assert l2(student, torch.zeros(1))["mse"].item() == pytest.approx((2 - 2 * cos) / 2)


def test_adapters_map_student_outputs_and_train_outside_the_model(tmp_path):
    outputs = {"pooled": torch.ones(2, 3), "logits": torch.ones(2, 4)}
    adapters = nn.ModuleDict({"pooled": nn.Linear(3, 5)})
    mapped = apply_adapters(outputs, adapters)
    assert mapped["pooled"].shape == (2, 5) and mapped["logits"] is outputs["logits"]
    config = tiny_config("mars", teacher=save_teacher(tmp_path))
    teacher = load_teacher(config.distill.teacher, build_model("resnet10_tiny"), DistillSpec())
    adapters = nn.ModuleDict({"pooled": nn.Linear(128, 128)})
    phase = plan_phases(config)[0]
    torch.manual_seed(0)
    model = build_model("resnet10_tiny", num_classes=3)
    from test_training import CPU

    from mars_action.training.build import build_engine

    engine, _, _ = build_engine(phase, model, teacher, config, CPU, adapters=adapters)
    before = adapters["pooled"].weight.detach().clone()
    train_one_epoch(engine, batches(), epoch=0)
    assert not torch.equal(before, adapters["pooled"].weight)
    assert not any(k.startswith("adapters") for k in model.state_dict())


def test_teacher_statistics_are_computed_once_and_cached(tmp_path):
    teacher = load_teacher(save_teacher(tmp_path), build_model("resnet10_tiny"), DistillSpec())
    flows = [b["flow"] for b in batches(2)]
    stats = teacher_statistics(teacher, flows, ("pooled", "layer3"))
    with torch.no_grad():
        pooled = torch.cat([teacher.forward_with_features(f)[1]["pooled"] for f in flows])
    torch.testing.assert_close(stats["pooled"][0], pooled.mean(0))
    assert stats["layer3"][0].shape == (64,)
    path = tmp_path / "stats.pt"
    first = cached_statistics(path, lambda: stats)
    again = cached_statistics(path, lambda: pytest.fail("computed twice"))
    torch.testing.assert_close(first["pooled"][1], again["pooled"][1])


def test_every_objective_trains_through_the_engine(tmp_path):
    path = save_teacher(tmp_path)
    overrides = ("distill.alpha=1", "distill.hints.layer1=0.5", "distill.kd=1",
                 "distill.attention.layer2=10", "distill.normalize=l2")
    config = tiny_config("mars", *overrides, teacher=path)
    spec = plan_phases(config)[0].objective.distill
    teacher = load_teacher(path, build_model("resnet10_tiny", num_classes=3), spec)
    engine, _, _ = engine_for(config, teacher=teacher)
    metrics, _ = train_one_epoch(engine, batches(), epoch=0)
    assert {"ce", "mse", "alpha_mse", "kd", "at"} <= metrics.keys()
    assert all(math.isfinite(metrics[k]) for k in ("loss", "kd", "at"))


def test_a_standardized_run_caches_statistics_beside_the_teacher(tmp_path):
    path = save_teacher(tmp_path)
    config = tiny_config("mars", "schedule.epochs=1", "distill.normalize=standardize",
                         "distill.feature=layer3", "distill.pool_maps=false", teacher=path)
    train(config, tmp_path / "run", train_set=ClipSet(8), val_set=ClipSet(3))
    cached = list(tmp_path.glob("flow.pt.stats-*.pt"))
    assert len(cached) == 1
    stats = torch.load(cached[0], weights_only=True)
    assert set(stats) == {"layer3"} and stats["layer3"][1].min() > 0


def test_the_student_returns_named_outputs():
    model = build_model("resnet10_tiny", num_classes=3)
    spec = DistillSpec(alpha=1.0, hints=(("layer1", 1.0), ("layer2", 1.0)))
    logits, outputs = Student(model, Objective("rgb", distill=spec))(torch.randn(2, 3, 8, 32, 32))
    assert logits.shape == (2, 3) and set(outputs) == {"pooled", "layer1", "layer2"}
    assert outputs["layer1"].shape[:2] == (2, 16) and outputs["layer2"].shape[:2] == (2, 32)
    assert Student(model, Objective("rgb"))(torch.randn(2, 3, 8, 32, 32))[1] is None
    with pytest.raises(ValueError, match="teacher"):
        StreamLoss(Objective("rgb", distill=spec))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["distill.hints.layer5=1"], "distill.hints"),
        (["distill.attention.layer2=-1"], "distill.attention.layer2"),
        (["distill.normalize=zscore"], "distill.normalize"),
        (["distill.temperature=0"], "distill.temperature"),
        (["distill.alpha=0"], "no teacher term"),
        (["distill.hints=[layer1]"], "mapping"),
    ],
)
def test_bad_distill_settings_are_one_clear_error(overrides, message):
    with pytest.raises(MarsError, match=message):
        tiny_config("mars", *overrides, teacher="t.pt")


def test_logit_distillation_alone_needs_no_feature_mse(tmp_path):
    config = tiny_config("mars", "distill.alpha=0", "distill.kd=1", teacher=save_teacher(tmp_path))
    spec = plan_phases(config)[0].objective.distill
    assert spec.outputs == ("logits",) and spec.mse_targets == ()


def test_the_small_data_configs_load_with_their_terms():
    from pathlib import Path

    from mars_action.training import load_experiment

    folder = Path(__file__).resolve().parents[1] / "configs" / "small"
    configs = {p.stem: load_experiment(p) for p in sorted(folder.glob("*.yaml"))}
    assert set(configs) == {"flow", "rgb", "pretrain", "mars", "mers"}
    spec = plan_phases(configs["mars"])[0].objective.distill
    assert spec.mse_targets == (("layer3", False, 1.0),) and spec.alpha == 20.0
    mers = plan_phases(configs["mers"])[0].objective.distill
    assert mers.mse_targets == (("pooled", True, 1.0), ("layer3", False, 1.0))
    assert all(c.train.select == "last" and c.data.crop_scales for c in configs.values())
    assert [configs[s].model.pretrained is None for s in ("flow", "rgb", "mars", "mers")] == [
        True, True, False, False]
