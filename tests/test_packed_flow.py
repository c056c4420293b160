"""Packed flow (``mars flow --packed``): one file a video, read like the frame store."""

from __future__ import annotations

import numpy as np
import pytest

from mars_action.cli import main
from mars_action.data import build_dataset
from mars_action.errors import MarsError
from mars_action.flow.packed import FlowPack, write_pack
from mars_action.flow.quantize import quantize
from mars_action.training.config import DataConfig
from mars_action.training.datasets import build_datasets
from mars_action.video import framestore
from mars_action.video.writer import write_video


def random_fields(count: int, height: int = 40, width: int = 56) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    smooth = rng.normal(0, 6, (count, height // 8, width // 8, 2)).astype(np.float32)
    return [np.kron(f, np.ones((8, 8, 1), np.float32)) for f in smooth]


def test_a_pack_reads_as_the_jpeg_store(tmp_path):
    fields = random_fields(7)
    assert write_pack(tmp_path / "v.TVL1jpg_pack", fields, {"method": "test"}) == 7
    names = []
    for i, field in enumerate(fields):
        codes = quantize(field)
        x, y = framestore.flow_names(i)
        names += [(x, codes[..., 0]), (y, codes[..., 1])]
    framestore.write_jpegs_atomic(tmp_path / "store", names)
    pack = FlowPack(tmp_path / "v.TVL1jpg_pack")
    assert pack.pairs == 7 and pack.size == (40, 56) and pack.header["method"] == "test"
    for window, reduction in ((None, 1), ((8, 16, 32, 32), 1), ((8, 16, 32, 32), 2)):
        ours = pack.read([5, 0, 3], window, reduction)
        theirs = framestore.read_flow(tmp_path / "store", [5, 0, 3], window=window,
                                      reduction=reduction)
        np.testing.assert_array_equal(ours, theirs)


def test_broken_packs_are_one_line_errors(tmp_path):
    write_pack(tmp_path / "v.pack", random_fields(3), {})
    data = (tmp_path / "v.pack").read_bytes()
    (tmp_path / "cut.pack").write_bytes(data[: len(data) // 2])
    with pytest.raises(MarsError, match="truncated flow pack"):
        FlowPack(tmp_path / "cut.pack")
    (tmp_path / "text.pack").write_text("hello, not a pack")
    with pytest.raises(MarsError, match="not a flow pack"):
        FlowPack(tmp_path / "text.pack")
    with pytest.raises(MarsError, match="flow field 3 of 3"):
        FlowPack(tmp_path / "v.pack").read([3])


def panning(count: int, step: int) -> np.ndarray:
    rng = np.random.default_rng(abs(step))
    base = np.repeat(rng.integers(0, 255, (48, 24, 3), np.uint8), 4, axis=1)
    return np.stack([np.roll(base, step * i, axis=1)[:, :80] for i in range(count)])


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("packed")
    for cls, step in (("right", 2), ("left", -2)):
        write_video(root / "videos" / cls / f"{cls}0.mp4", panning(12, step), fps=25)
    common = ["--method", "farneback", "--workers", "1", "--short-side", "48"]
    assert main(["flow", str(root / "videos"), "--out", str(root / "packs"), "--packed",
                 *common]) == 0
    assert main(["flow", str(root / "videos"), "--out", str(root / "jpeg"), *common]) == 0
    return root


def test_mars_flow_packed_writes_one_file_a_video(videos, capsys):
    files = sorted(p.name for p in (videos / "packs" / "right").iterdir())
    assert files == ["right0.FARNjpg_pack"]
    assert FlowPack(videos / "packs" / "right" / files[0]).pairs == 11
    again = ["flow", str(videos / "videos"), "--out", str(videos / "packs"), "--packed",
             "--method", "farneback", "--workers", "1", "--short-side", "48"]
    assert main(again) == 0
    assert "2 skipped" in capsys.readouterr().out


@pytest.mark.parametrize("modality", ["flow", "rgb+flow"])
def test_test_clips_from_packs_equal_the_jpeg_stores(videos, modality):
    common = {"clip_len": 4, "crop_size": 32, "flow_prefix": "FARNjpg_", "short_side": 48,
              "val_fraction": 0.0, "clips": "all", "augment": False}  # test clips of train
    packed = build_dataset("folder", videos / "videos", None, "train", modality,
                           flow_root=videos / "packs", **common)
    jpeg = build_dataset("folder", videos / "videos", None, "train", "flow",
                         frame_root=videos / "jpeg", **common)
    assert len(packed) == len(jpeg) == 2
    for k in range(2):
        ours, theirs = packed[k], jpeg[k]
        assert ours["flow"].shape == (2, 2, 4, 32, 32)  # 11 fields: two 4-field clips
        assert np.array_equal(ours["flow"].numpy(), theirs["flow"].numpy())
        if modality == "rgb+flow":
            assert ours["rgb"].shape == (2, 3, 4, 32, 32)


def test_training_sets_from_videos_and_packs(videos):
    data = DataConfig(format="folder", root=str(videos / "videos"),
                      flow_root=str(videos / "packs"), flow_prefix="FARNjpg_", clip_len=4,
                      crop_size=32, fps=25.0, short_side=48, val_fraction=0.0)
    train, _ = build_datasets(data, ("rgb", "flow"))  # what MARS and MERS read
    item = train[0]
    assert item["rgb"].shape == (3, 4, 32, 32) and item["flow"].shape == (2, 4, 32, 32)
    wrong = DataConfig(**{**vars(data), "short_side": 64})
    with pytest.raises(MarsError, match="give the packs' fps/size"):
        build_datasets(wrong, ("rgb", "flow"))[0][0]
