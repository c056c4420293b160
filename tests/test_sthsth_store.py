"""Something-Something v1 as distributed: ``<root>/<id>/00001.jpg``, no classes, no ``done``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mars_action.cli import main
from mars_action.data import build_dataset
from mars_action.training.config import DataConfig
from mars_action.training.datasets import build_datasets
from mars_action.video import completeness, framestore

LABELS = ["Pushing something from left to right", "Pushing something from right to left"]
TRAIN = {"101": 0, "102": 1, "103": 0}
VALIDATION = {"201": 1}
FRAMES = 6


def moving_square(direction: int) -> np.ndarray:
    frames = np.full((FRAMES, 48, 64, 3), 40, np.uint8)
    for i in range(FRAMES):
        x = 20 + direction * 3 * i
        frames[i, 16:32, x : x + 16] = 220
    return frames


@pytest.fixture
def sthsth(tmp_path):
    """Frames and the official annotation files of a four-video Something-Something v1."""
    root = tmp_path / "20bn-something-something-v1"
    for video_id, label in {**TRAIN, **VALIDATION}.items():
        folder = root / video_id
        folder.mkdir(parents=True)
        for i, frame in enumerate(moving_square(1 if label == 0 else -1)):
            cv2.imwrite(str(folder / framestore.rgb_name(i)), frame)
    notes = tmp_path / "annotations"
    notes.mkdir()
    (notes / "something-something-v1-labels.csv").write_text("\n".join(LABELS) + "\n")
    for name, videos in (("train", TRAIN), ("validation", VALIDATION)):
        lines = [f"{video};{LABELS[label]}" for video, label in videos.items()]
        (notes / f"something-something-v1-{name}.csv").write_text("\n".join(lines) + "\n")
    return root, notes


def test_the_flat_layout_is_a_frame_store(sthsth):
    root, _ = sthsth
    assert [p.name for p in completeness.list_video_dirs(root)] == ["101", "102", "103", "201"]
    assert completeness.numbering_problem(root / "101") == ""
    (root / "101" / framestore.rgb_name(2)).unlink()
    assert "not numbered 00001 to 00005" in completeness.numbering_problem(root / "101")


def test_mars_flow_on_the_shipped_frames_then_flow_and_two_stream_datasets(sthsth, capsys):
    root, notes = sthsth
    assert main(["flow", str(root), "--method", "farneback", "--workers", "1"]) == 0
    prefix = "FARNjpg_"  # farneback's files; tvl1 (the paper's) is the same path, slower
    assert framestore.flow_count(root / "101", prefix) == FRAMES - 1
    assert completeness.read_done(root / "101", f"{prefix}done")["pairs"] == FRAMES - 1
    assert not framestore.is_done(root / "101")  # the shipped frames stay as they were
    for modality in ("flow", "rgb+flow"):
        dataset = build_dataset("sthsth-v1", root, notes, "train", modality, clip_len=4,
                                crop_size=32, flow_prefix=prefix, val_fraction=0.0)
        assert len(dataset) == 3
        item = dataset[0]
        assert item["flow"].shape == (2, 4, 32, 32) and item["label"] == 0
        # The square moves right: x flow positive where it is (codes above 127.5).
        assert float(item["flow"][0].max()) > 0.5
    test = build_dataset("sthsth-v1", root, notes, "test", "rgb", clip_len=4, crop_size=32)
    assert len(test) == 1 and test[0]["label"] == 1


def test_a_folder_with_a_gap_fails_alone(sthsth, capsys):
    root, notes = sthsth
    (root / "102" / framestore.rgb_name(3)).unlink()
    assert main(["flow", str(root), "--method", "farneback", "--workers", "1"]) == 1
    err = capsys.readouterr()
    assert "102: frames are not numbered 00001 to 00005" in err.out + err.err
    assert framestore.flow_count(root / "101", "FARNjpg_") == FRAMES - 1
    dataset = build_dataset("sthsth-v1", root, notes, "train", "rgb", clip_len=4, crop_size=32,
                            on_missing="skip", val_fraction=0.0)
    assert [r.video_id for r in dataset.records] == ["101", "103"]


def test_flip_false_turns_training_mirrors_off(sthsth):
    root, notes = sthsth
    data = DataConfig(format="sthsth-v1", root=str(root), annotations=str(notes), clip_len=4,
                      crop_size=32, fps=12.0, short_side=48, val_fraction=0.0, flip=False)
    train, _ = build_datasets(data, ("rgb",))
    assert train.transform.flip_prob == 0.0
    flipped, _ = build_datasets(DataConfig(**{**vars(data), "flip": True}), ("rgb",))
    assert flipped.transform.flip_prob == 0.5
