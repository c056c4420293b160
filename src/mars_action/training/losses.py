"""What each stream optimises: cross-entropy, the teacher terms, the MERS phases.

- ``rgb`` / ``flow``: cross-entropy on the stream's own input.
- ``mars``: CE + the teacher terms of ``distill.*`` through the whole network; by
  default alpha * MSE(student feature, teacher feature) (paper eq. 2). The terms
  themselves live in :mod:`mars_action.training.distill`.
- ``mers`` ``sequential`` (the paper, section 3.1): phase ``mimic`` trains all but
  the classifier with the teacher terms only; phase ``classify`` trains only the
  classifier with CE on the frozen, mimicked features.
- ``mers`` ``joint`` (the released code): every step, the teacher terms reach all
  layers and CE reaches only the classifier. The released code ran a second
  forward for the CE; here the classifier reads the detached pooled feature of
  the same forward, which gives the same gradients without the second pass (and
  without a second BatchNorm statistics update).
- ``pretrain`` (``mars pretrain``): the teacher terms alone on any videos, labelled or
  not; the backbone trains, the classifier is never used. The result is a starting
  point for ``model.pretrained`` (motion pretraining without Kinetics weights). With
  ``distill.flow_regression`` (and the teacher terms at 0) it needs no teacher: the
  student's maps regress the clip's own flow (``flow_regression.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from mars_action.training.distill import Distiller, DistillSpec, add_term, apply_adapters
from mars_action.training.flow_regression import FLOW_OUTPUT, flow_regression_loss

UNLABELED = -1  # the label of a clip without one (distill.unlabeled): CE skips it


@dataclass(frozen=True)
class Objective:
    """The loss of one training phase.

    Attributes:
        input: the batch key the student reads, ``rgb`` or ``flow``.
        ce: whether cross-entropy is in the loss (else it is only logged).
        distill: the teacher terms (none by default).
        detach_classifier: CE reaches only the classifier (MERS ``joint``).
    """

    input: str
    ce: bool = True
    distill: DistillSpec = field(default_factory=DistillSpec)
    detach_classifier: bool = False

    @property
    def uses_teacher(self) -> bool:
        """Whether a Flow teacher must be loaded (flow regression alone needs none)."""
        return self.distill.uses_teacher

    @property
    def uses_flow(self) -> bool:
        """Whether a step reads the flow clips (teacher terms or flow regression)."""
        return self.distill.uses_flow


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


def distill_spec(distill) -> DistillSpec:
    """The teacher terms of a ``DistillConfig`` (``hint`` is a ``hints`` entry of weight 1)."""
    hints = dict(distill.hints)
    if distill.hint:
        hints.setdefault(distill.hint, 1.0)
    return DistillSpec(
        alpha=distill.alpha, feature=distill.feature, pool_maps=distill.pool_maps,
        normalize=distill.normalize, hints=_weights(hints), kd=distill.kd,
        temperature=distill.temperature, attention=_weights(distill.attention),
        flow_regression=distill.flow_regression, flow_layer=distill.flow_layer,
    )


def _weights(weights: dict) -> tuple[tuple[str, float], ...]:
    return tuple((layer, float(w)) for layer, w in weights.items() if w)


def plan_phases(config) -> list[Phase]:
    """The phases of an ``ExperimentConfig`` (resolved): one, or two for sequential MERS."""
    epochs, lr = config.schedule.epochs, config.optim.lr
    if config.stream in ("rgb", "flow"):
        return [Phase("train", 0, epochs, Objective(config.stream), "all", lr)]
    spec = distill_spec(config.distill)
    if config.stream == "mars":
        return [Phase("train", 0, epochs, Objective("rgb", distill=spec), "all", lr)]
    if config.stream == "pretrain":  # motion pretraining: the teacher terms alone, no labels
        mimic = Objective("rgb", ce=False, distill=spec)
        return [Phase("pretrain", 0, epochs, mimic, "backbone", lr)]
    if config.mers.variant == "joint":
        joint = Objective("rgb", distill=replace(spec, feature="pooled"), detach_classifier=True)
        return [Phase("train", 0, epochs, joint, "all", lr)]
    split = epochs - config.mers.classifier_epochs
    mimic = Objective("rgb", ce=False, distill=spec)
    classify = Objective("rgb")
    classifier_lr = config.mers.classifier_lr or lr
    return [
        Phase("mimic", 0, split, mimic, "backbone", lr),
        Phase("classify", split, epochs, classify, "classifier", classifier_lr),
    ]


class Student(nn.Module):
    """The trained network as DDP sees it: ``forward`` returns (logits, named outputs).

    DDP only synchronises through ``forward``, so the outputs the teacher terms
    compare must come out of it rather than from a side call. ``adapters`` (an
    ``nn.ModuleDict`` keyed by output name, or None) map outputs before they are
    compared; they train with the student and are not part of ``model``. With flow
    regression the ``flow_layer`` maps are the output ``flow``, and its adapter is the
    flow head (``flow_regression.FlowHead``) that turns them into flow.
    """

    def __init__(self, model: nn.Module, objective: Objective,
                 adapters: nn.ModuleDict | None = None):
        super().__init__()
        self.model = model
        self.objective = objective
        self.adapters = adapters

    def forward(
        self, clips: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """(B, C, T, H, W) clips -> (B, K) logits and the outputs the loss compares
        (through their adapters; None when no term reads them). With a detached
        classifier (MERS's second step) the logits are the classifier on the pooled
        feature without its gradient, so that CE trains only the classifier."""
        spec, detach = self.objective.distill, self.objective.detach_classifier
        names = spec.outputs if spec.uses_teacher else ()
        regress = (spec.flow_layer,) if spec.flow_regression else ()
        logits, outputs = self.model.forward_with_features(
            clips, tuple(dict.fromkeys((*names, *regress, "pooled")))
        )
        if detach:
            logits = self.model.get_classifier()(outputs["pooled"].detach())  # (B, K)
            outputs["logits"] = logits
        if not spec.uses_flow:
            return logits, None
        compared = {n: outputs[n] for n in names}
        if regress:
            compared[FLOW_OUTPUT] = outputs[spec.flow_layer]
        return logits, apply_adapters(compared, self.adapters)


class StreamLoss(nn.Module):
    """The loss of an objective, as a dict of named parts: ``loss``, ``ce``, the
    teacher's (``mse``, ``alpha_mse``, ``kd``, ``at``; see ``Distiller``) and ``epe``
    (the flow regression's end-point error, unweighted).

    ``loss`` is what is backpropagated; the other parts are detached, for logging.
    """

    def __init__(self, objective: Objective, teacher: nn.Module | None = None,
                 stats: dict | None = None):
        super().__init__()
        if objective.uses_teacher and teacher is None:
            raise ValueError("an objective with teacher terms needs a teacher")
        self.objective = objective
        self.distiller = (Distiller(objective.distill, teacher, stats)
                          if objective.uses_teacher else None)

    def forward(
        self, logits: torch.Tensor, outputs: dict[str, torch.Tensor] | None, batch: dict
    ) -> dict[str, torch.Tensor]:
        """The parts of one batch; CE in fp32 under autocast, and unlabelled clips
        (label -1) left out of CE, since they only feed the teacher terms."""
        ce = F.cross_entropy(logits.float(), batch["label"], ignore_index=UNLABELED)
        parts = {"ce": ce.detach()}
        loss = ce if self.objective.ce else None
        if self.distiller is not None:
            parts.update(self.distiller(outputs, batch["flow"]))
            weighted = parts.pop("distill")
            loss = add_term(loss, weighted)
        weight = self.objective.distill.flow_regression
        if weight:
            epe = flow_regression_loss(outputs[FLOW_OUTPUT], batch["flow"])
            parts["epe"] = epe.detach()
            loss = add_term(loss, weight * epe)
        parts["loss"] = loss
        return parts
