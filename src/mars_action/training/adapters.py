"""Adapters: a student of one family learns from a teacher of another.

MARS compares the student's outputs with the Flow teacher's (MSE). Between families
they differ in width (X3D's ``layer3`` has 96 channels, resnet10_tiny's 64), in time
(X3D keeps every frame, a 3D ResNet halves time four times) and in size. A learned
adapter per compared output maps the student's to the teacher's shape: maps are
resized to the teacher's (t, h, w) (average pooling when smaller, trilinear when
larger), then a 1x1x1 convolution maps the channels; vectors go through a linear
layer. The 1x1x1 conv and the resize are both linear, so their order does not change
the result, only the cost: resizing first is cheaper when it shrinks.

Each adapter normalises its input first (BatchNorm, no other change of the student). A
projection's step under SGD grows with the energy of its input (channels x mean
square): on raw X3D-XS ``layer3`` maps (96 channels, mean |x| ~2) at the recipe's lr
0.1, MARS diverged within 4-6 steps in every setting tried; with the input normalised the
same run trains (the adapter's MSE falls from 1.3 to 0.66 in 12 steps on random clips).

Adapters train with the student (``build_engine`` puts them in the optimizer) but are
not part of the model: checkpoints and exports hold the student alone. An output
whose shape already matches gets no adapter (same family: the paper's set-up).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from mars_action.errors import MarsError


def resize(maps: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """(B, C, t, h, w) maps at ``size``: averaged down, or trilinearly enlarged."""
    if tuple(maps.shape[2:]) == tuple(size):
        return maps
    if all(want <= have for want, have in zip(size, maps.shape[2:], strict=True)):
        return F.adaptive_avg_pool3d(maps, size)
    return F.interpolate(maps, size=size, mode="trilinear", align_corners=False)


class TeacherUnits(nn.Module):
    """A fixed per-channel ``z * std + mean``: an adapter's output in the teacher's units.

    ``distill.normalize: standardize`` divides both compared outputs by the teacher's
    std; a projection feeding it directly would see its gradient scaled by 1 / std**2 (a
    step 10-100x too large for small teachers). Producing ``z * std + mean`` instead makes
    the standardised output ``z`` itself, so the projection learns at the loss's own scale.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.detach().float().clone())
        self.register_buffer("std", std.detach().float().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, C, ...) -> same
        shape = (1, -1) + (1,) * (z.dim() - 2)
        return z * self.std.view(shape) + self.mean.view(shape)


class MapAdapter(nn.Module):
    """Resize a student map to the teacher's (t, h, w), normalise it, then a 1x1x1 conv to
    the teacher's channels (in its units when ``units`` is given)."""

    def __init__(self, in_channels: int, out_channels: int, size: tuple[int, int, int],
                 units: TeacherUnits | None = None):
        super().__init__()
        self.size = tuple(size)
        self.norm = nn.BatchNorm3d(in_channels)
        self.proj = nn.Conv3d(in_channels, out_channels, kernel_size=1)
        self.units = units or nn.Identity()

    def forward(self, maps: torch.Tensor) -> torch.Tensor:  # (B, C_s, t_s, h_s, w_s)
        return self.units(self.proj(self.norm(resize(maps, self.size))))  # (B, C_t, t, h, w)


class VectorAdapter(nn.Module):
    """Normalise a student vector (B, F_s), then a linear map to the teacher's width (in
    its units when ``units`` is given)."""

    def __init__(self, in_features: int, out_features: int, units: TeacherUnits | None = None):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features)
        self.proj = nn.Linear(in_features, out_features)
        self.units = units or nn.Identity()

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:  # (B, F_s)
        return self.units(self.proj(self.norm(vectors)))  # (B, F_t)


def adapter_for(student_shape: tuple[int, ...], teacher_shape: tuple[int, ...],
                units: TeacherUnits | None = None) -> nn.Module:
    """The adapter from one output shape (without batch) to another."""
    if len(student_shape) == 4 and len(teacher_shape) == 4:
        return MapAdapter(student_shape[0], teacher_shape[0], teacher_shape[1:], units)
    if len(student_shape) == 1 and len(teacher_shape) == 1:
        return VectorAdapter(student_shape[0], teacher_shape[0], units)
    raise MarsError(f"no adapter from an output of shape {student_shape} to {teacher_shape}")


@torch.no_grad()
def output_shapes(model: nn.Module, clips: torch.Tensor, names: Iterable[str]) -> dict:
    """The shapes (without batch) of ``model``'s named outputs for ``clips``, in eval mode."""
    was_training = model.training
    model.eval()
    try:
        _, outputs = model.forward_with_features(clips, tuple(names))
    finally:
        model.train(was_training)
    return {name: tuple(value.shape[1:]) for name, value in outputs.items()}


def build_adapters(
    student: nn.Module,
    teacher: nn.Module,
    names: Iterable[str],
    clip_len: int,
    crop_size: int,
    device: torch.device | str = "cpu",
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> nn.ModuleDict | None:
    """Adapters for each compared output whose shape differs between the two networks.

    Shapes are read from one forward of each network on clips of the training size
    (``clip_len`` x ``crop_size``²): they depend on it. None when every shape matches.
    Logits are never adapted: a teacher with other classes is refused before this.
    ``stats``: the teacher statistics of ``normalize: standardize`` (keyed as
    ``distill.target_key``); an adapted output they standardise ends in
    :class:`TeacherUnits`.
    """
    names = tuple(dict.fromkeys(names))
    if not names:
        return None
    size = (2, clip_len, crop_size, crop_size)
    mine = output_shapes(student, torch.zeros(size[0], student.in_channels, *size[1:],
                                              device=device), names)
    theirs = output_shapes(teacher, torch.zeros(size[0], teacher.in_channels, *size[1:],
                                                device=device), names)
    adapters = {name: adapter_for(mine[name], theirs[name], _units(stats, name, device))
                for name in names if mine[name] != theirs[name] and name != "logits"}
    return nn.ModuleDict(adapters).to(device) if adapters else None


def _units(stats: dict | None, name: str, device) -> TeacherUnits | None:
    """The teacher's (mean, std) of output ``name``, compared as maps or pooled (both are
    per channel, and pooling commutes with ``z * std + mean``)."""
    for key in (name, f"{name}.pooled"):
        if stats and key in stats:
            mean, std = stats[key]
            return TeacherUnits(mean, std).to(device)
    return None

