"""Experiment configs: YAML plus overrides, the released recipe, one clear error per bad
value, and every file under configs/ parsing into a plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from mars_action.errors import MarsError
from mars_action.models.registry import canonical_name
from mars_action.training import load_experiment, plan_phases
from mars_action.training.build import make_meta

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_yaml_overrides_and_recipes(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("stream: flow\ndata:\n  clip_len: 64\nmodel:\n  arch: resnet10_tiny\n")
    config = load_experiment(path, ["schedule.epochs=3"])
    assert (config.name, config.schedule.epochs, config.optim.lr) == ("exp", 3, 0.01)
    assert (config.optim.momentum, config.optim.dampening, config.optim.weight_decay) == (
        0.9,
        0.0,
        5e-4,
    )
    released = load_experiment(path, ["recipe=released", "model.pretrained=k.pt"])
    assert (released.optim.lr, released.optim.weight_decay, released.optim.dampening) == (
        1e-3,
        1e-5,
        0.9,
    )
    assert released.model.frozen_bn == "update"
    assert not released.data.scale_flow_vectors and config.data.scale_flow_vectors
    assert make_meta(config, ["a", "b"]).flow_vectors_scaled
    assert not make_meta(released, ["a", "b"]).flow_vectors_scaled
    scratch = load_experiment(path, ["recipe=released", "optim.lr=0.05"])
    assert (scratch.optim.lr, scratch.optim.weight_decay) == (0.05, 1e-3)  # explicit value wins


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["stream=mars"], "distill.teacher"),
        (
            [
                "stream=mers",
                "distill.teacher=t.pt",
                "mers.classifier_epochs=5",
                "schedule.epochs=5",
            ],
            "classifier_epochs",
        ),
        (["stream=mers", "distill.teacher=t.pt", "distill.feature=layer3"], "pooled"),
        (["stream=mars", "distill.teacher=t.pt", "distill.hint=pooled"], "distill.hint"),
        (["stream=rgbb"], "stream"),
        (["model.ft_begin_index=6"], "ft_begin_index"),
        (["train.amp=fp8"], "train.amp"),
    ],
)
def test_bad_configs_are_one_clear_error(overrides, message):
    with pytest.raises(MarsError, match=message):
        load_experiment(None, overrides)


def test_every_config_in_configs_parses():
    paths = sorted(CONFIGS.rglob("*.yaml"))
    assert len(paths) >= 64 + 4
    for path in paths:
        config = load_experiment(path)
        assert config.optim.lr and plan_phases(config), path
        assert canonical_name(config.model.arch)  # the architecture exists
    paper = {p.name for p in (CONFIGS / "paper").glob("*.yaml")}
    assert paper == {p.name for p in (CONFIGS / "released").glob("*.yaml")}
    assert {"ucf101_mars_16f.yaml", "kinetics_flow_64f.yaml", "minikinetics_mers_16f.yaml"} <= paper
