"""3D ResNet/ResNeXt family: the paper's sizes, shapes, features, gradients."""

from __future__ import annotations

import pytest
import torch

from mars_action.errors import MarsError
from mars_action.models import build_model, count_macs, count_parameters, list_models


@pytest.mark.parametrize(
    "in_channels, params_m, gmacs", [(3, 48.34, 9.57), (2, 48.32, 8.47)]
)
def test_resnext101_matches_the_released_model_size(in_channels, params_m, gmacs):
    model = build_model("resnext101", in_channels=in_channels, num_classes=400)
    assert round(count_parameters(model) / 1e6, 2) == params_m
    assert round(count_macs(model, (in_channels, 16, 112, 112)) / 1e9, 2) == gmacs
    assert len(model.state_dict()) == 626  # as the released checkpoints, with num_batches_tracked


def test_resnext101_parameter_count_is_exact():
    assert count_parameters(build_model("resnext101")) == 48_340_816
    assert count_parameters(build_model("resnext101", in_channels=2)) == 48_318_864


@pytest.mark.parametrize("name", ["resnet10", "resnet18", "resnet50", "resnext50", "resnet10_tiny"])
def test_one_model_takes_16_and_64_frame_clips_at_any_crop(name):
    model = build_model(name, in_channels=3, num_classes=7).eval()
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 16, 112, 112)).shape == (2, 7)
        assert model(torch.randn(1, 3, 64, 96, 128)).shape == (1, 7)


def test_features_on_request():
    model = build_model("resnext50", in_channels=2, num_classes=5).eval()
    clip = torch.randn(2, 2, 16, 112, 112)
    with torch.inference_mode():
        logits, feats = model.forward_with_features(clip, ("layer3", "layer4", "pooled"))
        plain = model(clip)
    assert torch.equal(logits, plain)
    assert feats["pooled"].shape == (2, 2048)
    assert feats["layer4"].shape == (2, 2048, 1, 4, 4)
    assert feats["layer3"].shape == (2, 1024, 2, 7, 7)
    with pytest.raises(ValueError):
        model.forward_with_features(clip, ("conv9",))


def test_every_parameter_gets_a_finite_gradient():
    torch.manual_seed(0)
    model = build_model("resnet10_tiny", in_channels=3, num_classes=4)
    loss = model(torch.randn(2, 3, 8, 32, 32)).logsumexp(1).mean()
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


def test_stem_and_init_follow_the_paper():
    model = build_model("resnext101")
    assert model.conv1.kernel_size == (7, 7, 7) and model.conv1.stride == (1, 2, 2)
    assert model.conv1.bias is None
    assert model.layer1[0].conv2.groups == 32 and model.layer1[0].conv2.out_channels == 128
    assert model.layer1[0].downsample is not None  # shortcut B from 64 to 256 channels
    assert torch.all(model.bn1.weight == 1) and torch.all(model.bn1.bias == 0)
    # fan-out Kaiming: std = sqrt(2 / (out_channels * k^3))
    expected = (2.0 / (64 * 7**3)) ** 0.5
    assert abs(model.conv1.weight.std().item() - expected) / expected < 0.05


def test_reset_classifier():
    model = build_model("resnet10_tiny", num_classes=10)
    model.reset_classifier(3)
    assert model.eval()(torch.randn(1, 3, 8, 32, 32)).shape == (1, 3)


def test_unknown_name_is_a_clear_error():
    with pytest.raises(MarsError, match="unknown model 'resnet9'"):
        build_model("resnet9")
    assert "resnext101" in list_models()
    assert build_model("ResNeXt-101").num_features == 2048  # the released code's spelling
