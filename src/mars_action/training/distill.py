"""Everything a student learns from the frozen Flow teacher, in one place.

Each term is a small pure function of tensors (tested with exact values); a
:class:`Distiller` adds the terms a :class:`DistillSpec` asks for and returns them as
named loss parts (timm style). The teacher only ever supplies targets: eval mode, no
gradients, its forward under ``torch.no_grad()``.

Terms (weights in brackets are the ``distill.*`` keys):

- ``alpha`` x MSE of the distilled ``feature`` (the paper's eq. 2 on the pooled
  feature), plus the per-layer weighted MSE of whole ``hints`` maps (FitNets);
  optionally after ``normalize`` (per-dimension standardisation with the teacher's
  training-set statistics, or L2 normalisation of each sample);
- ``kd`` x T^2 x KL of temperature-softened logits (Hinton et al. 2015);
- ``attention``: per-layer weighted attention transfer (Zagoruyko & Komodakis 2017)
  on spatio-temporal maps.

One term needs no teacher: ``flow_regression`` x the end-point error of the student's
``flow_layer`` maps, through a learned head, against the clip's own flow
(:mod:`mars_action.training.flow_regression`; the ``Distiller`` leaves it to
``StreamLoss``).

Adapters (the hook for cross-architecture students): ``Student`` passes each named
student output through ``adapters[name]`` (an ``nn.ModuleDict``) before it is
compared. They train with the student (``build_engine`` adds their parameters to the
optimizer) and are never part of the saved model. See :func:`apply_adapters`.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mars_action.errors import MarsError
from mars_action.files import write_atomic
from mars_action.models import load_checkpoint

NORMALIZERS = ("none", "standardize", "l2")
STD_FLOOR = 0.25  # of the mean std: the smallest std a standardised channel is divided by
MAP_LAYERS = ("layer1", "layer2", "layer3", "layer4")


# --- the terms ---------------------------------------------------------------


def feature_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element: the paper's eq. 2 (MARS, Crasto et al. 2019).

    A mean over batch and feature dims, as the released code's ``nn.MSELoss``.
    """
    return F.mse_loss(student.float(), teacher.float())


def standardize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` per channel (dim 1) of a vector batch or a map batch.

    Raw post-ReLU features are dominated by a few high-variance dimensions; with the
    teacher's statistics every dimension weighs the same in the MSE.
    """
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return (x - mean.view(shape)) / std.view(shape)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Each sample flattened to a unit vector: the MSE of two becomes ``(2 - 2 cos) / D``,
    a scaled cosine distance that ignores the feature's magnitude."""
    return F.normalize(x.flatten(1).float(), dim=1)


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
          temperature: float) -> torch.Tensor:
    """Hinton et al. 2015: ``T^2 KL(softmax(t / T) || softmax(s / T))``, mean over the batch.

    The ``T^2`` keeps the gradient's scale independent of the temperature.
    """
    t = temperature
    log_student = F.log_softmax(student_logits.float() / t, dim=1)
    log_teacher = F.log_softmax(teacher_logits.float() / t, dim=1)
    return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True) * t * t


def attention_map(maps: torch.Tensor) -> torch.Tensor:
    """Zagoruyko & Komodakis 2017: the channel mean of squared activations, per position
    (here over time and space), flattened and L2-normalised: where the network looks."""
    return F.normalize(maps.float().pow(2).mean(1).flatten(1), dim=1)


def attention_transfer(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the two attention maps (the authors' ``at_loss``).

    Needs maps of the same time x height x width (channels may differ).
    """
    return (attention_map(student) - attention_map(teacher)).pow(2).mean()


def pool(value: torch.Tensor) -> torch.Tensor:
    """A (B, C, t, h, w) map as the (B, C) vector of its means (vectors pass through)."""
    return F.adaptive_avg_pool3d(value, 1).flatten(1) if value.dim() == 5 else value


# --- what is compared --------------------------------------------------------


@dataclass(frozen=True)
class DistillSpec:
    """The teacher terms of one objective (see the module docstring).

    Attributes:
        alpha: weight of the feature MSE (main feature + hints); 0: none.
        feature: output compared by the MSE (``pooled``, ``layer1``..``layer4``, ``logits``).
        pool_maps: compare ``layerN`` maps as pooled vectors.
        normalize: ``none`` (the paper), ``standardize`` (teacher statistics) or ``l2``.
        hints: ``(layer, weight)`` whole maps whose MSE is added inside ``alpha``.
        kd: weight of the logit KL; 0: none.
        temperature: of the KL.
        attention: ``(layer, weight)`` attention-transfer terms.
        flow_regression: weight of the teacher-free flow regression; 0: none.
        flow_layer: the student maps that regress the flow.
    """

    alpha: float = 0.0
    feature: str = "pooled"
    pool_maps: bool = True
    normalize: str = "none"
    hints: tuple[tuple[str, float], ...] = ()
    kd: float = 0.0
    temperature: float = 4.0
    attention: tuple[tuple[str, float], ...] = ()
    flow_regression: float = 0.0
    flow_layer: str = "layer3"

    @property
    def uses_teacher(self) -> bool:
        """A term compares with the teacher: it must be loaded and run on the flow."""
        return bool(self.alpha or self.kd or self.attention)

    @property
    def uses_flow(self) -> bool:
        """Whether a step reads the clip's flow: for the teacher, or as a target itself."""
        return self.uses_teacher or bool(self.flow_regression)

    @property
    def mse_targets(self) -> tuple[tuple[str, bool, float], ...]:
        """(output, pooled?, weight) of every MSE term."""
        if not self.alpha:
            return ()
        main = ((self.feature, self.pool_maps, 1.0),)
        return main + tuple((layer, False, weight) for layer, weight in self.hints)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The named outputs both networks must produce."""
        names = [name for name, _, _ in self.mse_targets]
        names += ["logits"] if self.kd else []
        names += [layer for layer, _ in self.attention]
        return tuple(dict.fromkeys(names))

    @property
    def standardized(self) -> tuple[str, ...]:
        """Keys (:func:`target_key`) whose teacher statistics ``standardize`` needs."""
        if self.normalize != "standardize":
            return ()
        return tuple(target_key(name, pooled) for name, pooled, _ in self.mse_targets)


def target_key(name: str, pooled: bool) -> str:
    """The name of a compared target: ``layer3`` (maps) or ``layer3.pooled``."""
    return f"{name}.pooled" if pooled and name in MAP_LAYERS else name


def as_target(value: torch.Tensor, pooled: bool) -> torch.Tensor:
    """An output as a term compares it, pooled or whole: the teacher's statistics and
    the loss must see the same tensor."""
    return pool(value) if pooled else value


def apply_adapters(outputs: dict[str, torch.Tensor],
                   adapters: nn.ModuleDict | None) -> dict[str, torch.Tensor]:
    """The student's named outputs, each through ``adapters[name]`` where there is one.

    The hook for a student whose outputs do not have the teacher's shape (another
    backbone family): a learned module maps them before any term compares them.
    """
    if adapters is None:
        return outputs
    return {name: adapters[name](value) if name in adapters else value
            for name, value in outputs.items()}


class Distiller(nn.Module):
    """The teacher terms of a :class:`DistillSpec` as named loss parts.

    Parts: ``mse`` (feature + weighted hints, unweighted by alpha), ``alpha_mse``,
    ``kd``, ``at`` (weighted sum), and ``distill`` (what is added to the loss).

    Args:
        spec: the terms.
        teacher: a frozen Flow network with ``forward_with_features(x, names)``.
        stats: ``{target_key: (mean, std)}`` for ``normalize: standardize``.
    """

    def __init__(self, spec: DistillSpec, teacher: nn.Module,
                 stats: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None):
        super().__init__()
        missing = [k for k in spec.standardized if k not in (stats or {})]
        if missing:
            raise ValueError(f"normalize: standardize needs teacher statistics of {missing}")
        self.spec = spec
        self.teacher = freeze(teacher)
        self.stats = stats or {}

    def train(self, mode: bool = True) -> Distiller:
        """Whatever mode the loop sets, the teacher stays in eval mode (fixed BN statistics)."""
        super().train(mode)
        self.teacher.eval()
        return self

    @torch.no_grad()
    def targets(self, flow: torch.Tensor) -> dict[str, torch.Tensor]:
        """The teacher's named outputs for the flow clips of the same samples."""
        _, outputs = self.teacher.forward_with_features(flow, self.spec.outputs)
        return outputs

    def forward(self, student: dict[str, torch.Tensor],
                flow: torch.Tensor) -> dict[str, torch.Tensor]:
        """The parts for the student's named outputs and the same samples' flow clips
        (the teacher runs here under ``no_grad``: no graph is kept for it, none reaches it)."""
        spec, teacher = self.spec, self.targets(flow)
        parts: dict[str, torch.Tensor] = {}
        total = None
        if spec.alpha:
            mse = sum(weight * feature_mse(*self._normalized(student, teacher, name, pooled))
                      for name, pooled, weight in spec.mse_targets)
            parts.update(mse=mse, alpha_mse=spec.alpha * mse)
            total = spec.alpha * mse
        if spec.kd:
            parts["kd"] = kd_kl(student["logits"], teacher["logits"], spec.temperature)
            total = add_term(total, spec.kd * parts["kd"])
        if spec.attention:
            parts["at"] = sum(weight * attention_transfer(student[layer], teacher[layer])
                              for layer, weight in spec.attention)
            total = add_term(total, parts["at"])
        parts = {k: v.detach() for k, v in parts.items()}
        parts["distill"] = total
        return parts

    def _normalized(self, student, teacher, name: str, pooled: bool):
        mine, target = as_target(student[name], pooled), as_target(teacher[name], pooled)
        if self.spec.normalize == "l2":
            return l2_normalize(mine), l2_normalize(target)
        if self.spec.normalize == "standardize":
            mean, std = self.stats[target_key(name, pooled)]
            return standardize(mine.float(), mean, std), standardize(target.float(), mean, std)
        return mine, target


def add_term(total: torch.Tensor | None, term: torch.Tensor) -> torch.Tensor:
    """A loss sum that starts at its first term (no zero tensor of a guessed device/dtype)."""
    return term if total is None else total + term


# --- teacher statistics, computed once and cached ----------------------------


def channel_moments(values: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over every sample and position of (B, C, ...) tensors.

    The std is floored at :data:`STD_FLOOR` times the mean std: a dead channel (always
    0 after ReLU; a fifth of a small teacher's pooled feature can be) carries nothing to
    learn, and dividing by its tiny std made the student's loss explode (1e11 in the
    first epoch at lr 0.1 with a 1% floor).
    """
    total = squares = None
    count = 0
    for value in values:
        flat = value.double().transpose(0, 1).flatten(1)  # (C, N)
        total = flat.sum(1) if total is None else total + flat.sum(1)
        squares = flat.pow(2).sum(1) if squares is None else squares + flat.pow(2).sum(1)
        count += flat.shape[1]
    if total is None:
        raise MarsError("teacher statistics: no training clip to compute them on")
    mean = total / count
    std = (squares / count - mean.pow(2)).clamp_min(0).sqrt()
    std = std.clamp_min(STD_FLOOR * float(std.mean()) + 1e-12)
    return mean.float(), std.float()


@torch.no_grad()
def teacher_statistics(teacher: nn.Module, flows: Iterable[torch.Tensor],
                       keys: tuple[str, ...]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Mean and std of each target ``key`` of the frozen teacher over ``flows`` clips.

    One pass over the training clips (the statistics must describe what the student
    is trained on); the teacher stays in eval mode.
    """
    teacher.eval()
    names = tuple(dict.fromkeys(k.split(".")[0] for k in keys))
    collected: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    for flow in flows:
        _, outputs = teacher.forward_with_features(flow, names)
        for key in keys:
            name = key.split(".")[0]
            collected[key].append(as_target(outputs[name], key.endswith(".pooled")).cpu())
    return {key: channel_moments(values) for key, values in collected.items()}


def statistics_path(teacher_path: str, keys: tuple[str, ...], data_key: dict) -> Path:
    """Where the statistics of a teacher on a training set are cached: beside the teacher,
    named by a hash of the teacher file's size and time, the keys and the data."""
    stat = Path(teacher_path).stat()
    ident = json.dumps([stat.st_size, stat.st_mtime_ns, keys, data_key, STD_FLOOR],
                       sort_keys=True)
    digest = hashlib.sha1(ident.encode()).hexdigest()[:12]
    return Path(f"{teacher_path}.stats-{digest}.pt")


def cached_statistics(path: Path, compute) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Read ``path`` or ``compute()`` and write it (atomically): computed once per teacher
    and training set, shared by every student (seed, objective) that needs them."""
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    stats = compute()
    buffer = io.BytesIO()
    torch.save(stats, buffer)
    write_atomic(path, buffer.getvalue())
    return stats


# --- the teacher ---------------------------------------------------------------


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients: a module that only ever supplies targets."""
    model.eval()
    model.requires_grad_(False)
    return model


def load_teacher(
    path: str,
    student: nn.Module,
    spec: DistillSpec,
    device: torch.device | str = "cpu",
    scaled_vectors: bool | None = None,
) -> nn.Module:
    """A Flow checkpoint as a frozen teacher whose compared outputs fit the student's.

    ``scaled_vectors``: whether the flow clips it will see have their vectors scaled on
    resize (``data.scale_flow_vectors``); refused when the teacher learned otherwise.
    Widths and map sizes may differ: the trainer then maps the student's outputs through
    learned adapters (``training/adapters.py``).
    """
    teacher, meta = load_checkpoint(path, expect_modality="flow", device=device)
    if scaled_vectors is not None and scaled_vectors != meta.flow_vectors_scaled:
        raise MarsError(
            f"{path}: the teacher was trained with flow vectors "
            f"{'scaled' if meta.flow_vectors_scaled else 'unscaled'} on resize; set "
            f"data.scale_flow_vectors={str(meta.flow_vectors_scaled).lower()} to feed it the same"
        )
    if "logits" in spec.outputs and meta.num_classes != student.num_classes:
        raise MarsError(
            f"{path}: the teacher has {meta.num_classes} classes, the student "
            f"{student.num_classes}; logits can only be distilled between equal class sets"
        )
    return freeze(teacher)
