"""3D ResNet and ResNeXt (Hara et al., CVPR 2018), the backbone of the MARS paper.

Module names match the released MARS code (``conv1``, ``bn1``, ``layer1.0.conv2``,
``layer1.0.downsample.0``, ``fc``) so its checkpoints load with a prefix strip.
Unlike the released code, pooling is adaptive: one model takes 16- and 64-frame
clips at any crop size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mars_action.models.backbone import Backbone, classifier, conv_bn, init_weights

# Feature names a caller can ask for; "pooled" is the MARS distillation target. The
# other families expose layer3/layer4 only.
FEATURE_NAMES = ("layer1", "layer2", "layer3", "layer4", "pooled", "logits")


class ZeroPadShortcut(nn.Module):
    """Shortcut type A: keep every ``stride``-th position, append zero channels.

    Hara's ResNet-18/34 Kinetics files were trained with it: a strided average pool of
    kernel 1 (a plain subsample) followed by ``out_planes - C`` channels of zeros after
    the input's own. No parameters, so such files have no ``downsample`` keys.
    (Hara's code also cuts the gradient of this path (``.data``); here it flows, as in
    the original ResNet's option A: the same forward, the usual fine-tuning.)
    """

    def __init__(self, out_planes: int, stride: int):
        super().__init__()
        self.out_planes = out_planes
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, out_planes, ceil(T/s), ceil(H/s), ceil(W/s))."""
        kept = x[:, :, :: self.stride, :: self.stride, :: self.stride]
        # pad's pairs run from the last dim back: (W, H, T, C); zeros after the channels
        return F.pad(kept, (0, 0, 0, 0, 0, 0, 0, self.out_planes - x.shape[1]))


def _downsample(in_planes: int, out_planes: int, stride: int, shortcut: str) -> nn.Module:
    """The shortcut where the shape changes: ``"B"`` a strided 1x1x1 projection + BN
    (ResNet-50 and up, ResNeXt, MARS), ``"A"`` the parameter-free :class:`ZeroPadShortcut`."""
    if shortcut == "A":
        return ZeroPadShortcut(out_planes, stride)
    return conv_bn(in_planes, out_planes, 1, stride)


class BasicBlock(nn.Module):
    """Two 3x3x3 convs (ResNet-10/18/34)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, cardinality: int = 1,
                 shortcut: str = "B"):
        super().__init__()
        self.conv1 = nn.Conv3d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        out_planes = planes * self.expansion
        needs_projection = stride != 1 or in_planes != out_planes
        self.downsample = (
            _downsample(in_planes, out_planes, stride, shortcut) if needs_projection else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1x1 reduce, 3x3x3 (grouped for ResNeXt) carrying the stride, 1x1x1 expand."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, cardinality: int = 1,
                 shortcut: str = "B"):
        super().__init__()
        width = planes if cardinality == 1 else cardinality * (planes // 32)
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv3d(in_planes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.conv2 = nn.Conv3d(
            width, width, 3, stride=stride, padding=1, groups=cardinality, bias=False
        )
        self.bn2 = nn.BatchNorm3d(width)
        self.conv3 = nn.Conv3d(width, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        needs_projection = stride != 1 or in_planes != out_planes
        self.downsample = (
            _downsample(in_planes, out_planes, stride, shortcut) if needs_projection else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNeXtBottleneck(Bottleneck):
    """The ResNeXt bottleneck of the released code: expansion 2, width C x planes/32."""

    expansion = 2


class ResNet3d(Backbone):
    """A 3D ResNet/ResNeXt classifier on clips of shape (B, C, T, H, W).

    Args:
        block: residual block class.
        layers: number of blocks in each of the four stages.
        stage_planes: ``planes`` of each stage (output channels / expansion).
        in_channels: 3 for RGB, 2 for optical flow (x, y).
        num_classes: size of the classifier; 0 for a feature extractor.
        cardinality: groups of the 3x3x3 conv (32 for ResNeXt, 1 otherwise).
        stem_width: channels of the 7x7x7 stem.
        shortcut: ``"B"`` (projection) or ``"A"`` (subsample + zero channels) where a
            block changes shape (Hara's ``--resnet_shortcut``).
    """

    feature_names = FEATURE_NAMES

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        stage_planes: Sequence[int] = (64, 128, 256, 512),
        in_channels: int = 3,
        num_classes: int = 400,
        cardinality: int = 1,
        stem_width: int = 64,
        shortcut: str = "B",
    ):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', not {shortcut!r}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.conv1 = nn.Conv3d(
            in_channels, stem_width, 7, stride=(1, 2, 2), padding=3, bias=False
        )
        self.bn1 = nn.BatchNorm3d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        planes_in = stem_width
        stages = []
        for index, (planes, blocks) in enumerate(zip(stage_planes, layers, strict=True)):
            stride = 1 if index == 0 else 2
            stage, planes_in = _make_stage(
                block, planes_in, planes, blocks, stride, cardinality, shortcut
            )
            stages.append(stage)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = planes_in
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = classifier(planes_in, num_classes)
        init_weights(self)

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stem and four stages; returns the map of each stage (hints may read any)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, T/2, H/4, W/4)
        layer1 = self.layer1(x)
        layer2 = self.layer2(layer1)
        layer3 = self.layer3(layer2)
        layer4 = self.layer4(layer3)  # (B, F, T/16, H/32, W/32)
        return {"layer1": layer1, "layer2": layer2, "layer3": layer3, "layer4": layer4}

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F, t, h, w) map -> (B, F) through ``avgpool`` (inference rewrites may swap it)."""
        return torch.flatten(self.avgpool(features), 1)


def _make_stage(block, in_planes, planes, blocks, stride, cardinality, shortcut):
    layers = [block(in_planes, planes, stride=stride, cardinality=cardinality,
                    shortcut=shortcut)]
    out_planes = planes * block.expansion
    layers += [block(out_planes, planes, cardinality=cardinality) for _ in range(blocks - 1)]
    return nn.Sequential(*layers), out_planes
