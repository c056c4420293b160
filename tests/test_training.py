"""Training pieces: losses and the frozen teacher, MERS phases, fine-tuning, samplers
(experiment configs: test_training_configs.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mars_action.errors import MarsError
from mars_action.models import CheckpointMeta, build_model, save_checkpoint
from mars_action.training import engine as engine_module
from mars_action.training import load_experiment, plan_phases
from mars_action.training.build import build_engine
from mars_action.training.distill import DistillSpec, load_teacher
from mars_action.training.distributed import Process
from mars_action.training.engine import train_one_epoch
from mars_action.training.loading import EpochSampler, SeededSamples
from mars_action.training.losses import Objective, StreamLoss, Student
from mars_action.training.optim import set_train_mode

CPU = Process(0, 1, torch.device("cpu"))


class ClipSet(Dataset):
    """Clips whose mean encodes the label, plus a random draw from torch's global
    generator, as an augmentation would make (so seeding and resuming matter)."""

    class_names = ["a", "b", "c"]

    def __init__(
        self,
        size: int,
        modalities=("rgb", "flow"),
        frames: int = 8,
        side: int = 32,
        delay: float = 0.0,
        nan_after: int | None = None,
    ):
        self.size, self.modalities, self.frames, self.side = size, modalities, frames, side
        self.delay, self.nan_after, self.served = delay, nan_after, 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        import time

        time.sleep(self.delay)
        self.served += 1
        label = index % 3
        generator = torch.Generator().manual_seed(index)
        jitter = torch.rand(())  # (the "augmentation")
        item = {"label": label, "video_id": f"v{index}"}
        for name, channels in (("rgb", 3), ("flow", 2)):
            if name in self.modalities:
                noise = torch.randn(
                    channels, self.frames, self.side, self.side, generator=generator
                )
                item[name] = noise + 2.0 * (label - 1) + 0.1 * jitter  # (C, T, H, W)
        if self.nan_after is not None and self.served > self.nan_after:
            item["rgb"] = item["rgb"] * float("nan")
        return item


def tiny_config(stream: str = "rgb", *overrides: str, teacher: str | None = None):
    """A resnet10_tiny experiment on 8x32x32 clips, quiet and on the CPU."""
    base = [
        f"stream={stream}",
        "model.arch=resnet10_tiny",
        "schedule.epochs=2",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.clip_len=8",
        "data.crop_size=32",
        "optim.lr=0.01",
        "train.progress=false",
        "train.device=cpu",
        "mers.classifier_epochs=1",
    ]
    if teacher:
        base.append(f"distill.teacher={teacher}")
    return load_experiment(None, base + list(overrides))


def save_teacher(folder: Path) -> str:
    """A seeded resnet10_tiny Flow checkpoint (3 classes) to distil from."""
    torch.manual_seed(1)
    teacher = build_model("resnet10_tiny", in_channels=2, num_classes=3)
    path = folder / "flow.pt"
    meta = CheckpointMeta("resnet10_tiny", 2, 3, stream="flow", flow_vectors_scaled=True)
    save_checkpoint(path, teacher, meta)
    return str(path)


@pytest.fixture
def teacher_path(tmp_path) -> str:
    return save_teacher(tmp_path)


def batches(count: int = 2, size: int = 4) -> list[dict]:
    """``count`` collated batches of ``size`` clips (the same clips for the same total)."""
    torch.manual_seed(0)  # the "augmentation" draw
    data = ClipSet(count * size)
    items = [data[i] for i in range(count * size)]
    return [
        torch.utils.data.default_collate(items[i * size : (i + 1) * size]) for i in range(count)
    ]


def engine_for(config, phase_index: int = 0, model=None, teacher=None):
    phase = plan_phases(config)[phase_index]
    torch.manual_seed(0)
    model = model or build_model(
        "resnet10_tiny", in_channels=2 if config.stream == "flow" else 3, num_classes=3
    )
    engine, scheduler, frozen = build_engine(phase, model, teacher, config, CPU)
    update = config.model.frozen_bn == "update" and phase.trainable != "classifier"
    set_train_mode(model, frozen, update)
    return engine, model, frozen


@pytest.mark.parametrize(
    "stream, extra", [("rgb", ()), ("flow", ()), ("mars", ()), ("mers", ("mers.variant=joint",))]
)
def test_each_stream_trains_and_its_loss_goes_down(stream, extra, teacher_path):
    config = tiny_config(stream, *extra, teacher=teacher_path)
    teacher = load_teacher(teacher_path, build_model("resnet10_tiny"), DistillSpec())
    engine, _, _ = engine_for(config, teacher=teacher if stream in ("mars", "mers") else None)
    data = batches()
    losses = [train_one_epoch(engine, data, epoch=e)[0]["loss"] for e in range(5)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses


def test_mars_loss_is_ce_plus_alpha_mse_of_pooled_features(teacher_path):
    student = build_model("resnet10_tiny", num_classes=3).eval()
    teacher = load_teacher(teacher_path, student, DistillSpec())
    objective = Objective("rgb", distill=DistillSpec(alpha=50.0))
    batch = batches(1)[0]
    logits, outputs = Student(student, objective)(batch["rgb"])
    parts = StreamLoss(objective, teacher)(logits, outputs, batch)
    feature = outputs["pooled"]
    with torch.no_grad():
        target = teacher.forward_with_features(batch["flow"], ("pooled",))[1]["pooled"]
    mse = ((feature - target) ** 2).sum() / feature.numel()  # mean over B x F
    assert feature.shape == (4, student.num_features)
    assert torch.allclose(parts["mse"], mse)
    assert torch.allclose(parts["loss"], F.cross_entropy(logits, batch["label"]) + 50.0 * mse)
    assert torch.allclose(parts["alpha_mse"], 50.0 * mse)


def test_the_teacher_gets_no_gradient_no_graph_and_no_update(teacher_path):
    config = tiny_config("mars", teacher=teacher_path)
    teacher = load_teacher(teacher_path, build_model("resnet10_tiny"), DistillSpec())
    before = copy.deepcopy(teacher.state_dict())
    engine, model, _ = engine_for(config, teacher=teacher)
    engine.loss.train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    (target,) = engine.loss.distiller.targets(batches(1)[0]["flow"]).values()
    assert target.grad_fn is None and not target.requires_grad
    train_one_epoch(engine, batches(), epoch=0)
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # BN stats too
    assert not any(
        p is q
        for p in teacher.parameters()
        for group in engine.optimizer.param_groups
        for q in group["params"]
    )


@pytest.mark.parametrize(
    "feature, pool, shape",
    [
        ("layer3", True, (4, 64)),
        ("layer4", True, (4, 128)),
        ("logits", True, (4, 3)),
        ("layer4", False, (4, 128, 1, 1, 1)),
    ],
)
def test_distilled_feature_is_configurable(feature, pool, shape, teacher_path):
    student = build_model("resnet10_tiny", num_classes=3)
    spec = DistillSpec(alpha=1.0, feature=feature, pool_maps=pool)
    teacher = load_teacher(teacher_path, student, spec)
    objective = Objective("rgb", distill=spec)
    batch = batches(1)[0]
    logits, outputs = Student(student, objective)(batch["rgb"])
    parts = StreamLoss(objective, teacher)(logits, outputs, batch)
    compared = parts["mse"]
    with torch.no_grad():
        wanted = teacher.forward_with_features(batch["flow"], (feature,))[1][feature]
    mine = outputs[feature]
    if pool and mine.dim() == 5:
        mine, wanted = mine.mean((2, 3, 4)), wanted.mean((2, 3, 4))
    assert mine.shape == shape and torch.allclose(compared, F.mse_loss(mine, wanted))


def test_a_teacher_is_refused_flow_scaled_otherwise_than_it_learned(teacher_path):
    student = build_model("resnet10_tiny", num_classes=3)
    assert load_teacher(teacher_path, student, DistillSpec(), scaled_vectors=True) is not None
    with pytest.raises(MarsError, match="data.scale_flow_vectors=true"):
        load_teacher(teacher_path, student, DistillSpec(), scaled_vectors=False)


def test_a_hint_adds_the_mse_of_the_whole_maps(teacher_path):
    student = build_model("resnet10_tiny", num_classes=3).eval()
    teacher = load_teacher(teacher_path, student, DistillSpec())
    objective = Objective("rgb", ce=False, distill=DistillSpec(alpha=2.0, hints=(("layer3", 1.0),)))
    batch = batches(1)[0]
    logits, outputs = Student(student, objective)(batch["rgb"])
    parts = StreamLoss(objective, teacher)(logits, outputs, batch)
    pooled, maps = outputs["pooled"], outputs["layer3"]
    with torch.no_grad():
        wanted = teacher.forward_with_features(batch["flow"], ("pooled", "layer3"))[1]
    assert pooled.shape == (4, 128) and maps.dim() == 5 and maps.shape[:2] == (4, 64)
    mse = F.mse_loss(pooled, wanted["pooled"]) + F.mse_loss(maps, wanted["layer3"])
    assert torch.allclose(parts["mse"], mse) and torch.allclose(parts["loss"], 2.0 * mse)


def test_mers_sequential_mimics_then_trains_only_the_classifier(teacher_path, monkeypatch):
    # Two mimic steps leave BatchNorm's running statistics near their start, so the frozen
    # body's eval-mode features are in the thousands: the divergence guard is not under test.
    monkeypatch.setattr(engine_module, "LOGIT_LIMIT", float("inf"))
    config = tiny_config("mers", "schedule.epochs=3", teacher=teacher_path)
    mimic, classify = plan_phases(config)
    assert (mimic.name, mimic.end_epoch, classify.name, classify.first_epoch) == (
        "mimic",
        2,
        "classify",
        2,
    )
    assert not mimic.objective.ce and mimic.objective.distill.alpha == 50.0
    assert classify.objective.ce and not classify.objective.uses_teacher
    teacher = load_teacher(teacher_path, build_model("resnet10_tiny"), DistillSpec())
    engine, model, frozen = engine_for(config, 0, teacher=teacher)
    fc_before = copy.deepcopy(model.fc.state_dict())
    train_one_epoch(engine, batches(), epoch=0)
    assert frozen == ["fc"] and all(
        torch.equal(fc_before[k], v) for k, v in model.fc.state_dict().items()
    )
    engine, model, frozen = engine_for(config, 1, model=model)
    body_before = copy.deepcopy(
        {k: v for k, v in model.state_dict().items() if not k.startswith("fc")}
    )
    train_one_epoch(engine, batches(), epoch=2)
    assert "fc" not in frozen and "layer4" in frozen
    assert all(
        torch.equal(body_before[k], model.state_dict()[k]) for k in body_before
    )  # BN stats too
    assert [p.shape for p in engine.optimizer.param_groups[0]["params"]] == [(3, 128), (3,)]


def test_mers_joint_sends_ce_only_into_the_classifier(teacher_path):
    model = build_model("resnet10_tiny", num_classes=3)
    teacher = load_teacher(teacher_path, model, DistillSpec())
    batch = batches(1)[0]
    grads = {}
    for name, objective in (
        ("joint", Objective("rgb", distill=DistillSpec(alpha=2.0), detach_classifier=True)),
        ("mse", Objective("rgb", ce=False, distill=DistillSpec(alpha=2.0))),
    ):
        model.zero_grad()
        logits, features = Student(model, objective)(batch["rgb"])
        StreamLoss(objective, teacher)(logits, features, batch)["loss"].backward()
        grads[name] = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    assert all(
        torch.allclose(grads["joint"][k], grads["mse"][k])
        for k in grads["mse"]
        if not k.startswith("fc")
    )
    assert "fc.weight" in grads["joint"] and "fc.weight" not in grads["mse"]


def test_gradient_accumulation_equals_one_big_batch():
    """Only the classifier trains (frozen BN in eval mode): 2 x 2 clips == 1 x 4 clips."""
    weights = []
    for accum, data in ((1, batches(1, 4)), (2, batches(2, 2))):
        config = tiny_config("rgb", "model.ft_begin_index=5", f"train.grad_accum={accum}")
        engine, model, _ = engine_for(config)
        assert train_one_epoch(engine, data, epoch=0)[1] == 1  # one optimizer step
        weights.append(model.fc.weight.detach().clone())
    torch.testing.assert_close(weights[0], weights[1])
    engine, _, _ = engine_for(tiny_config("rgb", "train.grad_accum=2"))
    assert train_one_epoch(engine, batches(3, 2), epoch=0)[1] == 2  # the last step is partial


def test_channels_last_and_bf16_autocast_train_on_the_cpu(teacher_path):
    config = tiny_config("mars", "model.channels_last=true", "train.amp=bf16", teacher=teacher_path)
    teacher = load_teacher(teacher_path, build_model("resnet10_tiny"), DistillSpec())
    teacher = teacher.to(memory_format=torch.channels_last_3d)
    model = build_model("resnet10_tiny", num_classes=3).to(memory_format=torch.channels_last_3d)
    engine, _, _ = engine_for(config, model=model, teacher=teacher)
    assert engine.amp_dtype == torch.bfloat16 and not engine.scaler.is_enabled()
    metrics, steps = train_one_epoch(engine, batches(), epoch=0)
    assert steps == 2 and torch.isfinite(torch.tensor(metrics["loss"]))
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last_3d)


def test_bf16_skips_a_step_with_non_finite_gradients(capsys):
    engine, model, _ = engine_for(tiny_config("rgb", "train.amp=bf16"))
    before = copy.deepcopy(model.state_dict())
    for param in model.parameters():
        param.grad = torch.ones_like(param)
    model.conv1.weight.grad[0, 0, 0, 0, 0] = float("nan")  # what oneDNN's bf16 backward gives
    engine_module.optimizer_step(engine)
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())  # skipped
    assert "skipped an optimizer step" in capsys.readouterr().err
    for param in model.parameters():
        param.grad = torch.ones_like(param)
    engine_module.optimizer_step(engine)
    assert not torch.equal(before["conv1.weight"], model.conv1.weight)  # finite: stepped


@pytest.mark.parametrize("frozen_bn, stats_move", [("freeze", False), ("update", True)])
def test_ft_begin_index_really_freezes(frozen_bn, stats_move):
    config = tiny_config("rgb", "model.ft_begin_index=4", f"model.frozen_bn={frozen_bn}")
    engine, model, frozen = engine_for(config)
    assert frozen == ["conv1", "bn1", "layer1", "layer2", "layer3"]
    before = copy.deepcopy(model.state_dict())
    train_one_epoch(engine, batches(), epoch=0)
    trained = {id(p) for g in engine.optimizer.param_groups for p in g["params"]}
    for name, param in model.named_parameters():
        is_trained = name.startswith(("layer4", "fc"))
        assert (id(param) in trained) == is_trained == param.requires_grad, name
        assert (param in engine.optimizer.state) == is_trained, name  # no momentum for frozen
        assert torch.equal(before[name], param) != is_trained, name
    moved = not torch.equal(before["layer1.0.bn1.running_mean"], model.layer1[0].bn1.running_mean)
    assert moved == stats_move


def test_epoch_sampler_shares_resumes_and_reshuffles():
    shares = [list(EpochSampler(10, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in shares] == [4, 4, 4]  # padded to equal length
    assert {i for s in shares for _, i in s} == set(range(10))
    sampler = EpochSampler(10, seed=3)
    sampler.set_epoch(1)
    whole = list(sampler)
    sampler.set_epoch(1, start=4)
    assert list(sampler) == whole[4:] and len(sampler) == 6
    sampler.set_epoch(2)
    assert list(sampler) != whole and sorted(i for _, i in sampler) == list(range(10))


def test_seeded_samples_depend_only_on_epoch_and_index():
    data = SeededSamples(ClipSet(6), seed=0)
    first = data[(1, 4)]["rgb"]
    data[(0, 2)]
    torch.rand(5)
    assert torch.equal(data[(1, 4)]["rgb"], first)
    assert not torch.equal(data[(2, 4)]["rgb"], first)
