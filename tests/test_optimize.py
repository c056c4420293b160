"""Inference rewrites keep the outputs."""

from __future__ import annotations

import torch

from mars_action.models import build_model
from mars_action.models.optimize import fold_batchnorm, optimize_for_inference, to_model_layout


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
