"""From a resolved config to the objects a run needs: model, teacher, meta, phase engine."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mars_action.config import to_dict
from mars_action.errors import MarsError
from mars_action.models import CheckpointMeta, build_model, load_checkpoint
from mars_action.models.registry import canonical_name
from mars_action.training.config import ExperimentConfig
from mars_action.training.distill import (
    cached_statistics,
    load_teacher,
    statistics_path,
    teacher_statistics,
)
from mars_action.training.distributed import Process
from mars_action.training.engine import Engine, amp_dtype, make_scaler
from mars_action.training.flow_regression import FLOW_OUTPUT, build_flow_head
from mars_action.training.losses import (
    Objective,
    Phase,
    StreamLoss,
    Student,
    distill_spec,
)
from mars_action.training.optim import (
    build_optimizer,
    build_scheduler,
    freeze_except,
    trainable_children,
)


def in_channels(stream: str) -> int:
    """The student's input channels: 2 for the Flow stream, 3 for RGB, MERS and MARS."""
    return 2 if stream == "flow" else 3


def build_student(config: ExperimentConfig, num_classes: int) -> nn.Module:
    """A fresh model, or a pretrained one with a new classifier when the class count differs."""
    channels = in_channels(config.stream)
    path = config.model.pretrained
    if path is None:
        return build_model(config.model.arch, in_channels=channels, num_classes=num_classes)
    modality = "flow" if channels == 2 else "rgb"
    model, meta = load_checkpoint(path, arch=config.model.arch, expect_modality=modality)
    if canonical_name(meta.arch) != canonical_name(config.model.arch):
        raise MarsError(f"{path}: a {meta.arch} checkpoint, but model.arch is {config.model.arch}")
    if meta.num_classes != num_classes:
        model.reset_classifier(num_classes)
    return model


def prepare(model: nn.Module, config: ExperimentConfig, process: Process) -> nn.Module:
    """SyncBatchNorm across processes, memory layout, device."""
    if config.model.sync_bn and process.distributed:
        if process.device.type != "cuda":
            raise MarsError("model.sync_bn: SyncBatchNorm needs CUDA (one GPU per process)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if config.model.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model.to(process.device)


def build_teacher(config: ExperimentConfig, student: nn.Module, process: Process) -> nn.Module:
    """The frozen Flow teacher on the run's device, checked against the student and the
    flow scaling; channels_last like the student when asked (it runs on every batch too)."""
    teacher = load_teacher(config.distill.teacher, student, distill_spec(config.distill),
                           process.device, scaled_vectors=config.data.scale_flow_vectors)
    if config.model.channels_last:
        teacher = teacher.to(memory_format=torch.channels_last_3d)
    return teacher


def classifier_from_teacher(model: nn.Module, teacher: nn.Module, teacher_path: str) -> None:
    """MERS ``mers.classifier_init: teacher``: the student's classifier becomes a copy of
    the Flow teacher's.

    MERS learns to reproduce the teacher's pooled feature, so the teacher's classifier is
    the one that reads it: the mimic phase keeps it frozen (a ``distill.kd`` term then
    reaches the backbone through it) and the classify phase fine-tunes it from there,
    instead of fitting a random one in a few labelled epochs. ``teacher`` is the one the
    run already built (:func:`build_teacher`), so its checkpoint is read once.
    """
    mine, theirs = model.get_classifier(), teacher.get_classifier()
    shapes = [tuple(getattr(m, "weight", torch.empty(0)).shape) for m in (mine, theirs)]
    if not isinstance(theirs, nn.Linear) or shapes[0] != shapes[1]:
        raise MarsError(f"{teacher_path}: mers.classifier_init teacher needs the teacher's "
                        f"classifier to have the student's shape (classes x features) "
                        f"{shapes[0]}, it has {shapes[1]}")
    with torch.no_grad():
        mine.weight.copy_(theirs.weight)
        mine.bias.copy_(theirs.bias)


def teacher_stats(config: ExperimentConfig, phases: list[Phase], teacher: nn.Module,
                  loader, process: Process) -> dict | None:
    """The teacher's per-dimension statistics on the training clips, when ``normalize:
    standardize`` needs them: computed once, cached beside the teacher for every student
    of the same training set (the cache key holds the data settings)."""
    keys = tuple(dict.fromkeys(k for p in phases for k in p.objective.distill.standardized))
    if not keys:
        return None
    data = config.data
    fields = ("format", "root", "annotations", "frame_root", "flow_root", "fold", "val_fraction",
              "seed", "clip_len", "crop_size", "flow_scale", "scale_flow_vectors")
    data_key = {k: getattr(data, k) for k in fields}
    if process.distributed:
        raise MarsError("distill.normalize standardize: compute the statistics on one process "
                        "first (a single-process run writes the cache beside the teacher)")

    def flows():
        for batch in loader:
            yield batch["flow"].to(process.device)

    path = statistics_path(config.distill.teacher, keys, data_key)
    return cached_statistics(path, lambda: teacher_statistics(teacher, flows(), keys))


def make_meta(config: ExperimentConfig, class_names: list[str]) -> CheckpointMeta:
    """What the trained model needs at use time; the full resolved config as provenance."""
    provenance = {
        "config": to_dict(config),
        "teacher": config.distill.teacher,
        "pretrained": config.model.pretrained,
    }
    return CheckpointMeta(
        arch=canonical_name(config.model.arch),
        in_channels=in_channels(config.stream),
        num_classes=len(class_names),
        stream=config.stream,
        class_names=list(class_names),
        clip_len=config.data.clip_len,
        crop_size=config.data.crop_size,
        fps=config.data.fps,
        short_side=config.data.short_side,
        std=[1.0 / config.data.flow_scale] * 2 if config.stream == "flow" else [],
        flow_vectors_scaled=config.data.scale_flow_vectors,
        provenance=provenance,
    )


def build_engine(
    phase: Phase,
    model: nn.Module,
    teacher: nn.Module | None,
    config: ExperimentConfig,
    process: Process,
    *,
    stats: dict | None = None,
    adapters: nn.ModuleDict | None = None,
) -> tuple[Engine, object, list[str]]:
    """The engine and scheduler of one phase, and the model's frozen children.

    Freezing happens before the DDP wrap: DDP registers gradient hooks for the
    parameters that require gradients when it is built, so each phase wraps anew.
    ``stats``: the teacher statistics of ``normalize: standardize``; ``adapters``:
    modules applied to the student's compared outputs (``distill.apply_adapters``),
    trained in a second parameter group with the same settings, never saved in the model.
    """
    trainable = trainable_children(config.model.ft_begin_index, phase.trainable)
    frozen = freeze_except(model, trainable)
    optim = config.optim
    optimizer = build_optimizer(
        model, phase.lr, optim.momentum, optim.dampening, optim.weight_decay, optim.nesterov
    )
    if adapters is not None and phase.objective.uses_flow:
        optimizer.add_param_group({"params": list(adapters.parameters())})
    scheduler = build_scheduler(optimizer, config.schedule, phase.end_epoch - phase.first_epoch)
    student = Student(model, phase.objective, adapters)
    if process.distributed:
        device_ids = [process.device] if process.device.type == "cuda" else None
        student = DistributedDataParallel(student, device_ids=device_ids)
    dtype = amp_dtype(config.train.amp, process.device)
    engine = Engine(
        student=student,
        loss=StreamLoss(phase.objective, teacher if phase.objective.uses_teacher else None,
                        stats),
        optimizer=optimizer,
        scaler=make_scaler(dtype, process.device),
        process=process,
        amp_dtype=dtype,
        channels_last=config.model.channels_last,
        grad_accum=config.train.grad_accum,
    )
    return engine, scheduler, frozen


def needs_teacher(phases: list[Phase]) -> bool:
    """Whether any phase has a teacher term: a run without one never reads the teacher."""
    return any(p.objective.uses_teacher for p in phases)


def add_flow_head(adapters: nn.ModuleDict | None, phases: list[Phase], model: nn.Module,
                  config: ExperimentConfig, device: torch.device) -> nn.ModuleDict | None:
    """The adapters, plus the flow head (adapter of the output ``flow``) when a phase
    regresses the clip's flow: it trains, is saved and resumed with them, never in the
    model."""
    layers = {p.objective.distill.flow_layer for p in phases if p.objective.distill.flow_regression}
    if not layers:
        return adapters
    (layer,) = layers  # one config, one flow_layer
    adapters = adapters if adapters is not None else nn.ModuleDict()
    adapters[FLOW_OUTPUT] = build_flow_head(model, layer, config.data.clip_len,
                                            config.data.crop_size, device)
    return adapters


def modalities(objectives: list[Objective]) -> tuple[str, ...]:
    """The clips the data must provide: each input, plus flow when a teacher or the flow
    regression reads it."""
    keys = {o.input for o in objectives} | {"flow" for o in objectives if o.uses_flow}
    return tuple(m for m in ("rgb", "flow") if m in keys)
