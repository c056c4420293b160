"""What each stream optimises: cross-entropy, the MARS/MERS feature loss, the MERS phases.

- ``rgb`` / ``flow``: cross-entropy on the stream's own input.
- ``mars``: CE + alpha * MSE(student feature, teacher feature) through the whole
  network (paper eq. 2). The MSE is a mean over batch and feature dims, as the
  released code's ``nn.MSELoss``; alpha 50 balances it with CE (Fig. 4c).
- ``mers`` ``sequential`` (the paper, section 3.1): phase ``mimic`` trains all but
  the classifier with alpha * MSE; phase ``classify`` trains only the classifier
  with CE on the frozen, mimicked features.
- ``mers`` ``joint`` (the released code): every step, alpha * MSE reaches all
  layers and CE reaches only the classifier. The released code ran a second
  forward for the CE; here the classifier reads the detached pooled feature of
  the same forward, which gives the same gradients without the second pass (and
  without a second BatchNorm statistics update).

An optional *hint* (FitNets' name, Romero et al. 2015) adds alpha * MSE between the
whole ``layer3``/``layer4`` maps of student and teacher to the feature MSE. The pooled
feature alone gives a small network trained from scratch so little signal that it
collapses onto the teacher's mean feature; the maps tell it where the motion is.

The teacher is a trained Flow network, frozen: eval mode, no gradients, and its
forward runs under ``torch.no_grad()`` so no graph is kept (the released code
kept one, wasting memory).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mars_action.errors import MarsError
from mars_action.models import load_checkpoint


@dataclass(frozen=True)
class Objective:
    """The loss of one training phase.

    Attributes:
        input: the batch key the student reads, ``rgb`` or ``flow``.
        ce: whether cross-entropy is in the loss (else it is only logged).
        alpha: weight of the feature MSE against the teacher; 0 means no teacher.
        feature: which output is compared (``pooled``, ``layer4``, ``layer3``, ``logits``).
        pool_maps: compare ``layer3``/``layer4`` maps as pooled vectors.
        hint: ``layer3`` or ``layer4``, whose whole maps are compared too (None: none).
        detach_classifier: CE reaches only the classifier (MERS ``joint``).
    """

    input: str
    ce: bool = True
    alpha: float = 0.0
    feature: str = "pooled"
    pool_maps: bool = True
    hint: str | None = None
    detach_classifier: bool = False

    @property
    def compared(self) -> tuple[tuple[str, bool], ...]:
        """(output name, pooled?) of every output compared with the teacher."""
        hint = ((self.hint, False),) if self.hint else ()
        return ((self.feature, self.pool_maps), *hint)


@dataclass(frozen=True)
class Phase:
    """Epochs ``[first_epoch, end_epoch)`` trained with one objective and one trainable part.

    ``trainable``: ``all`` (what ``ft_begin_index`` allows, plus the classifier),
    ``backbone`` (the same without the classifier) or ``classifier``.
    """

    name: str
    first_epoch: int
    end_epoch: int
    objective: Objective
    trainable: str
    lr: float


def plan_phases(config) -> list[Phase]:
    """The phases of an ``ExperimentConfig`` (resolved): one, or two for sequential MERS."""
    epochs, lr = config.schedule.epochs, config.optim.lr
    distill = config.distill
    if config.stream in ("rgb", "flow"):
        return [Phase("train", 0, epochs, Objective(config.stream), "all", lr)]
    mse = Objective(
        "rgb", alpha=distill.alpha, feature=distill.feature, pool_maps=distill.pool_maps,
        hint=distill.hint,
    )
    if config.stream == "mars":
        return [Phase("train", 0, epochs, mse, "all", lr)]
    if config.mers.variant == "joint":
        joint = Objective("rgb", alpha=distill.alpha, feature="pooled", hint=distill.hint,
                          detach_classifier=True)
        return [Phase("train", 0, epochs, joint, "all", lr)]
    split = epochs - config.mers.classifier_epochs
    mimic = Objective("rgb", ce=False, alpha=distill.alpha, feature=distill.feature,
                      hint=distill.hint)
    classify = Objective("rgb")
    classifier_lr = config.mers.classifier_lr or lr
    return [
        Phase("mimic", 0, split, mimic, "backbone", lr),
        Phase("classify", split, epochs, classify, "classifier", classifier_lr),
    ]


class Student(nn.Module):
    """The trained network as DDP sees it: ``forward`` returns (logits, distilled outputs).

    DDP only synchronises through ``forward``, so the feature the loss needs must
    come out of it rather than from a side call to ``forward_with_features``.
    """

    def __init__(self, model: nn.Module, objective: Objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(
        self, clips: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        stages = self.model.forward_stages(clips)  # layer3, layer4 maps
        pooled = self.model.forward_head(stages["layer4"], pre_logits=True)  # (B, F)
        head_input = pooled.detach() if self.objective.detach_classifier else pooled
        logits = self.model.fc(head_input)  # (B, K)
        if not self.objective.alpha:
            return logits, None
        outputs = {**stages, "pooled": pooled, "logits": logits}
        compared = self.objective.compared
        return logits, tuple(_as_target(outputs[name], pool) for name, pool in compared)


class StreamLoss(nn.Module):
    """The loss of an objective, as a dict of named parts: ``loss``, ``ce``, ``mse``, ``alpha_mse``.

    ``loss`` is what is backpropagated; the other parts are detached, for logging.
    """

    def __init__(self, objective: Objective, teacher: nn.Module | None = None):
        super().__init__()
        if objective.alpha and teacher is None:
            raise ValueError("an objective with alpha > 0 needs a teacher")
        self.objective = objective
        self.teacher = freeze(teacher) if objective.alpha else None

    def train(self, mode: bool = True) -> StreamLoss:
        """Whatever mode the loop sets, the teacher stays in eval mode (fixed BN statistics)."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(
        self, logits: torch.Tensor, features: tuple[torch.Tensor, ...] | None, batch: dict
    ) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(logits.float(), batch["label"])
        parts = {"ce": ce.detach()}
        loss = ce if self.objective.ce else None
        if self.teacher is not None:
            targets = self.teacher_features(batch["flow"])  # (B, F) vectors or maps
            mse = sum(  # each a mean over batch x features, as nn.MSELoss
                F.mse_loss(mine.float(), target.float())
                for mine, target in zip(features, targets, strict=True)
            )
            weighted = self.objective.alpha * mse
            parts.update(mse=mse.detach(), alpha_mse=weighted.detach())
            loss = weighted if loss is None else loss + weighted
        parts["loss"] = loss
        return parts

    @torch.no_grad()
    def teacher_features(self, flow: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The frozen Flow network's outputs for the flow clip of the same samples."""
        compared = self.objective.compared
        _, outputs = self.teacher.forward_with_features(flow, tuple(n for n, _ in compared))
        return tuple(_as_target(outputs[name], pool) for name, pool in compared)


def _as_target(value: torch.Tensor, pool_maps: bool) -> torch.Tensor:
    """A (B, C, t, h, w) map as the (B, C) vector of its means, when asked to pool."""
    if value.dim() == 5 and pool_maps:
        return F.adaptive_avg_pool3d(value, 1).flatten(1)
    return value


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients: a module that only ever supplies targets."""
    model.eval()
    model.requires_grad_(False)
    return model


def load_teacher(
    path: str,
    student: nn.Module,
    feature: str,
    device: torch.device | str = "cpu",
    scaled_vectors: bool | None = None,
) -> nn.Module:
    """A Flow checkpoint as a frozen teacher whose ``feature`` has the student's shape.

    ``scaled_vectors``: whether the flow clips it will see have their vectors scaled on
    resize (``data.scale_flow_vectors``); refused when the teacher learned otherwise.
    """
    teacher, meta = load_checkpoint(path, expect_modality="flow", device=device)
    if scaled_vectors is not None and scaled_vectors != meta.flow_vectors_scaled:
        raise MarsError(
            f"{path}: the teacher was trained with flow vectors "
            f"{'scaled' if meta.flow_vectors_scaled else 'unscaled'} on resize; set "
            f"data.scale_flow_vectors={str(meta.flow_vectors_scaled).lower()} to feed it the same"
        )
    if feature == "logits" and meta.num_classes != student.num_classes:
        raise MarsError(
            f"{path}: the teacher has {meta.num_classes} classes, the student "
            f"{student.num_classes}; logits can only be distilled between equal class sets"
        )
    if teacher.num_features != student.num_features:
        raise MarsError(
            f"{path}: teacher {meta.arch} has {teacher.num_features} features, the student "
            f"{student.num_features}; distillation needs the same architecture width"
        )
    return freeze(teacher)
