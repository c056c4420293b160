"""X3D, R(2+1)D (18/34, bottleneck 50) / R3D / MC3 and MobileNetV2-3D: published sizes,
the shared interface."""

from __future__ import annotations

import argparse

import pytest
import torch

from mars_action.models import build_model, commands, count_macs, count_parameters
from mars_action.models.optimize import optimize_for_inference
from mars_action.models.video_resnet import mid_planes
from mars_action.models.x3d import SqueezeExcite, round_width
from mars_action.training.optim import freeze_except, trainable_children

FAMILIES = ["x3d_xs", "r2plus1d_18", "r3d_18", "mc3_18", "mobilenet3d_v2_half"]


def _close(value: float, published: float, tolerance: float = 0.05) -> bool:
    return abs(value - published) <= tolerance * published


@pytest.mark.parametrize(
    "name, params",
    [
        ("x3d_s", 3.76e6),  # X3D paper Table 3 / PySlowFast model zoo
        ("x3d_m", 3.76e6),
        ("x3d_l", 6.15e6),
        ("r2plus1d_18", 31_505_325),  # torchvision R2Plus1D_18_Weights meta
        ("r2plus1d_50", 28.11e6),  # PyTorchVideo model zoo, R(2+1)D R50
        ("r3d_18", 33_371_472),
        ("mc3_18", 11_695_440),
        ("mobilenet3d_v2", 3.12e6),  # Köpüklü et al. 2019, Table 1 (600 classes)
    ],
)
def test_parameters_match_the_published_counts(name, params):
    classes = 600 if name.startswith("mobilenet") else 400
    assert _close(count_parameters(build_model(name, num_classes=classes)), params)


def test_torchvision_layouts_are_exact():
    assert count_parameters(build_model("r2plus1d_18")) == 31_505_325
    assert count_parameters(build_model("mc3_18")) == 11_695_440
    assert mid_planes(64, 64) == 144 and mid_planes(64, 128) == 230  # torchvision's formula


def test_x3d_widths_and_depths_follow_the_paper():
    model = build_model("x3d_s")
    assert [len(model.layer1), len(model.layer2), len(model.layer3)] == [3, 5, 11]
    assert len(model.layer4) == 7 and model.conv5[0].out_channels == 432
    assert model.layer1[0].conv2.groups == 54 and model.layer4[0].conv3.out_channels == 192
    assert isinstance(model.layer1[0].se, SqueezeExcite)  # SE on every other block
    assert isinstance(model.layer1[1].se, torch.nn.Identity)
    assert len(build_model("x3d_l").layer3) == 25
    assert round_width(432, 1 / 16) == 32 and round_width(54, 1 / 16) == 8


@pytest.mark.parametrize(
    "name, clip, gmacs",
    [("x3d_s", (13, 160, 160), 1.96), ("x3d_xs", (4, 160, 160), 0.60),
     ("r2plus1d_18", (16, 112, 112), 40.52),  # X3D paper; torchvision (GFLOPS = GMACs)
     ("r2plus1d_50", (16, 256, 256), 76.45)],  # PyTorchVideo zoo, per 256x256 test view
)
def test_macs_match_the_published_counts(name, clip, gmacs):
    with torch.device("meta"):  # shapes only: no arithmetic
        model = build_model(name)
    assert _close(count_macs(model, (3, *clip)) / 1e9, gmacs)


@pytest.mark.parametrize("name", FAMILIES)
def test_interface_as_resnet3d(name):
    torch.manual_seed(0)
    model = build_model(name, in_channels=2, num_classes=5).eval()
    clip = torch.randn(2, 2, 4, 32, 32)
    with torch.inference_mode():
        logits, feats = model.forward_with_features(clip, ("layer3", "layer4", "pooled"))
        assert torch.allclose(logits, model(clip), atol=1e-5)
        assert feats["pooled"].shape == (2, model.num_features)
        assert feats["layer3"].dim() == 5 and feats["layer4"].shape[1] > 0
        fast = optimize_for_inference(model)
        folded = fast(clip.contiguous(memory_format=torch.channels_last_3d))
    assert torch.allclose(folded, logits, atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError):
        model.forward_with_features(clip, ("conv9",))
    model.reset_classifier(3)
    assert model(clip[:1]).shape == (1, 3)


@pytest.mark.parametrize("name", ["x3d_xs", "r2plus1d_18", "mobilenet3d_v2_half"])
def test_every_parameter_trains_and_gets_a_finite_gradient(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=4)
    frozen = freeze_except(model, trainable_children(0, "all"))
    assert frozen == []  # fine-tuning from index 0 trains every child of every family
    model = model.to(memory_format=torch.channels_last_3d)  # channel-wise convs: ~4x faster
    clips = torch.randn(2, 3, 4, 32, 32).contiguous(memory_format=torch.channels_last_3d)
    model(clips).logsumexp(1).mean().backward()
    for key, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), key


def test_model_info_prints_parameters_and_gmacs(capsys):
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    args = parser.parse_args(["model-info", "x3d_s", "--clip", "13x160x160"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "parameters  3.79 M" in out and "GMACs       1.96" in out
