"""Parameter and multiply-accumulate counts, as ``mars model-info`` prints them."""

from __future__ import annotations

import torch
from torch import nn


def count_parameters(model: nn.Module) -> int:
    """Every parameter of the model, trainable or not (as papers count them)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of convolutions and linear layers for one input of ``input_shape`` (C, T, H, W).

    Counted with forward hooks on one pass; BN, ReLU and pooling are left out, as the
    usual MAC counters for the paper's numbers do. The input goes where the model's
    weights are: a model built on the ``meta`` device is counted without computing.
    """
    total = 0

    def conv_hook(module: nn.Conv3d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kernel = module.weight[0].numel()  # (C_in / groups) * kt * kh * kw
        total += output.numel() * kernel

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    hooks = []
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            device = next(model.parameters()).device
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return total
