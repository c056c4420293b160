"""Datasets on a tiny frame store and tiny videos whose pixels encode the frame index."""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest
import torch
from conftest import moving_square_frames
from torch.utils.data import DataLoader

from mars_action.data import (
    AllClips,
    ClipDataset,
    EvalTransform,
    FrameStoreSource,
    RandomClip,
    TrainTransform,
    VideoFileSource,
    VideoRecord,
    build_dataset,
    collate_videos,
    loader_kwargs,
)
from mars_action.data.commands import register
from mars_action.data.transforms import RGB_MEAN
from mars_action.errors import MarsError
from mars_action.video import framestore

H, W = 24, 32


def flat_frame(i: int, height: int = H, width: int = W) -> np.ndarray:
    """Frame i: a flat colour whose red and green encode i (steps of 6 survive JPEG/H.264)."""
    high, low = 6 + 6 * (i // 40), 6 + 6 * (i % 40)
    return np.full((height, width, 3), (high, low, low), np.uint8)


def write_store(root, name, num_frames, flow=True, flow_fields=None):
    """<root>/<name>/ with flat frames (value encodes i) and flat flow x=100+i, y=40+i."""
    folder = root / name
    frames = [flat_frame(i) for i in range(num_frames)]
    framestore.write_frames(folder, frames)
    if flow:
        count = num_frames - 1 if flow_fields is None else flow_fields
        images = []
        for i in range(count):
            x_name, y_name = framestore.flow_names(i)
            images += [(x_name, np.full((H, W), 100 + i, np.uint8)),
                       (y_name, np.full((H, W), 40 + i, np.uint8))]
        framestore.write_jpegs_atomic(folder, images)
    return folder


def frame_ids(rgb: torch.Tensor) -> list[int]:
    """(3, T, h, w) normalized -> the frame index of each time step."""
    high = (rgb[0].mean(dim=(1, 2)) + RGB_MEAN[0] - 6) / 6
    low = (rgb[1].mean(dim=(1, 2)) + RGB_MEAN[1] - 6) / 6
    return [40 * round(float(h)) + round(float(lo)) for h, lo in zip(high, low, strict=True)]


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "frames"
    write_store(root, "jump/v_a", 40)
    write_store(root, "jump/v_b", 10)
    write_store(root, "sit/v_c", 20)
    records = [
        VideoRecord("v_a", "jump/v_a.avi", 0, "train"),
        VideoRecord("v_b", "jump/v_b.mp4", 0, "train"),
        VideoRecord("v_c", "sit/v_c", 1, "train"),
    ]
    return root, records


def dataset(store, modality="rgb", sampler=None, transform=None, **source_kw):
    root, records = store
    source = FrameStoreSource(root, modality.split("+"), **source_kw)
    return ClipDataset(records, ["jump", "sit"], source, sampler or RandomClip(16),
                       transform or TrainTransform(16, scale_vectors=False))  # codes as stored


def test_training_items_have_the_contract_format(store):
    item = dataset(store, "rgb+flow")[0]
    assert set(item) == {"rgb", "flow", "label", "video_id"}
    assert item["rgb"].shape == (3, 16, 16, 16) and item["rgb"].dtype == torch.float32
    assert item["flow"].shape == (2, 16, 16, 16) and item["flow"].dtype == torch.float32
    assert item["label"] == 0 and item["video_id"] == "v_a"
    assert set(dataset(store, "flow")[2]) == {"flow", "label", "video_id"}
    batch = next(iter(DataLoader(dataset(store, "rgb+flow"), batch_size=3)))
    assert batch["rgb"].shape == (3, 3, 16, 16, 16) and batch["flow"].shape == (3, 2, 16, 16, 16)
    assert batch["label"].tolist() == [0, 0, 1] and batch["label"].dtype == torch.long
    assert batch["video_id"] == ["v_a", "v_b", "v_c"]


def test_clips_are_consecutive_loop_and_pair_frame_i_with_flow_i(store):
    data = dataset(store, "rgb+flow")
    torch.manual_seed(0)
    for _ in range(5):
        item = data[0]
        ids = frame_ids(item["rgb"])
        assert ids == list(range(ids[0], ids[0] + 16)) and ids[-1] <= 38  # 39 flow fields
        flow_y = item["flow"][1].mean(dim=(1, 2)) + 127.5
        assert [round(float(v)) - 40 for v in flow_y] == ids  # same index, y never negated
        flow_x = item["flow"][0].mean(dim=(1, 2)) + 127.5
        x_codes = [round(float(v)) for v in flow_x]
        assert x_codes in ([100 + i for i in ids], [255 - 100 - i for i in ids])
    short = dataset(store, "rgb")[1]
    assert frame_ids(short["rgb"]) == [*range(10), *range(6)]  # 10 frames loop


def textured_store(root, num_frames=6):
    """<root>/jump/v_t: a smooth texture (as real frames) that moves, with flow alike."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    texture = cv2.resize(coarse, (80, 64), interpolation=cv2.INTER_LINEAR)
    frames = [np.roll(texture, 2 * t, axis=1) for t in range(num_frames)]
    folder = root / "jump" / "v_t"
    framestore.write_frames(folder, frames)
    names = [n for i in range(num_frames - 1) for n in framestore.flow_names(i)]
    planes = [frames[i][..., a] for i in range(num_frames - 1) for a in (0, 1)]
    framestore.write_jpegs_atomic(folder, list(zip(names, planes, strict=True)))
    return [VideoRecord("v_t", "jump/v_t", 0, "train")]


def test_reading_only_the_crop_gives_the_whole_frame_results(tmp_path):
    records = textured_store(tmp_path)  # 64 x 80 frames
    source = FrameStoreSource(tmp_path, ("rgb", "flow"))
    for transform in (TrainTransform(16, reduced_decode=False), EvalTransform(24)):

        def whole_frames(clips, rng, transform=transform):  # not a CropTransform: no plan
            return transform(clips, rng)

        crop_first = ClipDataset(records, ["jump"], source, RandomClip(4), transform)
        whole = ClipDataset(records, ["jump"], source, RandomClip(4), whole_frames)
        for seed in range(4):
            torch.manual_seed(seed)
            fast = crop_first[0]
            torch.manual_seed(seed)
            slow = whole[0]
            for m in ("rgb", "flow"):
                difference = (fast[m] - slow[m]).abs()
                if isinstance(transform, TrainTransform):  # same pixels, same crop and flip
                    assert torch.equal(fast[m], slow[m])
                else:  # the 64 px centre square decoded at half size for a 24 px output
                    assert 0 < difference.mean() < 1.5 and difference.max() < 32


def test_test_time_items_hold_every_clip(store):
    data = dataset(store, "rgb+flow", AllClips(8), EvalTransform(16))
    item = data[0]
    assert item["rgb"].shape == (4, 3, 8, 16, 16) and item["flow"].shape == (4, 2, 8, 16, 16)
    expected = [list(range(start, start + 8)) for start in (0, 8, 16, 24)]
    assert [frame_ids(clip) for clip in item["rgb"]] == expected
    batch = collate_videos([data[0], data[2]])
    assert batch["rgb"].shape == (6, 3, 8, 16, 16) and batch["clip_counts"].tolist() == [4, 2]
    assert batch["label"].tolist() == [0, 1]


def test_empty_and_missing_frame_folders_are_listed_at_construction(store, capsys):
    root, records = store
    (root / "sit" / "v_empty").mkdir()
    write_store(root, "sit/v_partial", 12, flow_fields=5)
    bad = [*records, VideoRecord("v_empty", "sit/v_empty.avi", 1, "train"),
           VideoRecord("v_gone", "sit/v_gone.avi", 1, "train"),
           VideoRecord("v_partial", "sit/v_partial.avi", 1, "train")]
    with pytest.raises(MarsError) as error:
        dataset((root, bad), "rgb")
    message = str(error.value)
    assert "2 video(s) without usable frames" in message
    assert "sit/v_empty.avi: no frames" in message
    assert "sit/v_gone.avi: frame folder not found" in message
    with pytest.raises(MarsError, match=r"sit/v_partial\.avi: flow incomplete \(5 fields for 12"):
        dataset((root, bad), "rgb+flow")
    kept = dataset((root, bad), "rgb", on_missing="skip")
    assert [r.video_id for r in kept.records] == ["v_a", "v_b", "v_c", "v_partial"]
    assert "sit/v_gone.avi" in capsys.readouterr().err


def test_frame_folder_found_by_name_when_class_folder_differs(store):
    root, _ = store
    write_store(root, "passing_football_(in_game)/abc_000001_000011", 16, flow=False)
    record = VideoRecord("abc_000001_000011", "passing football (in game)/abc_000001_000011.mp4", 0,
                         "test")
    data = ClipDataset([record], ["x"], FrameStoreSource(root), AllClips(16), EvalTransform(16))
    assert frame_ids(data[0]["rgb"][0]) == list(range(16))


def _starts(data, seed, workers=2):
    loader = DataLoader(data, batch_size=1, num_workers=workers, **loader_kwargs(seed))
    return [frame_ids(batch["rgb"][0])[0] for batch in loader]


def test_workers_draw_different_clips_and_a_seed_repeats_them(tmp_path):
    root = tmp_path / "frames"
    write_store(root, "jump/long", 200, flow=False)
    records = [VideoRecord("long", "jump/long", 0, "train")] * 8
    data = ClipDataset(records, ["jump"], FrameStoreSource(root), RandomClip(4), TrainTransform(8))
    first = _starts(data, seed=7)
    worker0, worker1 = first[0::2], first[1::2]  # batches alternate between the two workers
    assert worker0 != worker1
    assert _starts(data, seed=7) == first
    assert _starts(data, seed=8) != first


def test_rgb_clips_straight_from_video_files(make_video, tmp_path):
    frames = np.stack([flat_frame(i, 48, 64) for i in range(30)])
    make_video("videos/jump/a.mp4", frames, fps=25.0, crf=0)
    make_video("videos/sit/b.mp4", frames[:12], fps=25.0, crf=0)
    source = VideoFileSource(tmp_path / "videos", short_side=24)
    records = [VideoRecord("a", "jump/a.mp4", 0, "test"), VideoRecord("b", "sit/b.mp4", 1, "test")]
    data = ClipDataset(records, ["jump", "sit"], source, AllClips(8), EvalTransform(16))
    item = data[0]
    assert item["rgb"].shape == (3, 3, 8, 16, 16)
    assert [frame_ids(clip) for clip in item["rgb"]] == [list(range(s, s + 8)) for s in (0, 8, 16)]
    torch.manual_seed(1)
    train = ClipDataset(records, ["jump", "sit"], source, RandomClip(16), TrainTransform(16))
    ids = frame_ids(train[0]["rgb"])
    assert ids == list(range(ids[0], ids[0] + 16)) and ids[-1] <= 29
    assert frame_ids(train[1]["rgb"]) == [*range(12), *range(4)]
    assert source.frame_size(tmp_path / "videos" / "jump" / "a.mp4") == (24, 32)
    textured = make_video("videos/jump/square.mp4", moving_square_frames(8, 48, 64), fps=25.0)
    full_size = VideoFileSource(tmp_path / "videos", short_side=None)
    assert full_size.frame_size(textured) == (48, 64)
    whole = full_size.read(textured, [3, 4])["rgb"]
    window = full_size.read(textured, [3, 4], (2, 5, 40, 40))["rgb"]
    assert np.array_equal(window, whole[:, 2:42, 5:45])
    with pytest.raises(MarsError, match=r"1 video\(s\) not found: sit/c\.mp4: no file"):
        ClipDataset([VideoRecord("c", "sit/c.mp4", 1, "test")], ["x"], source, AllClips(8),
                    EvalTransform(16))


def test_build_dataset_folder_and_errors(store):
    root, _ = store
    data = build_dataset("folder", None, None, "train", "rgb+flow", 8, 16, frame_root=root,
                         val_fraction=0.0)
    assert data.class_names == ["jump", "sit"] and len(data) == 3
    assert data[0]["rgb"].shape == (3, 8, 16, 16) and data[0]["flow"].shape == (2, 8, 16, 16)
    test = build_dataset("folder", None, None, "train", "rgb", 8, 16, frame_root=root,
                         val_fraction=0.0, clips=2)
    assert test[0]["rgb"].shape == (2, 3, 8, 16, 16)
    center = build_dataset("folder", None, None, "train", "rgb+flow", 8, 16, frame_root=root,
                           val_fraction=0.0, clips="center", augment=False)
    first, again = center[0], center[0]
    assert frame_ids(first["rgb"]) == list(range(16, 24))  # the middle of 39 usable frames
    assert torch.equal(first["rgb"], again["rgb"]) and torch.equal(first["flow"], again["flow"])
    with pytest.raises(MarsError, match="needs frame_root"):
        build_dataset("folder", root, None, "train", "flow", val_fraction=0.0)
    with pytest.raises(MarsError, match="no videos in split 'test'"):
        build_dataset("folder", None, None, "test", frame_root=root)
    with pytest.raises(MarsError, match="unknown dataset format"):
        build_dataset("ucf", root, None, "train")


def test_something_something_frames_are_read_in_place(tmp_path):
    frames = tmp_path / "20bn-something-something-v1"
    write_store(frames, "100218", 20, flow=False)
    write_store(frames, "24", 12, flow=False)
    prefix = tmp_path / "something-something-v1"
    (tmp_path / f"{prefix.name}-labels.csv").write_text("Holding something\nPushing something\n")
    (tmp_path / f"{prefix.name}-train.csv").write_text("100218;Pushing something\n")
    (tmp_path / f"{prefix.name}-validation.csv").write_text("24;Holding something\n")
    test = build_dataset("sthsth-v1", frames, tmp_path, "test", "rgb", 8, 16)
    assert [(r.video_id, r.label) for r in test.records] == [("24", 0)]
    assert [frame_ids(clip) for clip in test[0]["rgb"]] == [list(range(8))]
    train = build_dataset("sthsth-v1", frames, tmp_path, "train", "rgb", 8, 16, val_fraction=0)
    assert train[0]["label"] == 1 and train[0]["rgb"].shape == (3, 8, 16, 16)
    assert train.summary().startswith("1 videos, 2 classes, rgb from FrameStoreSource(")


def test_build_dataset_on_the_ucf101_subset(ucf101_subset):
    train = build_dataset("ucf101", ucf101_subset, None, "train", "rgb", 16, 112)
    val = build_dataset("ucf101", ucf101_subset, None, "val", "rgb", 16, 112, clips="center")
    assert len(train) + len(val) == 141 and len(train.class_names) == 20
    assert not {r.video_id for r in train.records} & {r.video_id for r in val.records}
    item = val[0]
    assert item["rgb"].shape == (3, 16, 112, 112) and item["rgb"].dtype == torch.float32
    assert -120 < float(item["rgb"].min()) and float(item["rgb"].max()) < 160


def test_data_summary_command(store, capsys):
    root, _ = store
    (root / "sit" / "v_empty").mkdir()
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    argv = ["data-summary", "folder", "--frame-root", str(root), "--val-fraction", "0"]
    args = parser.parse_args(argv)
    code = args.handler(args)
    out = capsys.readouterr().out
    assert code == 1
    assert "classes: 2 (jump, sit)" in out and "videos: train 4, val 0, test 0" in out
    assert "3 videos ready, 1 without usable frames" in out and "sit/v_empty: no frames" in out
