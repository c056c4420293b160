"""Weights from torchvision, PyTorchVideo (X3D, R(2+1)D) and Hara's 3D-ResNets: key tables
both ways, the real libraries' key names (fixtures written from their sources), ``mars convert``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from mars_action.errors import MarsError
from mars_action.models import build_model, commands, load_checkpoint
from mars_action.models.foreign import SOURCES, Rename, detect_source, rename
from mars_action.training.build import build_student
from mars_action.training.config import load_experiment

FIXTURES = Path(__file__).parent / "fixtures"


def _theirs(model: torch.nn.Module, source: str) -> dict[str, torch.Tensor]:
    """Our weights renamed to ``source``'s layout by the inverse of its table."""
    state = rename(model.state_dict(), SOURCES[source].rules, reverse=True)
    if source == "pytorchvideo":  # its projection is a 1x1x1 conv
        key = "blocks.5.pool.post_conv.weight"
        state[key] = state[key][..., None, None, None]
    return state


def _fixture_state(name: str) -> dict[str, torch.Tensor]:
    """Random weights with the key names and shapes of a real library's model."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for line in (FIXTURES / f"{name}_keys.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape = line.split()
        dims = () if shape == "-" else tuple(int(v) for v in shape.split("x"))
        state[key] = torch.randn(dims, generator=gen) if dims else torch.tensor(3)
    return state


def test_a_rule_renames_both_ways():
    rule = Rename("layer{l}.{b}.conv{n}.0.0.", "layer{l}.{b}.conv{n}s.")
    assert rule.apply("layer1.0.conv2.0.0.weight") == "layer1.0.conv2s.weight"
    assert rule.apply("layer1.0.conv2s.weight", reverse=True) == "layer1.0.conv2.0.0.weight"
    assert rule.apply("layer1.0.conv2.1.weight") is None


@pytest.mark.parametrize(
    "source, arch",
    [("torchvision", "r3d_18"), ("torchvision", "mc3_18"), ("torchvision", "r2plus1d_18"),
     ("torchvision", "r2plus1d_34"), ("pytorchvideo", "x3d_s"), ("pytorchvideo", "x3d_l"),
     ("hara", "resnet18"), ("hara", "resnet50"), ("pytorchvideo_r2plus1d", "r2plus1d_50")],
)
def test_tables_map_each_layout_back_exactly(source, arch):
    model = build_model(arch, num_classes=7)
    theirs = _theirs(model, source)
    assert set(theirs).isdisjoint(model.state_dict()) or source == "torchvision"
    assert detect_source(theirs) == source
    if SOURCES[source].arch is not None:
        assert SOURCES[source].arch(theirs) == arch
    mapped = SOURCES[source].filter_fn(theirs)
    ours = model.state_dict()
    assert list(mapped) == list(ours)
    assert all(torch.equal(mapped[k], ours[k]) for k in ours)


@pytest.mark.parametrize(
    "fixture, arch, first_conv",
    [("torchvision_r2plus1d_18", "r2plus1d_18", "stem.0.weight"),
     ("pytorchvideo_x3d_s", "x3d_s", "blocks.0.conv.conv_t.weight")],
    # PyTorchVideo's R(2+1)D R50 file: test_models_r2plus1d_bottleneck.py
)
def test_the_real_libraries_key_names_load(tmp_path, fixture, arch, first_conv):
    state = _fixture_state(fixture)
    path = tmp_path / f"{fixture}.pth"
    wrapper = {"model_state": state} if fixture.startswith("pytorchvideo") else state
    torch.save(wrapper, path)
    model, meta = load_checkpoint(path)  # every key used, every shape right, or an error
    assert meta.arch == arch and meta.num_classes == 400 and meta.in_channels == 3
    first = next(v for v in model.state_dict().values() if v.dim() == 5)
    assert torch.equal(first, state[first_conv])
    with torch.inference_mode():
        assert model.eval()(torch.randn(1, 3, 4, 32, 32)).shape == (1, 400)


def test_convert_and_pretrained_accept_a_foreign_file(tmp_path, capsys):
    source = tmp_path / "r3d_18-kinetics.pth"
    released = build_model("r3d_18")
    torch.save(_theirs(released, "torchvision"), source)
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    args = parser.parse_args(["convert", str(source), str(tmp_path / "r3d.pt")])
    assert args.handler(args) == 0
    assert "r3d_18, rgb stream, rgb input, 400 classes" in capsys.readouterr().out
    config = load_experiment(None, ["model.arch=r3d_18", f"model.pretrained={source}"])
    student = build_student(config, num_classes=5)  # a new classifier for 5 classes
    assert student.fc.out_features == 5
    assert torch.equal(student.stem.conv1.weight, released.stem.conv1.weight)
    assert torch.equal(student.layer4[1].conv2.weight, released.layer4[1].conv2.weight)


def test_unknown_layout_is_one_clear_line(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, path)
    with pytest.raises(MarsError, match=r"odd.pth: weights of an unknown layout"):
        load_checkpoint(path)
