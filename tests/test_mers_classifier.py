"""MERS ``mers.classifier_init``: the classifier starts random, or as the Flow teacher's."""

from __future__ import annotations

import pytest
import torch
from test_training import ClipSet, save_teacher, tiny_config

from mars_action.errors import MarsError
from mars_action.models import build_model, load_checkpoint
from mars_action.training import train
from mars_action.training.build import classifier_from_teacher


def test_classifier_from_teacher_copies_it_and_refuses_another_shape(tmp_path):
    path = save_teacher(tmp_path)
    teacher, _ = load_checkpoint(path)
    model = build_model("resnet10_tiny", num_classes=3)
    assert not torch.equal(model.fc.weight, teacher.fc.weight)
    classifier_from_teacher(model, teacher, path)
    assert torch.equal(model.fc.weight, teacher.fc.weight)
    assert torch.equal(model.fc.bias, teacher.fc.bias)
    with pytest.raises(MarsError, match="flow.pt: mers.classifier_init teacher"):
        classifier_from_teacher(build_model("resnet10_tiny", num_classes=4), teacher, path)


@pytest.mark.parametrize("init", ["random", "teacher"])
def test_mers_run_keeps_the_teachers_classifier_through_the_mimic_phase(tmp_path, init):
    """One mimic epoch (with KD through the frozen classifier), then a classifier epoch at
    a negligible lr: the final classifier is the teacher's only with ``teacher``."""
    path = save_teacher(tmp_path)
    teacher, _ = load_checkpoint(path)
    config = tiny_config("mers", "distill.kd=1", f"mers.classifier_init={init}",
                         "mers.classifier_lr=0.000000001", teacher=path)
    summary = train(config, tmp_path / init, train_set=ClipSet(8), val_set=ClipSet(3))
    model, _ = load_checkpoint(summary.last_checkpoint)
    gap = float((model.fc.weight - teacher.fc.weight).detach().abs().max())
    if init == "teacher":
        assert gap < 1e-4  # (the classifier epoch moves it by ~1e-6)
    else:
        assert gap > 1e-2


def test_unknown_classifier_init_is_one_line_naming_the_key(tmp_path):
    with pytest.raises(MarsError, match="mers.classifier_init: 'zero' is not one of random"):
        tiny_config("mers", "mers.classifier_init=zero", teacher=save_teacher(tmp_path))
