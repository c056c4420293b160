"""The demo's recipe as training configs: valid for the training stage, teacher wiring right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mars_action.data.synthetic import MANIFEST
from mars_action.demo.settings import (
    PRETRAIN,
    RGB_CONTINUED,
    STREAMS,
    DemoSettings,
    Layout,
    RealData,
    stream_config,
    video_source,
)
from mars_action.training import resolve
from mars_action.training.losses import plan_phases


@pytest.mark.parametrize("stream", (*STREAMS, PRETRAIN))
def test_each_stream_config_passes_the_training_checks(stream):
    layout = Layout(Path("/demo"))
    config = resolve(stream_config(stream, DemoSettings.full(), layout))
    assert config.stream == stream and config.model.arch == "resnet10_tiny"
    assert config.data.format == "manifest" and config.data.annotations == f"/demo/data/{MANIFEST}"
    assert config.data.frame_root == "/demo/frames" and config.data.crop_size == 28
    assert config.optim.lr == 0.1 and config.schedule.scheduler == "cosine"
    distilled = stream in ("mars", "mers")
    assert config.distill.teacher == (str(layout.checkpoint("flow")) if distilled else None)


def test_mars_distils_layer3_maps_and_mers_the_pooled_feature_with_a_layer3_hint():
    settings, layout = DemoSettings.full(), Layout(Path("/demo"))
    mars, mers = (stream_config(s, settings, layout).distill for s in ("mars", "mers"))
    assert (mars.feature, mars.pool_maps, mars.alpha, mars.hint) == (
        "layer3", False, settings.alpha, None)
    assert (mers.feature, mers.pool_maps, mers.hint) == ("pooled", True, "layer3")


def test_mars_starts_from_the_pretraining_step_and_mers_from_the_rgb_stream():
    layout, settings = Layout(Path("/demo")), DemoSettings.full()
    starts = {s: stream_config(s, settings, layout).model.pretrained for s in settings.trainings}
    rgb, pretrain = str(layout.checkpoint("rgb")), str(layout.checkpoint(PRETRAIN))
    assert starts == {"flow": None, "rgb": None, PRETRAIN: None, "mars": pretrain, "mers": rgb}
    assert pretrain == "/demo/runs/pretrain/checkpoints/best.pt"
    assert settings.trainings == ("flow", "rgb", PRETRAIN, "mers", "mars")
    assert settings.streams == STREAMS  # the step is trained, never tested or tabled
    scratch = DemoSettings(settings.source, from_rgb=(), from_pretrain=())
    assert scratch.trainings == STREAMS
    assert {stream_config(s, scratch, layout).model.pretrained for s in ("mars", "mers")} == {None}
    before = DemoSettings(settings.source, from_rgb=("mers", "mars"), from_pretrain=())
    assert stream_config("mars", before, layout).model.pretrained == rgb


@pytest.mark.parametrize("preset", [DemoSettings.full, DemoSettings.quick])
def test_the_pretraining_step_regresses_flow_with_no_teacher_for_the_streams_epochs(preset):
    settings, layout = preset(), Layout(Path("/demo"))
    config = resolve(stream_config(PRETRAIN, settings, layout))
    assert (config.stream, config.name, config.distill.teacher) == ("pretrain", "demo_pretrain",
                                                                    None)
    (phase,) = plan_phases(config)
    assert not phase.objective.ce and not phase.objective.uses_teacher
    spec = phase.objective.distill
    assert (spec.flow_regression, spec.flow_layer, spec.alpha) == (1.0, "layer3", 0.0)
    mars = stream_config("mars", settings, layout)
    assert config.schedule.epochs == mars.schedule.epochs == settings.epochs
    assert config.data == resolve(mars).data  # the same training videos and clips


def test_seeds_change_training_not_the_validation_split():
    layout = Layout(Path("/demo"))
    configs = [stream_config("rgb", DemoSettings(DemoSettings.full().source, seed=seed), layout)
               for seed in (0, 1)]
    assert configs[0].train.seed != configs[1].train.seed
    assert configs[0].data.seed == configs[1].data.seed


def test_real_data_and_a_shared_store():
    source = RealData(format="ucf101", root="/data/ucf", short_side=64)
    layout = Layout(Path("/bench/seed1"), Path("/bench/store"))
    config = stream_config("flow", DemoSettings(source, crop_size=56), layout)
    assert (config.data.format, config.data.root, config.data.annotations) == (
        "ucf101", "/data/ucf", None)
    assert config.data.frame_root == "/bench/store/frames" and config.data.short_side == 64
    assert layout.run("flow") == Path("/bench/seed1/runs/flow")
    assert video_source(DemoSettings(source), layout) is source


def test_settings_are_plain_json():
    data = json.loads(json.dumps(DemoSettings.full().to_dict()))
    assert data["source_kind"] == "SynthSpec" and data["source"]["height"] == 32
    assert data["alpha"] == DemoSettings.full().alpha


def test_the_rgb_control_is_an_rgb_training_from_the_rgb_stream():
    layout = Layout(Path("/demo"))
    settings = DemoSettings(DemoSettings.full().source, rgb_control=True)
    assert settings.streams == (*STREAMS, RGB_CONTINUED)
    assert DemoSettings.full().streams == STREAMS
    config = resolve(stream_config(RGB_CONTINUED, settings, layout))
    assert (config.stream, config.name) == ("rgb", "demo_rgb_continued")
    assert config.model.pretrained == str(layout.checkpoint("rgb"))
    assert config.distill.teacher is None
    assert layout.checkpoint(RGB_CONTINUED) == Path("/demo/runs/rgb_continued/checkpoints/best.pt")
