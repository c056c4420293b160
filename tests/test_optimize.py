"""Inference rewrites keep the outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mars_action.models import build_model
from mars_action.models.optimize import (
    SpaceToDepthConv3d,
    fold_batchnorm,
    optimize_for_inference,
    space_to_depth_stem,
    to_model_layout,
)


def _trained_like(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(name, num_classes=6)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.3, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.2)
    return model.eval()


def test_folding_removes_every_batchnorm_and_keeps_outputs():
    model = _trained_like("resnext50")
    fast = optimize_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules())  # a copy
    clip = torch.randn(2, 3, 16, 64, 64)
    with torch.inference_mode():
        ref = model(clip)
        out = fast(to_model_layout(fast, clip))
    assert (out - ref).abs().max().item() < 1e-3 * max(1.0, ref.abs().max().item())


def test_basic_block_models_fold_too():
    model = _trained_like("resnet18")
    folded = fold_batchnorm(_trained_like("resnet18"))
    clip = torch.randn(1, 3, 8, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(folded(clip), model(clip), atol=1e-4)


@pytest.mark.parametrize(
    ("kernel", "padding", "stride", "size"),
    [((7, 7, 7), (3, 3, 3), (1, 2, 2), (8, 56, 56)),  # ResNet3d's stem
     ((3, 7, 7), (1, 3, 3), (1, 2, 2), (4, 29, 31)),  # odd sides
     ((3, 3, 3), (1, 1, 1), (2, 2, 2), (5, 28, 27)),  # temporal stride too
     ((1, 4, 4), (0, 0, 2), (1, 2, 2), (2, 17, 18))],  # even kernel, uneven padding
)
def test_space_to_depth_conv_equals_the_strided_conv(kernel, padding, stride, size):
    torch.manual_seed(0)
    conv = nn.Conv3d(3, 8, kernel, stride=stride, padding=padding).eval()
    blocks = SpaceToDepthConv3d(conv)
    assert blocks.conv.in_channels == 12 and blocks.conv.stride[1:] == (1, 1)
    assert not blocks.training
    clips = torch.randn(2, 3, *size)
    with torch.no_grad():
        want, got = conv(clips), blocks(clips)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5)


def test_space_to_depth_stem_rewrites_only_a_strided_first_conv_on_few_channels():
    model = build_model("resnet10_tiny", num_classes=4).eval()
    space_to_depth_stem(model)
    assert isinstance(model.conv1, SpaceToDepthConv3d)
    assert sum(isinstance(m, SpaceToDepthConv3d) for m in model.modules()) == 1
    wide = nn.Sequential(nn.Conv3d(16, 8, 3, stride=(1, 2, 2), padding=1))
    assert isinstance(space_to_depth_stem(wide)[0], nn.Conv3d)  # 16 channels: kept
