"""The synthetic motion dataset: deterministic, the promised shapes, motion that matches labels."""

from __future__ import annotations

import csv
import dataclasses

import av
import cv2
import numpy as np
import pytest

from mars_action.data.synthetic import (
    DIRECTIONS,
    MANIFEST,
    MOTION_CLASSES,
    SynthSpec,
    generate_dataset,
    load_spec,
    render_video,
    spec_with_classes,
    video_plan,
)
from mars_action.errors import MarsError

# Only the subject moves: no pan, distractors, lighting change or noise.
CLEAN = dict(max_pan=0.0, max_distractors=0, lighting=0.0, noise=0.0, speed=(1.5, 2.0))


def _mean_flow_field(video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Farneback flow of every pair, (T-1, H, W, 2), and the mask of moving pixels."""
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in video]
    flows = np.stack([
        cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 9, 3, 5, 1.1, 0)
        for a, b in zip(gray[:-1], gray[1:], strict=True)
    ])
    return flows, np.linalg.norm(flows, axis=-1) > 0.3


def _curl_and_divergence(flow: np.ndarray, moving: np.ndarray) -> tuple[float, float]:
    """Sums of (r x u) and (r . u) about the moving region's centre, over all pairs."""
    curl = divergence = 0.0
    for field, mask in zip(flow, moving, strict=True):
        ys, xs = np.nonzero(mask)
        rx, ry = xs - xs.mean(), ys - ys.mean()
        fx, fy = field[ys, xs, 0], field[ys, xs, 1]
        curl += float(np.sum(rx * fy - ry * fx))  # > 0: clockwise on screen (y points down)
        divergence += float(np.sum(rx * fx + ry * fy))
    return curl, divergence


def test_same_seed_same_video_and_other_seed_or_index_differs():
    spec = SynthSpec(height=48, width=56, num_frames=6)
    first = render_video(spec, 2, 3)
    assert np.array_equal(first, render_video(spec, 2, 3))
    assert not np.array_equal(first, render_video(spec, 2, 4))
    assert not np.array_equal(first, render_video(dataclasses.replace(spec, seed=1), 2, 3))


def test_render_shape_dtype_and_range_use():
    video = render_video(SynthSpec(height=40, width=72, num_frames=9), 0, 0)
    assert video.shape == (9, 40, 72, 3) and video.dtype == np.uint8
    assert video.std() > 10  # textured, not a flat image


@pytest.mark.parametrize("name", [n for n in MOTION_CLASSES if n.startswith("move_")])
def test_translation_moves_the_way_the_label_says(name):
    spec = SynthSpec(classes=(name,), num_frames=8, **CLEAN)
    allowed = np.array(DIRECTIONS[name.removeprefix("move_")])  # (K, 2) unit vectors
    for index in range(3):
        flow, moving = _mean_flow_field(render_video(spec, 0, index))
        mean = flow[moving].mean(axis=0)
        assert (allowed @ mean).max() / np.linalg.norm(mean) > 0.9
        assert 0.7 < np.linalg.norm(mean) < 3.0  # moving, and inside what TV-L1 resolves


def test_classes_are_mirror_invariant_so_flip_augmentation_keeps_labels():
    for name, directions in DIRECTIONS.items():
        mirrored = {(-dx, dy) for dx, dy in directions}
        assert mirrored == set(directions), name
    spec = SynthSpec(classes=("rotate",), num_frames=8, **CLEAN)
    curls = [_curl_and_divergence(*_mean_flow_field(render_video(spec, 0, i)))[0] for i in range(8)]
    assert min(curls) < 0 < max(curls)  # both senses of rotation occur in one class


@pytest.mark.parametrize("name", ["rotate", "zoom_in", "zoom_out"])
def test_rotation_and_zoom_turn_and_scale_the_way_the_label_says(name):
    spec = SynthSpec(classes=(name,), num_frames=8, **CLEAN)
    curl, divergence = _curl_and_divergence(*_mean_flow_field(render_video(spec, 0, 2)))
    if name == "rotate":
        assert abs(curl) > 3 * abs(divergence)
    else:
        assert np.sign(divergence) == (1 if name == "zoom_in" else -1)
        assert abs(divergence) > 3 * abs(curl)


@pytest.mark.parametrize("name,axis", [("wave_horizontal", 0), ("wave_vertical", 1)])
def test_waving_goes_back_and_forth_along_its_axis(name, axis):
    spec = SynthSpec(classes=(name,), num_frames=20, **CLEAN)
    flow, moving = _mean_flow_field(render_video(spec, 0, 0))
    means = np.array([f[m].mean(axis=0) for f, m in zip(flow, moving, strict=True) if m.any()])
    along, across = means[:, axis], means[:, 1 - axis]
    assert along.max() > 0.8 and along.min() < -0.8  # both ways within one video
    assert np.abs(across).mean() < 0.3 * np.abs(along).mean()


def test_plan_counts_classes_and_holds_out_test_videos_per_class():
    spec = spec_with_classes(5, videos_per_class=10, test_fraction=0.3)
    plan = video_plan(spec)
    assert len(plan) == 50 and spec.classes == MOTION_CLASSES[:5]
    for label in range(5):
        splits = [split for _, lab, _, split in plan if lab == label]
        assert splits.count("test") == 3 and splits.count("train") == 7
    assert len({path for path, *_ in plan}) == 50


def test_generate_writes_decodable_videos_and_a_manifest_and_resumes(tmp_path):
    spec = spec_with_classes(3, videos_per_class=2, height=32, width=48, num_frames=5)
    manifest = generate_dataset(tmp_path, spec, progress=False)
    with manifest.open() as handle:
        rows = list(csv.DictReader(handle))
    assert manifest.name == MANIFEST and len(rows) == 6
    assert {row["label"] for row in rows} == set(spec.classes)
    first = tmp_path / rows[0]["path"]
    with av.open(str(first)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (32, 48, 3)
    # H.264 (crf 18, 4:2:0 chroma) keeps the luma close to the rendered frame, not bit-exact.
    def luma_gap(a, b):
        gray = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(int) for x in (a, b)]
        return np.abs(gray[0] - gray[1]).mean()

    assert luma_gap(frames[2], render_video(spec, 0, 0)[2]) < 4
    assert luma_gap(frames[2], render_video(spec, 0, 1)[2]) > 10
    stamp = first.stat().st_mtime_ns
    generate_dataset(tmp_path, spec, progress=False)
    assert first.stat().st_mtime_ns == stamp  # kept, not rewritten
    assert load_spec(tmp_path) == spec


def test_a_folder_refuses_a_second_different_spec(tmp_path):
    generate_dataset(tmp_path, spec_with_classes(1, videos_per_class=1, num_frames=3), False)
    with pytest.raises(MarsError, match="another spec"):
        generate_dataset(tmp_path, spec_with_classes(2, videos_per_class=1, num_frames=3), False)


@pytest.mark.parametrize("fields", [
    dict(classes=("move_left",)), dict(classes=()), dict(classes=("zoom_in", "zoom_in")),
    dict(videos_per_class=0), dict(test_fraction=1.0), dict(height=8),
])
def test_bad_specs_are_one_line_errors(fields):
    with pytest.raises(MarsError):
        SynthSpec(**fields)
