"""MobileNetV2 in 3D (Köpüklü et al., "Resource Efficient 3D CNNs", ICCVW 2019).

Inverted residual blocks: a 1x1x1 expansion (x6), a channel-wise 3x3x3 conv, a
linear 1x1x1 projection, ReLU6, a residual where the shape stays. The stem and the
first stride-2 blocks also halve time (16 frames -> 1 at the end), as in the
paper's network. The paper's width multiplier scales every layer but the last
1x1x1 conv (1280 channels unless widened).
"""

from __future__ import annotations

import torch
from torch import nn

from mars_action.models.backbone import Backbone, classifier, conv_bn, init_weights
from mars_action.models.registry import register_model

# (expansion t, channels c, blocks n, stride s), grouped into the four ``layerN`` stages.
_STAGES = (
    ((1, 16, 1, (1, 1, 1)), (6, 24, 2, (2, 2, 2))),
    ((6, 32, 3, (2, 2, 2)),),
    ((6, 64, 4, (2, 2, 2)), (6, 96, 3, (1, 1, 1))),
    ((6, 160, 3, (2, 2, 2)), (6, 320, 1, (1, 1, 1))),
)
_STEM_WIDTH, _LAST_WIDTH = 32, 1280


def _divisible(width: float, divisor: int = 8) -> int:
    return max(divisor, int(width + divisor / 2) // divisor * divisor)


class InvertedResidual(nn.Module):
    """Expand (1x1x1, ReLU6), channel-wise 3x3x3 (ReLU6), project (1x1x1, linear)."""

    def __init__(self, in_ch: int, out_ch: int, stride: tuple[int, int, int], expansion: int):
        super().__init__()
        hidden = in_ch * expansion
        layers = [] if expansion == 1 else [*conv_bn(in_ch, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [*conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers += [*conv_bn(hidden, out_ch, 1)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == (1, 1, 1) and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.residual else out


class MobileNet3dV2(Backbone):
    """3D MobileNetV2 on clips (B, C, T, H, W).

    Args:
        width: the width multiplier (1.0: the paper's 1.0x network).
        in_channels: 3 for RGB, 2 for optical flow.
        num_classes: size of the classifier; 0 for a feature extractor.
    """

    def __init__(self, width: float = 1.0, in_channels: int = 3, num_classes: int = 400):
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        in_ch = _divisible(_STEM_WIDTH * width)
        self.stem = nn.Sequential(*conv_bn(in_channels, in_ch, 3, (1, 2, 2)),
                                  nn.ReLU6(inplace=True))
        stages = []
        for groups in _STAGES:
            blocks = []
            for expansion, channels, count, stride in groups:
                out_ch = _divisible(channels * width)
                for i in range(count):
                    blocks.append(InvertedResidual(in_ch, out_ch, stride if i == 0 else (1, 1, 1),
                                                   expansion))
                    in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        last = _divisible(_LAST_WIDTH * width) if width > 1.0 else _LAST_WIDTH
        stages[-1].append(nn.Sequential(*conv_bn(in_ch, last, 1), nn.ReLU6(inplace=True)))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = last
        self.fc = classifier(last, num_classes)
        init_weights(self)

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.layer2(self.layer1(self.stem(x)))  # (B, 32, T/4, H/8, W/8)
        layer3 = self.layer3(x)  # (B, 96, T/8, H/16, W/16)
        layer4 = self.layer4(layer3)  # (B, 1280, T/16, H/32, W/32)
        return {"layer3": layer3, "layer4": layer4}


@register_model
def mobilenet3d_v2(**kwargs) -> MobileNet3dV2:
    """The paper's 3D-MobileNetV2 1.0x."""
    return MobileNet3dV2(width=1.0, **kwargs)


@register_model
def mobilenet3d_v2_half(**kwargs) -> MobileNet3dV2:
    """3D-MobileNetV2 0.5x: half the channels (the last conv keeps 1280)."""
    return MobileNet3dV2(width=0.5, **kwargs)
