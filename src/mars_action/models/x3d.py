"""X3D (Feichtenhofer, CVPR 2020): a 2D image net expanded along time, space, width, depth.

Each block is a bottleneck whose middle 3x3x3 conv is channel-wise (depthwise),
with squeeze-excitation on every other block and swish after it. X3D-XS, S and M
are one network (width factor 2, depth factor 2.2, bottleneck expansion 2.25)
fed different clips (4x160², 13x160², 16x224²); X3D-L is 5x deeper per stage
(16x312²). The head projects the last map to 432 channels, pools and lifts the
pooled vector to 2048 (the paper's ``conv5`` and ``fc1``). At 13x160x160, X3D-S has
3.76 M parameters and 1.96 GMACs (paper, Table 3; PySlowFast model zoo).

Block and stem layouts match PyTorchVideo's ``create_x3d``, so its weights load by a
key table (``models/foreign.py``); names here follow ``ResNet3d``'s (``convN``/``bnN``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mars_action.models.backbone import Backbone, classifier, conv_bn, init_weights
from mars_action.models.registry import register_model

_STAGE_DEPTHS = (1, 2, 5, 3)  # the 2D base net, before depth expansion
_BASE_WIDTH = 12  # stem width of the base net; stages double it (24, 48, 96 x width factor)
_HEAD_WIDTH = 2048


def round_width(width: float, multiplier: float, min_width: int = 8, divisor: int = 8) -> int:
    """``width * multiplier`` rounded to a multiple of ``divisor`` (never below 90% of it)."""
    width *= multiplier
    rounded = max(min_width, int(width + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * width:
        rounded += divisor
    return int(rounded)


class SqueezeExcite(nn.Module):
    """Channel gates from the clip's mean: pool, reduce (ReLU), expand, sigmoid."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv3d(channels, reduced, 1, bias=True)
        self.expand = nn.Conv3d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(2, 3, 4), keepdim=True)  # (B, C, 1, 1, 1)
        gate = self.expand(torch.relu(self.reduce(gate)))
        return x * torch.sigmoid(gate)


class X3dBlock(nn.Module):
    """1x1x1 expand (ReLU), 3x3x3 channel-wise (+SE, swish), 1x1x1 project; residual ReLU."""

    def __init__(self, in_ch: int, inner: int, out_ch: int, stride: int, se: bool):
        super().__init__()
        self.conv1 = nn.Conv3d(in_ch, inner, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(inner)
        self.conv2 = nn.Conv3d(inner, inner, 3, stride=(1, stride, stride), padding=1,
                               groups=inner, bias=False)
        self.bn2 = nn.BatchNorm3d(inner)
        self.se = SqueezeExcite(inner, round_width(inner, 1 / 16)) if se else nn.Identity()
        self.conv3 = nn.Conv3d(inner, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.swish = nn.SiLU()
        # PyTorchVideo's shortcut: a strided 1x1x1 conv where the shape changes, with a BN
        # only where the width changes (X3D's first stage keeps 24 channels: conv, no BN).
        shortcut = []
        if stride != 1 or in_ch != out_ch:
            shortcut.append(nn.Conv3d(in_ch, out_ch, 1, stride=(1, stride, stride), bias=False))
        if in_ch != out_ch:
            shortcut.append(nn.BatchNorm3d(out_ch))
        self.downsample = nn.Sequential(*shortcut) if shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.swish(self.se(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class X3dStem(nn.Module):
    """A 1x3x3 spatial conv (stride 2) then a channel-wise 5x1x1 temporal conv, BN, ReLU."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.conv_xy = nn.Conv3d(in_channels, width, (1, 3, 3), stride=(1, 2, 2),
                                 padding=(0, 1, 1), bias=False)
        self.conv1 = nn.Conv3d(width, width, (5, 1, 1), padding=(2, 0, 0), groups=width,
                               bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(self.conv_xy(x))))  # (B, 24, T, H/2, W/2)


class X3d(Backbone):
    """X3D on clips (B, C, T, H, W): stem, four stages (spatial stride 2 each), head.

    Args:
        depth_factor: blocks per stage = ceil(depth_factor x (1, 2, 5, 3)).
        width_factor: channels of stem and stages over the base net's (12, 24, 48, 96).
        bottleneck_factor: inner width of each block over its output width.
        in_channels: 3 for RGB, 2 for optical flow.
        num_classes: size of the classifier; 0 for a feature extractor.
    """

    def __init__(
        self,
        depth_factor: float = 2.2,
        width_factor: float = 2.0,
        bottleneck_factor: float = 2.25,
        in_channels: int = 3,
        num_classes: int = 400,
    ):
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        stem_width = round_width(_BASE_WIDTH, width_factor)
        self.stem = X3dStem(in_channels, stem_width)
        widths, base = [], _BASE_WIDTH
        for _ in _STAGE_DEPTHS:
            widths.append(round_width(base, width_factor))
            base = round_width(base, 2.0)
        stages, in_ch = [], stem_width
        for depth, width in zip(_STAGE_DEPTHS, widths, strict=True):
            inner = int(bottleneck_factor * width)
            blocks = [
                X3dBlock(in_ch if i == 0 else width, inner, width, 2 if i == 0 else 1, i % 2 == 0)
                for i in range(math.ceil(depth_factor * depth))
            ]
            stages.append(nn.Sequential(*blocks))
            in_ch = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.conv5 = nn.Sequential(*conv_bn(in_ch, inner, 1), nn.ReLU(inplace=True))
        self.head = nn.Linear(inner, _HEAD_WIDTH, bias=False)  # the paper's fc1 (1x1x1 conv)
        self.num_features = _HEAD_WIDTH
        self.fc = classifier(_HEAD_WIDTH, num_classes)
        init_weights(self)

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The ``layer3`` map and ``layer4`` after its 1x1x1 expansion (``conv5``): the
        maps distillation compares, under the names every family shares."""
        x = self.layer2(self.layer1(self.stem(x)))  # (B, 48, T, H/8, W/8)
        layer3 = self.layer3(x)  # (B, 96, T, H/16, W/16)
        layer4 = self.conv5(self.layer4(layer3))  # (B, 432, T, H/32, W/32)
        return {"layer3": layer3, "layer4": layer4}

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """Global average, then fc1 and ReLU (B, 2048): X3D's pooled feature."""
        return torch.relu(self.head(super().pool(features)))


@register_model
def x3d_xs(**kwargs) -> X3d:
    """X3D-XS: the X3D-S network, meant for 4x160x160 clips (0.60 GMACs)."""
    return X3d(depth_factor=2.2, **kwargs)


@register_model
def x3d_s(**kwargs) -> X3d:
    """X3D-S: 3.76 M parameters, 1.96 GMACs on 13x160x160."""
    return X3d(depth_factor=2.2, **kwargs)


@register_model
def x3d_m(**kwargs) -> X3d:
    """X3D-M: the X3D-S network, meant for 16x224x224 clips (4.73 GMACs)."""
    return X3d(depth_factor=2.2, **kwargs)


@register_model
def x3d_l(**kwargs) -> X3d:
    """X3D-L: depth factor 5, 6.15 M parameters, 18.37 GMACs on 16x312x312."""
    return X3d(depth_factor=5.0, **kwargs)
