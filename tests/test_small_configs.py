"""configs/small: every file loads as its command reads it, and MARS starts from the
flow-regression pretraining that small/pretrain.yaml writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mars_action.training import load_experiment
from mars_action.training.commands import pretrain_run_dir
from mars_action.training.losses import plan_phases

SMALL = Path(__file__).resolve().parents[1] / "configs" / "small"
# The command of each file; `mars pretrain` sets the stream itself (training/commands.py).
COMMANDS = {"flow": [], "rgb": [], "pretrain": ["stream=pretrain"], "mars": [], "mers": []}


def _load(stem: str):
    return load_experiment(SMALL / f"{stem}.yaml", COMMANDS[stem])


def test_every_small_config_loads_and_passes_the_checks():
    assert {p.stem for p in SMALL.glob("*.yaml")} == set(COMMANDS)
    for stem in COMMANDS:
        config = _load(stem)
        assert plan_phases(config), stem
        assert (config.model.arch, config.schedule.epochs, config.train.select) == (
            "resnet10_tiny", 60, "last"), stem
        assert (config.data.crop_size, config.data.clip_len, config.data.short_side) == (
            40, 16, 48), stem


def test_pretrain_regresses_the_flow_at_layer3_with_no_teacher_and_no_labels():
    config = _load("pretrain")
    assert config.stream == "pretrain" and config.distill.teacher is None
    (phase,) = plan_phases(config)
    spec = phase.objective.distill
    assert not phase.objective.ce and phase.trainable == "backbone"
    assert (spec.flow_regression, spec.flow_layer, spec.alpha) == (1.0, "layer3", 0.0)
    assert phase.objective.uses_flow and not phase.objective.uses_teacher
    rgb = _load("rgb")
    assert config.data == rgb.data and config.optim == rgb.optim
    assert config.schedule == rgb.schedule


def test_mars_starts_from_the_pretraining_and_mers_from_the_rgb_stream():
    pretrain = _load("pretrain")
    wanted = pretrain_run_dir(pretrain.name) / "checkpoints" / "best.pt"
    assert Path(_load("mars").model.pretrained) == wanted
    assert wanted == Path("runs/small_motion_pretrain/checkpoints/best.pt")
    rgb_best = Path("runs") / _load("rgb").name / "checkpoints" / "best.pt"
    assert Path(_load("mers").model.pretrained) == rgb_best
    teacher = Path("runs") / _load("flow").name / "checkpoints" / "best.pt"
    assert {Path(_load(s).distill.teacher) for s in ("mars", "mers")} == {teacher}


def test_mars_train_of_the_pretrain_file_is_still_a_pretraining():
    """Without the override (`mars train configs/small/pretrain.yaml`) the file says it."""
    assert load_experiment(SMALL / "pretrain.yaml").stream == "pretrain"


@pytest.mark.parametrize("override", ["distill.flow_regression=0", "distill.flow_layer=layer5"])
def test_a_broken_pretraining_is_refused(override):
    from mars_action.errors import MarsError

    with pytest.raises(MarsError):
        load_experiment(SMALL / "pretrain.yaml", ["stream=pretrain", override])
