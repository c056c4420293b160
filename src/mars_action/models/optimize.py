"""Inference-time rewrites of a trained model: same outputs, less work.

BatchNorm after a convolution is an affine map per output channel, so in eval mode
it folds into the convolution's weights and a bias. ``channels_last_3d`` lets
oneDNN (CPU) and cuDNN (GPU) pick their fastest 3D convolution kernels.

On the CPU, PyTorch (2.13) sends small convolutions (batch 1, or one thread) to its
native ``slow_conv3d`` instead of oneDNN, converting channels_last_3d to contiguous
and back around each; :class:`OneDnnConv3d` calls oneDNN for all of them.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
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


class OneDnnConv3d(nn.Module):
    """An ``nn.Conv3d`` that always runs oneDNN's kernel for float32 on the CPU.

    PyTorch picks ``slow_conv3d`` over oneDNN by a rule made for 2D: at batch 1 an
    ungrouped 1x1x1 or 3x3x3 convolution with ``N*C*T*H <= 20480`` (ResNeXt-101's
    layer3 and layer4 1x1x1 convs at 16x112x112), and with one thread an unstrided
    1x1x1 convolution below batch 16. Calling the oneDNN op directly gives the same
    numbers. Elsewhere (CUDA, other dtypes, autocast) it is a plain ``F.conv3d``.
    """

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"only explicit zero padding is supported: {conv}")
        self.weight, self.bias = conv.weight, conv.bias  # (C_out, C_in / groups, kT, kH, kW)
        self.stride, self.padding = tuple(conv.stride), tuple(conv.padding)
        self.dilation, self.groups = tuple(conv.dilation), conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T, H, W)
        w, b = self.weight, self.bias
        if _onednn_applies(x):
            return torch.mkldnn_convolution(
                x, w, b, self.padding, self.stride, self.dilation, self.groups
            )
        return F.conv3d(x, w, b, self.stride, self.padding, self.dilation, self.groups)


def _onednn_applies(x: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and not torch.is_autocast_enabled("cpu")
    )


def convs_on_onednn(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Conv3d`` of ``model`` by a :class:`OneDnnConv3d`, in place."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Conv3d:
                setattr(module, name, OneDnnConv3d(child))
    return model


class SpaceToDepth(nn.Module):
    """Pad a clip (B, C, T, H, W) for a convolution of spatial stride 2, then fold each
    2x2 block of pixels into the channels: (B, 4C, T, H', W'), block-aligned with the
    strides. The first half of :class:`SpaceToDepthConv3d`."""

    def __init__(self, kernel: tuple[int, int], padding: tuple[int, int], taps: tuple[int, int]):
        super().__init__()
        self.kernel, self.padding, self.taps = kernel, padding, taps
        self.left = tuple(p + extra for p, extra in zip(padding, _lead(padding), strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        blocks = [(size + 2 * p - k) // 2 + taps  # the blocks the outputs read
                  for size, p, k, taps in zip((height, width), self.padding, self.kernel,
                                              self.taps, strict=True)]
        x = F.pad(x, (self.left[1], 2 * blocks[1] - width - self.left[1],
                      self.left[0], 2 * blocks[0] - height - self.left[0]))
        return fold_blocks(x)


def _lead(padding: tuple[int, int]) -> list[int]:
    """Zero rows/columns added to an odd left padding so that pixel blocks line up."""
    return [p % 2 for p in padding]


def fold_blocks(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, 2h, 2w) -> (N, 4C, T, h, w): each 2x2 block of pixels into the channels,
    channel ``c * 4 + 2 * dy + dx``; clips and kernels are folded alike."""
    batch, channels, frames, height, width = x.shape
    x = x.reshape(batch, channels, frames, height // 2, 2, width // 2, 2)
    return x.permute(0, 1, 4, 6, 2, 3, 5).reshape(batch, channels * 4, frames, height // 2,
                                                  width // 2)


class SpaceToDepthConv3d(nn.Module):
    """A convolution of spatial stride 2 rewritten as an unstrided one on 2x2 pixel blocks.

    A stem such as ResNet3d's (7x7x7, stride (1, 2, 2), 3 input channels) feeds int8
    kernels badly: VNNI multiplies 4 int8 values at a time along the input channels,
    and 3 channels leave most of each step unused. Folding every 2x2 block of pixels
    into the channels (3 -> 12) and the kernel alike (7x7 -> 4x4 blocks, with one
    zero tap) computes the same sums: the outputs equal the original convolution's up
    to float rounding, and in int8 with per-channel weights exactly the same integers.
    Measured on this project's EPYC (one thread, 16x112x112, int8): 7.2 -> 4.6 ms a
    clip. In float32 or bfloat16 it is slower (oneDNN already has a kernel for few
    channels), so only :func:`~mars_action.inference.precision.quantize_int8` uses it.
    """

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        if not _strided_by_two(conv):
            raise ValueError(f"space-to-depth needs spatial stride 2, no groups, no dilation: "
                             f"{conv}")
        kernel, padding = tuple(conv.kernel_size[1:]), tuple(conv.padding[1:])
        # the kernel starts with ``lead`` zero taps (the left padding made even) and is
        # padded to an even length: ``taps`` blocks
        lead = _lead(padding)
        taps = tuple((k + extra + 1) // 2 for k, extra in zip(kernel, lead, strict=True))
        weight = fold_blocks(F.pad(conv.weight.detach(),
                                   (lead[1], 2 * taps[1] - kernel[1] - lead[1],
                                    lead[0], 2 * taps[0] - kernel[0] - lead[0])))
        out_c, in_c, k_t = weight.shape[0], weight.shape[1] // 4, weight.shape[2]
        self.fold = SpaceToDepth(kernel, padding, taps)
        self.conv = nn.Conv3d(in_c * 4, out_c, (k_t, *taps), stride=(conv.stride[0], 1, 1),
                              padding=(conv.padding[0], 0, 0), bias=conv.bias is not None)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            if conv.bias is not None:
                self.conv.bias.copy_(conv.bias)
        self.train(conv.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        return self.conv(self.fold(x))


def space_to_depth_stem(model: nn.Module, max_channels: int = 4) -> nn.Module:
    """Rewrite, in place, the first convolution as a :class:`SpaceToDepthConv3d` when it has
    spatial stride 2 and at most ``max_channels`` inputs (RGB or flow); else leave it."""
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, nn.Conv3d):
                if child.in_channels <= max_channels and _strided_by_two(child):
                    setattr(module, name, SpaceToDepthConv3d(child))
                return model
    return model


def _strided_by_two(conv: nn.Conv3d) -> bool:
    return (tuple(conv.stride[1:]) == (2, 2) and conv.groups == 1
            and tuple(conv.dilation) == (1, 1, 1))


def optimize_for_inference(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy: BatchNorm folded, convs on oneDNN, optionally channels_last_3d.

    Feed a channels_last model inputs made contiguous with ``torch.channels_last_3d``
    too (:func:`to_model_layout`), else every conv converts the layout back and forth.
    """
    fast = convs_on_onednn(fold_batchnorm(copy.deepcopy(model).eval()))
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last_3d)
    fast.uses_channels_last = channels_last
    return fast


def to_model_layout(model: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """``clips`` (B, C, T, H, W) in the memory layout ``model`` was optimised for."""
    if getattr(model, "uses_channels_last", False):
        return clips.contiguous(memory_format=torch.channels_last_3d)
    return clips
