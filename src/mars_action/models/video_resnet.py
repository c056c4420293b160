"""Tran et al.'s video ResNets (CVPR 2018): R3D, MC3 and R(2+1)D, in torchvision's layout.

All three are 18-layer basic-block ResNets without a max-pool, on 16x112x112 clips:
- R3D: 3x3x3 convs everywhere; stem 3x7x7.
- MC3: 3x3x3 convs in ``layer1``, spatial-only 1x3x3 convs after it ("mixed").
- R(2+1)D: every 3x3x3 conv split into a 1x3x3 spatial conv to ``mid`` channels,
  BN, ReLU and a 3x1x1 temporal conv, with ``mid = (in*out*27) // (in*9 + 3*out)`` so
  the pair has about the parameters of the 3D conv it replaces; the stem is 1x7x7 to
  45 channels then 3x1x1 to 64. torchvision computes ``mid`` once per block from the
  block's input width and uses it for both convs; so does this file.

Published sizes (torchvision's weight tables, 400 classes, 16x112x112): r3d_18
33,371,472 parameters, 40.70 GFLOPS; mc3_18 11,695,440, 43.34; r2plus1d_18 31,505,325,
40.52. Module names follow ``ResNet3d`` (``convN``/``bnN`` pairs fold at export);
torchvision's key names map through ``models/foreign.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mars_action.models.backbone import Backbone, classifier, conv_bn, init_weights
from mars_action.models.registry import register_model

KINDS = ("3d", "2d", "2plus1d")  # 3x3x3, 1x3x3 (no temporal), 1x3x3 + 3x1x1


def mid_planes(in_planes: int, planes: int) -> int:
    """Channels between the spatial and temporal convs of an R(2+1)D block."""
    return (in_planes * planes * 27) // (in_planes * 9 + 3 * planes)


class Block3d(nn.Module):
    """Two 3x3x3 (``3d``) or 1x3x3 (``2d``) convs with BN, and a residual."""

    def __init__(self, in_planes: int, planes: int, stride: int, kind: str):
        super().__init__()
        temporal = kind == "3d"
        kernel, pad = ((3, 3, 3), (1, 1, 1)) if temporal else ((1, 3, 3), (0, 1, 1))
        stride3 = (stride if temporal else 1, stride, stride)
        self.conv1 = nn.Conv3d(in_planes, planes, kernel, stride3, pad, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, kernel, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_planes, planes, stride3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Block2Plus1d(nn.Module):
    """Two (2+1)D convs: ``convNs`` (1x3x3) + ``bnNs`` + ReLU, ``convNt`` (3x1x1) + ``bnNt``."""

    def __init__(self, in_planes: int, planes: int, stride: int, kind: str = "2plus1d"):
        super().__init__()
        mid = mid_planes(in_planes, planes)
        self.conv1s, self.bn1s = _spatial(in_planes, mid, stride), nn.BatchNorm3d(mid)
        self.conv1t, self.bn1t = _temporal(mid, planes, stride), nn.BatchNorm3d(planes)
        self.conv2s, self.bn2s = _spatial(planes, mid, 1), nn.BatchNorm3d(mid)
        self.conv2t, self.bn2t = _temporal(mid, planes, 1), nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_planes, planes, (stride,) * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1s(self.conv1s(x)))
        out = self.relu(self.bn1t(self.conv1t(out)))
        out = self.relu(self.bn2s(self.conv2s(out)))
        return self.relu(self.bn2t(self.conv2t(out)) + identity)


def _spatial(in_ch: int, out_ch: int, stride: int) -> nn.Conv3d:
    return nn.Conv3d(in_ch, out_ch, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)


def _temporal(in_ch: int, out_ch: int, stride: int) -> nn.Conv3d:
    return nn.Conv3d(in_ch, out_ch, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False)


def _shortcut(in_planes: int, planes: int, stride: tuple[int, ...]) -> nn.Sequential | None:
    if in_planes == planes and all(s == 1 for s in stride):
        return None
    return conv_bn(in_planes, planes, 1, stride)


class VideoStem(nn.Module):
    """3x7x7 conv to 64 (R3D, MC3), or 1x7x7 to 45 then 3x1x1 to 64 (R(2+1)D); BN, ReLU."""

    def __init__(self, in_channels: int, factorised: bool):
        super().__init__()
        self.relu = nn.ReLU(inplace=True)
        if factorised:
            self.conv1s = nn.Conv3d(in_channels, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
            self.bn1s = nn.BatchNorm3d(45)
            self.conv1t = nn.Conv3d(45, 64, (3, 1, 1), 1, (1, 0, 0), bias=False)
            self.bn1t = nn.BatchNorm3d(64)
            self.layers = ("1s", "1t")
        else:
            self.conv1 = nn.Conv3d(in_channels, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False)
            self.bn1 = nn.BatchNorm3d(64)
            self.layers = ("1",)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for suffix in self.layers:
            x = self.relu(getattr(self, "bn" + suffix)(getattr(self, "conv" + suffix)(x)))
        return x  # (B, 64, T, H/2, W/2)


class VideoResNet(Backbone):
    """A basic-block video ResNet on clips (B, C, T, H, W); each stage's conv kind given.

    Args:
        layers: blocks per stage.
        kinds: conv kind per stage, from ``KINDS``.
        in_channels: 3 for RGB, 2 for optical flow.
        num_classes: size of the classifier; 0 for a feature extractor.
    """

    def __init__(
        self,
        layers: Sequence[int],
        kinds: Sequence[str],
        in_channels: int = 3,
        num_classes: int = 400,
    ):
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        self.stem = VideoStem(in_channels, factorised=kinds[0] == "2plus1d")
        stages, in_planes = [], 64
        for index, (blocks, kind, planes) in enumerate(
            zip(layers, kinds, (64, 128, 256, 512), strict=True)
        ):
            block = Block2Plus1d if kind == "2plus1d" else Block3d
            first = block(in_planes, planes, 1 if index == 0 else 2, kind)
            rest = [block(planes, planes, 1, kind) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(first, *rest))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = in_planes
        self.fc = classifier(in_planes, num_classes)
        init_weights(self)

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The ``layer3`` and ``layer4`` maps: the ones distillation and hints compare
        (``Backbone.feature_names``), so earlier stages are not kept."""
        x = self.layer2(self.layer1(self.stem(x)))  # (B, 128, T/2, H/4, W/4) for R3D
        layer3 = self.layer3(x)
        layer4 = self.layer4(layer3)  # (B, 512, T/8, H/16, W/16) for R3D and R(2+1)D
        return {"layer3": layer3, "layer4": layer4}


@register_model
def r3d_18(**kwargs) -> VideoResNet:
    """R3D-18: 33.37 M parameters at 400 classes."""
    return VideoResNet([2, 2, 2, 2], ["3d"] * 4, **kwargs)


@register_model
def mc3_18(**kwargs) -> VideoResNet:
    """MC3-18: 3D convs in the first stage only; 11.70 M parameters at 400 classes."""
    return VideoResNet([2, 2, 2, 2], ["3d"] + ["2d"] * 3, **kwargs)


@register_model
def r2plus1d_18(**kwargs) -> VideoResNet:
    """R(2+1)D-18: 31.51 M parameters at 400 classes."""
    return VideoResNet([2, 2, 2, 2], ["2plus1d"] * 4, **kwargs)


@register_model
def r2plus1d_34(**kwargs) -> VideoResNet:
    """R(2+1)D-34, the layout of the IG-65M releases (torchvision's blocks, 3-4-6-3)."""
    return VideoResNet([3, 4, 6, 3], ["2plus1d"] * 4, **kwargs)
