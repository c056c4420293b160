"""Schedules that fit the data: length in steps, and last-epoch checkpoint selection."""

from __future__ import annotations

import pytest
import torch
from test_training import ClipSet, tiny_config

from mars_action.errors import MarsError
from mars_action.training import train
from mars_action.training.config import epochs_for_steps


def test_steps_become_whole_epochs_of_the_training_set():
    config = tiny_config("rgb", "schedule.steps=100", "data.batch_size=8")
    assert epochs_for_steps(config, 80).schedule.epochs == 10  # 10 steps an epoch
    assert epochs_for_steps(config, 96).schedule.epochs == 9  # 12 steps an epoch: 108
    assert epochs_for_steps(config, 8000).schedule.epochs == 1
    accum = tiny_config("rgb", "schedule.steps=100", "data.batch_size=8", "train.grad_accum=2")
    assert epochs_for_steps(accum, 80).schedule.epochs == 20
    plain = tiny_config("rgb", "schedule.epochs=7")
    assert epochs_for_steps(plain, 80) is plain


def test_sequential_mers_keeps_a_mimic_epoch():
    config = tiny_config("mers", "schedule.steps=1", "mers.classifier_epochs=3", teacher="t.pt")
    assert epochs_for_steps(config, 80).schedule.epochs == 4


def test_a_run_in_steps_and_selected_on_its_last_epoch(tmp_path):
    config = tiny_config("rgb", "schedule.steps=6", "train.select=last")
    summary = train(config, tmp_path / "run", train_set=ClipSet(8), val_set=ClipSet(3))
    assert summary.epochs == 3 and len(summary.history) == 3  # 2 steps an epoch
    assert summary.best_epoch == 3
    best = torch.load(summary.best_checkpoint, weights_only=False)
    last = torch.load(summary.last_checkpoint, weights_only=False)
    key = next(k for k in best["state_dict"] if k.endswith("fc.weight"))
    torch.testing.assert_close(best["state_dict"][key], last["state_dict"][key])
    assert "epochs: 3" in (tmp_path / "run" / "config.yaml").read_text()


@pytest.mark.parametrize("override, message", [("train.select=first", "train.select"),
                                               ("schedule.steps=-1", "schedule.steps")])
def test_bad_schedule_settings(override, message):
    with pytest.raises(MarsError, match=message):
        tiny_config("rgb", override)


def test_crop_scales_reach_the_training_transform(tmp_path):
    from mars_action.data.synthetic import generate_dataset, spec_with_classes
    from mars_action.training.datasets import build_datasets

    spec = spec_with_classes(2, videos_per_class=2, num_frames=10, height=32, width=32)
    generate_dataset(tmp_path, spec, progress=False)
    config = tiny_config("rgb", "data.format=manifest", f"data.root={tmp_path}",
                         f"data.annotations={tmp_path / 'manifest.csv'}",
                         "data.crop_scales=[1.0, 0.84]", "data.val_fraction=0")
    train_set, _ = build_datasets(config.data, ("rgb",))
    assert train_set.transform.scales == (1.0, 0.84)
    with pytest.raises(MarsError, match="data.crop_scales"):
        tiny_config("rgb", "data.crop_scales=[1.5]")
