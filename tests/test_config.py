"""Typed configs from YAML plus dotted overrides."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from mars_action.config import load_config, save_config, to_dict
from mars_action.errors import MarsError


@dataclasses.dataclass
class Optim:
    lr: float = 0.1
    momentum: float = 0.9
    milestones: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Experiment:
    name: str = "x"
    epochs: int = 10
    teacher: str | None = None
    optim: Optim = dataclasses.field(default_factory=Optim)


def test_yaml_then_overrides_then_resolved_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: mars\noptim:\n  lr: 1\n")
    config = load_config(Experiment, path, ["optim.lr=0.01", "epochs=3", "optim.milestones=[2, 4]"])
    assert config.optim.lr == 0.01 and isinstance(config.optim.lr, float)
    assert (config.name, config.epochs, config.optim.milestones) == ("mars", 3, [2, 4])
    assert config.optim.momentum == 0.9 and config.teacher is None
    save_config(config, tmp_path / "resolved.yaml")
    assert yaml.safe_load((tmp_path / "resolved.yaml").read_text()) == to_dict(config)


def test_int_is_accepted_for_float_but_not_the_reverse(tmp_path):
    assert load_config(Experiment, None, ["optim.lr=1"]).optim.lr == 1.0
    with pytest.raises(MarsError, match="epochs: expected int"):
        load_config(Experiment, None, ["epochs=2.5"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lrr=1", "unknown key"),
        ("epochs", "expected KEY=VALUE"),
        ("name.x=1", "name: expected str"),
    ],
)
def test_bad_overrides_are_one_clear_error(override, message):
    with pytest.raises(MarsError, match=message):
        load_config(Experiment, None, [override])


def test_unreadable_or_invalid_yaml_names_the_file(tmp_path):
    with pytest.raises(MarsError, match="missing.yaml: cannot read config"):
        load_config(Experiment, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(MarsError, match="bad.yaml: not valid YAML"):
        load_config(Experiment, bad)
