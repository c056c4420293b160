"""Hara's 3D-ResNets with shortcut A (resnet-18/34-kinetics.pth): the parameter-free
shortcut computed as Hara's code does, the shortcut read from the keys, the real file's
key names (a fixture written from the library's source) loading exactly."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mars_action.errors import MarsError
from mars_action.models import build_model, commands, load_checkpoint
from mars_action.models.foreign import SOURCES, hara_arch, hara_shortcut, rename
from mars_action.models.resnet3d import ZeroPadShortcut
from mars_action.training.build import build_student
from mars_action.training.config import load_experiment

FIXTURES = Path(__file__).parent / "fixtures"


def _hara_layout(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our weights as Hara's DataParallel-wrapped model saves them (``module.`` keys)."""
    return rename(model.state_dict(), SOURCES["hara"].rules, reverse=True)


def _fixture_state(name: str) -> dict[str, torch.Tensor]:
    """Random weights with the key names and shapes of a real library's model."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for line in (FIXTURES / f"{name}_keys.txt").read_text().splitlines():
        if not line.startswith("#"):
            key, shape = line.split()
            state[key] = torch.randn(tuple(int(v) for v in shape.split("x")), generator=gen)
    return state


def _hara_shortcut(x: torch.Tensor, planes: int, stride: int) -> torch.Tensor:
    """Hara's ``downsample_basic_block``, as its source describes it: an average pool of
    kernel 1 and the stride, then ``planes - C`` zero channels appended."""
    out = F.avg_pool3d(x, kernel_size=1, stride=stride)
    pads = torch.zeros(out.shape[0], planes - out.shape[1], *out.shape[2:])
    return torch.cat([out, pads], dim=1)


def test_shortcut_a_subsamples_and_appends_zero_channels():
    x = torch.arange(2 * 3 * 5 * 7 * 6, dtype=torch.float32).reshape(2, 3, 5, 7, 6)
    out = ZeroPadShortcut(8, stride=2)(x)
    assert out.shape == (2, 8, 3, 4, 3)  # ceil(5/2), ceil(7/2), ceil(6/2)
    assert torch.equal(out[:, :3], x[:, :, ::2, ::2, ::2])
    assert out[0, 0, 1, 2, 1].item() == x[0, 0, 2, 4, 2].item() == 2 * 42 + 4 * 6 + 2
    assert torch.count_nonzero(out[:, 3:]) == 0
    assert torch.equal(out, _hara_shortcut(x, 8, 2))
    assert list(ZeroPadShortcut(8, 2).parameters()) == []


def _bn(x: torch.Tensor, state: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return F.batch_norm(x, state[f"{name}.running_mean"], state[f"{name}.running_var"],
                        state[f"{name}.weight"], state[f"{name}.bias"], eps=1e-5)


def _hara_forward(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Hara's ResNet-18, shortcut A, in eval mode, written from its source with
    functional ops on a ``module.``-keyed state dict."""
    s = {k.removeprefix("module."): v for k, v in state.items()}
    x = F.relu(_bn(F.conv3d(x, s["conv1.weight"], stride=(1, 2, 2), padding=3), s, "bn1"))
    x = F.max_pool3d(x, kernel_size=3, stride=2, padding=1)
    for layer, planes in enumerate((64, 128, 256, 512), 1):
        for block in range(2):
            p = f"layer{layer}.{block}"
            stride = 2 if layer > 1 and block == 0 else 1
            out = F.relu(_bn(F.conv3d(x, s[f"{p}.conv1.weight"], stride=stride, padding=1),
                             s, f"{p}.bn1"))
            out = _bn(F.conv3d(out, s[f"{p}.conv2.weight"], padding=1), s, f"{p}.bn2")
            residual = _hara_shortcut(x, planes, stride) if x.shape[1] != planes else x
            x = F.relu(out + residual)
    return F.linear(x.mean(dim=(2, 3, 4)), s["fc.weight"], s["fc.bias"])


def test_real_key_names_load_exactly_and_compute_as_hara(tmp_path):
    state = _fixture_state("hara_resnet18_shortcut_a")
    assert not any("downsample" in k for k in state)
    for key in [k for k in state if k.endswith("running_var")]:
        state[key] = state[key].abs() + 0.5  # a variance is positive
    path = tmp_path / "resnet-18-kinetics.pth"
    torch.save({"epoch": 200, "arch": "resnet-18", "state_dict": state}, path)
    model, meta = load_checkpoint(path)  # every key used, none missing, or an error
    assert meta.arch == "resnet18_a" and meta.num_classes == 400 and meta.in_channels == 3
    assert meta.provenance["epoch"] == 200
    ours = model.state_dict()
    assert all(torch.equal(ours[k.removeprefix("module.")], v) for k, v in state.items())
    clip = torch.randn(1, 3, 8, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = _hara_forward(state, clip)
        assert torch.allclose(model(clip), expected, rtol=1e-4, atol=1e-4 * expected.abs().max())


def test_hara_layout_of_our_model_loads_into_the_shortcut_a_arch(tmp_path, capsys):
    released = build_model("resnet18_a", num_classes=7)
    path = tmp_path / "resnet18_a.pth"
    torch.save(_hara_layout(released), path)  # a bare state dict, keys module.*
    model, meta = load_checkpoint(path, arch="resnet-18")  # the depth; keys tell the shortcut
    assert meta.arch == "resnet18_a" and meta.num_classes == 7
    assert all(torch.equal(v, released.state_dict()[k]) for k, v in model.state_dict().items())

    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    args = parser.parse_args(["convert", str(path), str(tmp_path / "ours.pt"),
                              "--arch", "resnet18"])
    assert args.handler(args) == 0
    assert "resnet18_a, rgb stream, rgb input, 7 classes" in capsys.readouterr().out
    config = load_experiment(None, ["model.arch=resnet18_a", f"model.pretrained={path}"])
    student = build_student(config, num_classes=5)  # a new classifier for 5 classes
    assert student.fc.out_features == 5
    assert torch.equal(student.layer2[0].conv1.weight, released.layer2[0].conv1.weight)


@pytest.mark.parametrize("arch, depth, shortcut", [
    ("resnet18_a", "resnet18", "A"), ("resnet34_a", "resnet34", "A"),
    ("resnet18", "resnet18", "B"), ("resnext101", "resnext101", "B"),
])
def test_the_shortcut_is_read_from_the_keys(arch, depth, shortcut):
    with torch.device("meta"):  # shapes only, nothing computed
        model = build_model(arch, num_classes=5)
    ours = SOURCES["hara"].filter_fn(_hara_layout(model))
    assert hara_shortcut(ours) == shortcut
    assert hara_arch(depth, ours, {}) == arch
    assert hara_arch(arch, ours, {}) == arch  # an explicit name is kept when the keys agree


def test_a_declared_shortcut_wins_and_an_unknown_variant_is_one_line():
    with torch.device("meta"):
        ours = build_model("resnet50", num_classes=5).state_dict()
    assert hara_arch("resnet18", ours, {"shortcut_type": "A"}) == "resnet18_a"
    without = {k: v for k, v in ours.items() if ".downsample." not in k}
    assert hara_shortcut(without) == "A"
    with pytest.raises(MarsError, match=r"resnet50 with shortcut A .* resnet18_a, resnet34_a"):
        hara_arch("resnet50", without, {})
