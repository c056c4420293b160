"""What trains (fine-tuning, MERS phases), the SGD optimizer and the learning-rate schedule.

Frozen layers are really frozen: ``requires_grad`` off and absent from the
optimizer, so they carry no gradient and no momentum buffer. (The released code
kept them in the optimizer with lr 0.) Their BatchNorm statistics either stay
fixed (``frozen_bn: freeze``, the layers in eval mode) or keep updating in train
mode as in the released code (``frozen_bn: update``).
"""

from __future__ import annotations

import torch
from torch import nn

from mars_action.errors import MarsError

# Top-level children of ResNet3d, in forward order; those without parameters
# (relu, maxpool, avgpool) never matter here. The other families (``models/backbone.py``)
# name their stem ``stem``; X3D's last conv (``conv5``) and its projection of the pooled
# feature (``head``) train with the last stage.
STEM = ("conv1", "bn1", "stem")
LAYERS = ("layer1", "layer2", "layer3", "layer4")
NECK = ("conv5", "head")
CLASSIFIER = "fc"


def trainable_children(ft_begin_index: int, part: str) -> tuple[str, ...]:
    """Names of the top-level children that train.

    Args:
        ft_begin_index: 0 trains everything; k in 1..4 trains ``layer{k..4}``; 5 none
            of the backbone. The released code's option of the same name.
        part: ``all`` (backbone share + classifier), ``backbone`` or ``classifier``.
    """
    if part == "classifier":
        return (CLASSIFIER,)
    backbone = STEM + LAYERS if ft_begin_index == 0 else LAYERS[ft_begin_index - 1 :]
    backbone += NECK if backbone else ()
    if part == "backbone":
        if not backbone:
            raise MarsError("model.ft_begin_index 5 leaves no backbone layer to train")
        return backbone
    return backbone + (CLASSIFIER,)


def freeze_except(model: nn.Module, trainable: tuple[str, ...]) -> list[str]:
    """Turn gradients on for the ``trainable`` children only; return the frozen children."""
    frozen = []
    for name, child in model.named_children():
        child.requires_grad_(name in trainable)
        if name not in trainable and next(child.parameters(), None) is not None:
            frozen.append(name)
    return frozen


def set_train_mode(model: nn.Module, frozen: list[str], update_frozen_bn: bool) -> None:
    """Train mode, except frozen children stay in eval mode unless their BN stats update."""
    model.train()
    if not update_frozen_bn:
        for name in frozen:
            getattr(model, name).eval()


def build_optimizer(
    model: nn.Module,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool = False,
) -> torch.optim.SGD:
    """SGD over the parameters that require gradients, one param group."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise MarsError("nothing to train: every parameter is frozen")
    if nesterov and dampening:
        raise MarsError("optim.nesterov needs optim.dampening 0 (PyTorch's SGD rule)")
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, schedule, epochs: int):
    """The per-epoch learning-rate schedule of a phase of ``epochs`` epochs.

    ``plateau`` lowers lr by ``factor`` after ``patience`` epochs without a lower
    validation loss; ``step`` at the ``milestones`` (epochs counted from the phase
    start); ``cosine`` anneals to ``min_lr``; ``constant`` keeps it.
    """
    kind = schedule.scheduler
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=schedule.factor,
            patience=schedule.patience,
            min_lr=schedule.min_lr,
        )
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=epochs, eta_min=schedule.min_lr
        )
    milestones = list(schedule.milestones) if kind == "step" else []
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=schedule.factor)


def step_scheduler(scheduler, val_loss: float | None) -> None:
    """Advance one epoch; the plateau rule only moves on epochs with a validation loss."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if val_loss is not None:
            scheduler.step(val_loss)
        return
    scheduler.step()


def learning_rates(optimizer: torch.optim.Optimizer) -> list[float]:
    """The current rate of each param group (the adapters train in a second one), as
    the epoch's record logs them."""
    return [float(group["lr"]) for group in optimizer.param_groups]
