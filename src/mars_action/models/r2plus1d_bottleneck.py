"""R(2+1)D-50: the bottleneck R(2+1)D of PyTorchVideo's ``create_r2plus1d`` (model zoo
``r2plus1d_r50``, "R(2+1)D R50 16x4": 76.01% top-1 on Kinetics-400, 28.11 M parameters,
76.45 GFLOPs per view; its views are PySlowFast's 256x256 test crops, and this net
counts 75.15 GMACs on 16x256x256, 57.53 on 16x224x224).

Unlike torchvision's basic-block R(2+1)D-18/34 (``video_resnet.py``), every block is a
ResNet-50 bottleneck whose middle conv is factorised at the bottleneck's own width, with
no ``mid`` channels: 1x1x1 reduce, 3x1x1 temporal conv, BN, ReLU, 1x3x3 spatial conv
(PyTorchVideo's ``Conv2plus1d``: temporal first), BN, ReLU, 1x1x1 expand to 4x. The
stem is one 1x7x7 conv (stride 1x2x2) without a max-pool; every stage halves the space
(stride 2 also in the first) and stages 3 and 4 halve time too, so a 16x224x224 clip
ends at 4x7x7, which PyTorchVideo's head averages (4x7x7 kernel) before its projection.
Here the pool is global (the same number at that size; any clip size works) and the
head returns logits (PyTorchVideo's applies a softmax: the same ranking).

Module names follow ``ResNet3d``'s (``convN``/``bnN`` pairs fold at export);
PyTorchVideo's key names map through ``models/foreign.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from mars_action.models.backbone import Backbone, classifier, conv_bn, init_weights
from mars_action.models.registry import register_model

_SPATIAL_STRIDES = (2, 2, 2, 2)  # create_r2plus1d's stage_spatial_stride
_TEMPORAL_STRIDES = (1, 1, 2, 2)  # and stage_temporal_stride
_STEM_WIDTH = 64
_EXPANSION = 4


class Bottleneck2Plus1d(nn.Module):
    """1x1x1 ``conv1``; (2+1)D middle ``conv2t`` (3x1x1) + ``bn2t`` + ReLU + ``conv2s``
    (1x3x3) + ``bn2s``; 1x1x1 ``conv3`` to ``4 x inner``; a projection shortcut where
    the shape changes."""

    def __init__(self, in_planes: int, inner: int, stride_t: int = 1, stride_s: int = 1):
        super().__init__()
        out_planes = inner * _EXPANSION
        self.conv1 = nn.Conv3d(in_planes, inner, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(inner)
        self.conv2t = nn.Conv3d(inner, inner, (3, 1, 1), (stride_t, 1, 1), (1, 0, 0), bias=False)
        self.bn2t = nn.BatchNorm3d(inner)
        self.conv2s = nn.Conv3d(inner, inner, (1, 3, 3), (1, stride_s, stride_s), (0, 1, 1),
                                bias=False)
        self.bn2s = nn.BatchNorm3d(inner)
        self.conv3 = nn.Conv3d(inner, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if in_planes != out_planes or stride_t * stride_s > 1:
            self.downsample = conv_bn(in_planes, out_planes, 1, (stride_t, stride_s, stride_s))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2t(self.conv2t(out)))
        out = self.relu(self.bn2s(self.conv2s(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class Stem1x7x7(nn.Module):
    """One 1x7x7 conv (stride 1x2x2) to 64 channels, BN, ReLU; no pooling."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, _STEM_WIDTH, (1, 7, 7), (1, 2, 2), (0, 3, 3),
                               bias=False)
        self.bn1 = nn.BatchNorm3d(_STEM_WIDTH)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))  # (B, 64, T, H/2, W/2)


class R2Plus1dBottleneckNet(Backbone):
    """A bottleneck R(2+1)D on clips (B, C, T, H, W).

    Args:
        layers: bottlenecks per stage ((3, 4, 6, 3) for R50).
        in_channels: 3 for RGB, 2 for optical flow.
        num_classes: size of the classifier; 0 for a feature extractor.
    """

    def __init__(self, layers: tuple[int, ...], in_channels: int = 3, num_classes: int = 400):
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        self.stem = Stem1x7x7(in_channels)
        stages, in_planes = [], _STEM_WIDTH
        for index, blocks in enumerate(layers):
            inner = _STEM_WIDTH * 2**index
            first = Bottleneck2Plus1d(in_planes, inner, _TEMPORAL_STRIDES[index],
                                      _SPATIAL_STRIDES[index])
            in_planes = inner * _EXPANSION
            rest = [Bottleneck2Plus1d(in_planes, inner) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(first, *rest))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = in_planes
        self.fc = classifier(in_planes, num_classes)
        init_weights(self)

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The ``layer3`` and ``layer4`` maps, the ones distillation and hints compare."""
        x = self.layer2(self.layer1(self.stem(x)))  # (B, 512, T, H/8, W/8)
        layer3 = self.layer3(x)
        layer4 = self.layer4(layer3)  # (B, 2048, T/4, H/32, W/32)
        return {"layer3": layer3, "layer4": layer4}


@register_model
def r2plus1d_50(**kwargs) -> R2Plus1dBottleneckNet:
    """PyTorchVideo's R(2+1)D R50: bottlenecks 3-4-6-3; 28.11 M parameters at 400
    classes (model zoo: 28.11 M), 75.15 GMACs on 16x256x256 (zoo: 76.45 GFLOPs a view)."""
    return R2Plus1dBottleneckNet((3, 4, 6, 3), **kwargs)
