"""The named variants: depths of the paper's table of 3D ResNets and ResNeXts (and the
other families' builders, registered on import)."""

from __future__ import annotations

# The other families register their builders in their own files; importing them here
# makes every name known wherever the zoo is loaded.
from mars_action.models import mobilenet3d, video_resnet, x3d  # noqa: F401
from mars_action.models.registry import register_model
from mars_action.models.resnet3d import BasicBlock, Bottleneck, ResNet3d, ResNeXtBottleneck

_RESNEXT_PLANES = (128, 256, 512, 1024)


@register_model
def resnet10(**kwargs) -> ResNet3d:
    return ResNet3d(BasicBlock, [1, 1, 1, 1], **kwargs)


@register_model
def resnet18(**kwargs) -> ResNet3d:
    return ResNet3d(BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model
def resnet34(**kwargs) -> ResNet3d:
    return ResNet3d(BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model
def resnet50(**kwargs) -> ResNet3d:
    return ResNet3d(Bottleneck, [3, 4, 6, 3], **kwargs)


@register_model
def resnet101(**kwargs) -> ResNet3d:
    return ResNet3d(Bottleneck, [3, 4, 23, 3], **kwargs)


@register_model
def resnet152(**kwargs) -> ResNet3d:
    return ResNet3d(Bottleneck, [3, 8, 36, 3], **kwargs)


@register_model
def resnext50(**kwargs) -> ResNet3d:
    return ResNet3d(ResNeXtBottleneck, [3, 4, 6, 3], _RESNEXT_PLANES, cardinality=32, **kwargs)


@register_model
def resnext101(**kwargs) -> ResNet3d:
    """The MARS backbone: 48.34 M parameters, 9.57 GMACs on 3x16x112x112."""
    return ResNet3d(ResNeXtBottleneck, [3, 4, 23, 3], _RESNEXT_PLANES, cardinality=32, **kwargs)


@register_model
def resnext152(**kwargs) -> ResNet3d:
    return ResNet3d(ResNeXtBottleneck, [3, 8, 36, 3], _RESNEXT_PLANES, cardinality=32, **kwargs)


@register_model
def resnet10_tiny(**kwargs) -> ResNet3d:
    """A ResNet-10 at a quarter of the width: trains on a laptop CPU in minutes (demo)."""
    return ResNet3d(BasicBlock, [1, 1, 1, 1], (16, 32, 64, 128), stem_width=16, **kwargs)
