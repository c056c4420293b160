"""Shared fixtures: the real UCF101 subset (skipped when absent), small synthetic videos, and
a small frame store with flow."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mars_action.video.writer import write_video

REPO = Path(__file__).resolve().parents[1]
UCF101_SUBSET = Path(
    os.environ.get("MARS_UCF101_SUBSET", REPO.parent / "shared/data/ucf101-subset")
)


@pytest.fixture(scope="session")
def ucf101_subset() -> Path:
    """The real clips with official split files; tests using it skip cleanly without it."""
    if not (UCF101_SUBSET / "ucfTrainTestlist" / "classInd.txt").is_file():
        pytest.skip(f"UCF101 subset not found at {UCF101_SUBSET}")
    return UCF101_SUBSET


def moving_square_frames(
    num_frames: int = 20, height: int = 64, width: int = 80, step: int = 2, seed: int = 0
) -> np.ndarray:
    """(T, H, W, 3) uint8: a textured square moving right by ``step`` px per frame."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    patch = rng.integers(120, 255, size=(height // 3, height // 3, 3), dtype=np.uint8)
    frames = np.repeat(background[None], num_frames, axis=0)
    size = patch.shape[0]
    for t in range(num_frames):
        x = (4 + t * step) % (width - size)
        frames[t, height // 3 : height // 3 + size, x : x + size] = patch
    return frames


@pytest.fixture
def make_video(tmp_path):
    """Write a small synthetic MP4; returns its path. ``make_video(name, frames=, fps=)``."""

    def make(name: str = "clip.mp4", frames: np.ndarray | None = None, fps: float = 25.0, **kw):
        frames = moving_square_frames() if frames is None else frames
        return write_video(tmp_path / name, frames, fps=fps, **kw)

    return make


@pytest.fixture(scope="session")
def synth_flow_store(tmp_path_factory) -> Path:
    """A frame store with flow of ``mars synth`` videos (Farneback: fast), built once for
    the tests that train from a store (pretraining, flow regression); they only read it."""
    from mars_action.data.synthetic import generate_dataset, spec_with_classes
    from mars_action.flow.extract import FlowJob, extract_flow
    from mars_action.video.extract import extract_frames

    root = tmp_path_factory.mktemp("synth_flow_store")
    spec = spec_with_classes(2, videos_per_class=4, num_frames=10, height=32, width=32)
    generate_dataset(root / "videos", spec, progress=False)
    extract_frames(root / "videos", root / "frames", fps=None, short_side=32, workers=1)
    extract_flow(root / "frames", FlowJob(method="farneback"), workers=1)
    return root / "frames"
