"""Inference-time rewrites of a trained model: same outputs, less work.

BatchNorm after a convolution is an affine map per output channel, so in eval mode
it folds into the convolution's weights and a bias. ``channels_last_3d`` lets
oneDNN (CPU) and cuDNN (GPU) pick their fastest 3D convolution kernels.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def fold_conv_bn(conv: nn.Conv3d, bn: nn.BatchNorm3d) -> nn.Conv3d:
    """A convolution equal to ``bn(conv(x))`` with ``bn`` in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    fused = nn.Conv3d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
    )
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1, 1))
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused.to(conv.weight.device)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every ``convN``/``bnN`` pair and every Sequential(conv, bn) in place."""
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            _fold_sequential(module)
            continue
        for name, child in list(module.named_children()):
            if not (name.startswith("conv") and isinstance(child, nn.Conv3d)):
                continue
            bn_name = "bn" + name[len("conv") :]
            bn = getattr(module, bn_name, None)
            if isinstance(bn, nn.BatchNorm3d):
                setattr(module, name, fold_conv_bn(child, bn))
                setattr(module, bn_name, nn.Identity())
    return model


def _fold_sequential(seq: nn.Sequential) -> None:
    for index in range(len(seq) - 1):
        conv, bn = seq[index], seq[index + 1]
        if isinstance(conv, nn.Conv3d) and isinstance(bn, nn.BatchNorm3d):
            seq[index] = fold_conv_bn(conv, bn)
            seq[index + 1] = nn.Identity()


def optimize_for_inference(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy with BatchNorm folded and, optionally, channels_last_3d weights.

    Feed it inputs made contiguous with ``torch.channels_last_3d`` too
    (:func:`to_model_layout`), else every conv converts the layout back and forth.
    """
    fast = fold_batchnorm(copy.deepcopy(model).eval())
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last_3d)
    fast.uses_channels_last = channels_last
    return fast


def to_model_layout(model: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """``clips`` (B, C, T, H, W) in the memory layout ``model`` was optimised for."""
    if getattr(model, "uses_channels_last", False):
        return clips.contiguous(memory_format=torch.channels_last_3d)
    return clips
