"""The demo's recipe as training configs: valid for the training stage, teacher wiring right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mars_action.data.synthetic import MANIFEST
from mars_action.demo.settings import (
    STREAMS,
    DemoSettings,
    Layout,
    RealData,
    stream_config,
    video_source,
)
from mars_action.training import resolve


@pytest.mark.parametrize("stream", STREAMS)
def test_each_stream_config_passes_the_training_checks(stream):
    layout = Layout(Path("/demo"))
    config = resolve(stream_config(stream, DemoSettings.full(), layout))
    assert config.stream == stream and config.model.arch == "resnet10_tiny"
    assert config.data.format == "manifest" and config.data.annotations == f"/demo/data/{MANIFEST}"
    assert config.data.frame_root == "/demo/frames" and config.data.crop_size == 28
    assert config.optim.lr == 0.1 and config.schedule.scheduler == "cosine"
    distilled = stream in ("mars", "mers")
    assert config.distill.teacher == (str(layout.checkpoint("flow")) if distilled else None)


def test_mars_distils_layer3_maps_and_mers_the_pooled_feature():
    settings, layout = DemoSettings.full(), Layout(Path("/demo"))
    mars, mers = (stream_config(s, settings, layout).distill for s in ("mars", "mers"))
    assert (mars.feature, mars.pool_maps, mars.alpha) == ("layer3", False, settings.alpha)
    assert (mers.feature, mers.pool_maps) == ("pooled", True)


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
