"""The named variants: depths of the paper's table of 3D ResNets and ResNeXts (and the
other families' builders, registered on import)."""

from __future__ import annotations

# The other families register their builders in their own files; importing them here
# makes every name known wherever the zoo is loaded.
from mars_action.models import mobilenet3d, r2plus1d_bottleneck, video_resnet, x3d  # noqa: F401
from mars_action.models.registry import register_model
from mars_action.models.resnet3d import BasicBlock, Bottleneck, ResNet3d, ResNeXtBottleneck

_RESNEXT_PLANES = (128, 256, 512, 1024)
# Figures in the docstrings: 400 classes, one 3x16x112x112 clip (`mars model-info`).


@register_model
def resnet10(**kwargs) -> ResNet3d:
    """BasicBlocks 1-1-1-1, the cheapest depth: 14.60 M parameters, 5.65 GMACs."""
    return ResNet3d(BasicBlock, [1, 1, 1, 1], **kwargs)


@register_model
def resnet18(**kwargs) -> ResNet3d:
    """BasicBlocks 2-2-2-2: 33.41 M parameters, 8.31 GMACs."""
    return ResNet3d(BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model
def resnet34(**kwargs) -> ResNet3d:
    """BasicBlocks 3-4-6-3: 63.72 M parameters, 12.70 GMACs (more than ResNet-50: no
    bottleneck narrows its 3x3x3 convolutions)."""
    return ResNet3d(BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model
def resnet18_a(**kwargs) -> ResNet3d:
    """ResNet-18 with shortcut A (subsample + zero channels), as Hara's
    ``resnet-18-kinetics.pth`` was trained: 33.24 M parameters (Hara et al.: 33.2 M),
    8.30 GMACs."""
    return ResNet3d(BasicBlock, [2, 2, 2, 2], shortcut="A", **kwargs)


@register_model
def resnet34_a(**kwargs) -> ResNet3d:
    """ResNet-34 with shortcut A, as Hara's ``resnet-34-kinetics.pth``: 63.54 M
    parameters (Hara et al.: 63.5 M), 12.68 GMACs."""
    return ResNet3d(BasicBlock, [3, 4, 6, 3], shortcut="A", **kwargs)


@register_model
def resnet50(**kwargs) -> ResNet3d:
    """Bottlenecks 3-4-6-3: 47.02 M parameters, 10.07 GMACs."""
    return ResNet3d(Bottleneck, [3, 4, 6, 3], **kwargs)


@register_model
def resnet101(**kwargs) -> ResNet3d:
    """Bottlenecks 3-4-23-3: 86.06 M parameters, 13.89 GMACs."""
    return ResNet3d(Bottleneck, [3, 4, 23, 3], **kwargs)


@register_model
def resnet152(**kwargs) -> ResNet3d:
    """Bottlenecks 3-8-36-3: 118.22 M parameters, 18.61 GMACs."""
    return ResNet3d(Bottleneck, [3, 8, 36, 3], **kwargs)


@register_model
def resnext50(**kwargs) -> ResNet3d:
    """ResNeXt bottlenecks (32 groups) 3-4-6-3: 26.69 M parameters, 7.45 GMACs."""
    return ResNet3d(ResNeXtBottleneck, [3, 4, 6, 3], _RESNEXT_PLANES, cardinality=32, **kwargs)


@register_model
def resnext101(**kwargs) -> ResNet3d:
    """The MARS backbone: 48.34 M parameters, 9.57 GMACs on 3x16x112x112."""
    return ResNet3d(ResNeXtBottleneck, [3, 4, 23, 3], _RESNEXT_PLANES, cardinality=32, **kwargs)


@register_model
def resnext152(**kwargs) -> ResNet3d:
    """ResNeXt bottlenecks (32 groups) 3-8-36-3: 66.18 M parameters, 12.18 GMACs."""
    return ResNet3d(ResNeXtBottleneck, [3, 8, 36, 3], _RESNEXT_PLANES, cardinality=32, **kwargs)


@register_model
def resnet10_tiny(**kwargs) -> ResNet3d:
    """A ResNet-10 at a quarter of the width: trains on a laptop CPU in minutes (demo)."""
    return ResNet3d(BasicBlock, [1, 1, 1, 1], (16, 32, 64, 128), stem_width=16, **kwargs)
