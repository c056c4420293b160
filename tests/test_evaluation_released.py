"""``mars eval --protocol released``: the released test scripts' sampling, framing, scoring."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mars_action.cli import main
from mars_action.data.transforms import normalize
from mars_action.evaluation import load_scores
from mars_action.evaluation.loading import DataSettings, ReleasedTestTransform, build_test_set
from mars_action.models import CheckpointMeta, build_model, save_checkpoint
from mars_action.video.framestore import flow_names, rgb_name

CLASSES = ["left", "right"]
VIDEOS = {("left", "long"): 19, ("right", "short"): 5}  # frames: 2 clips + a tail; looped


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("released-eval")
    rng = np.random.default_rng(0)
    frames = {}
    for (cls, video), count in VIDEOS.items():
        folder = root / "frames" / cls / video
        folder.mkdir(parents=True)
        frames[video] = rng.integers(0, 255, (count, 40, 56, 3), np.uint8)
        for i, frame in enumerate(frames[video]):
            cv2.imwrite(str(folder / rgb_name(i)), frame, [cv2.IMWRITE_JPEG_QUALITY, 100])
        for i in range(count - 1):
            for name in flow_names(i):
                cv2.imwrite(str(folder / name), np.full((40, 56), 120 + i, np.uint8))
    lines = [f"{cls}/{video}.avi {cls} test" for cls, video in VIDEOS]
    (root / "manifest.txt").write_text("\n".join(lines) + "\n")
    torch.manual_seed(0)
    model = build_model("resnet10_tiny", in_channels=3, num_classes=2)
    meta = CheckpointMeta("resnet10_tiny", 3, 2, stream="rgb", class_names=CLASSES,
                          clip_len=8, crop_size=32)
    save_checkpoint(root / "rgb.pt", model, meta)
    return root, model.eval(), meta


def settings(root) -> DataSettings:
    return DataSettings("manifest", annotations=str(root / "manifest.txt"),
                        frame_root=str(root / "frames"))


def test_scale_then_centre_crop_as_pil():
    image = pytest.importorskip("PIL.Image")
    frame = np.random.default_rng(1).integers(0, 255, (40, 56, 3), np.uint8)
    ours = ReleasedTestTransform(32).frame(frame[None])[0]
    # The released code: Scale(32) -> 44 x 32 (int(32 * 56 / 40)), CenterCrop at round(6.0).
    scaled = np.asarray(image.fromarray(frame).resize((44, 32), image.BILINEAR))
    assert ours.shape == (32, 32, 3)
    assert np.abs(ours.astype(int) - scaled[:, 6:38].astype(int)).max() <= 1
    tall = ReleasedTestTransform(32).frame(np.zeros((3, 71, 40, 2), np.uint8))
    assert tall.shape == (3, 32, 32, 2)  # portrait: 32 x int(56.8) = 56, crop at row 12


def test_every_clip_of_the_released_scripts_and_looped_short_videos(store):
    root, _, meta = store
    dataset = build_test_set(settings(root), meta, "test", protocol="released")
    long, short = dataset[0], dataset[1]
    assert long["rgb"].shape == (2, 3, 8, 32, 32)  # 19 frames: clips 0-7, 8-15; tail dropped
    assert short["rgb"].shape == (1, 3, 8, 32, 32)  # 5 frames: 0 1 2 3 4 0 1 2
    frames = np.stack([cv2.imread(str(root / "frames/right/short" / rgb_name(i)))[..., ::-1]
                       for i in (0, 1, 2, 3, 4, 0, 1, 2)])
    expected = normalize("rgb", ReleasedTestTransform(32).frame(frames))
    assert torch.allclose(short["rgb"][0], expected)
    two_stream = build_test_set(settings(root), meta, "test", modality="rgb+flow",
                                protocol="released")
    assert two_stream[0]["flow"].shape == (2, 2, 8, 32, 32)  # 18 flow fields: 2 clips
    assert float(two_stream[0]["flow"][1, 0, 0, 0, 0]) == 120 + 8 - 127.5  # no vector scaling


def test_eval_released_scores_mean_logits_and_prints_both_accuracies(store, tmp_path, capsys):
    root, model, meta = store
    out = tmp_path / "released.npz"
    args = ["eval", str(root / "rgb.pt"), "--data", "manifest", "--annotations",
            str(root / "manifest.txt"), "--frame-root", str(root / "frames"), "--workers", "0"]
    assert main([*args, "--protocol", "released", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "VIDEO accuracy" in printed and "CLIP accuracy" in printed and "3 clips" in printed
    result = load_scores(out)
    assert result.info["protocol"] == "released" and result.clip_counts.tolist() == [2, 1]
    clips = build_test_set(settings(root), meta, "test", protocol="released")[0]["rgb"]
    with torch.no_grad():
        logits = model(clips).mean(dim=0)  # test_single_stream.py: mean logits over clips
    np.testing.assert_allclose(result.scores[0], logits.numpy(), rtol=1e-4, atol=1e-5)
    assert main([*args, "--protocol", "released", "--crops", "3"]) == 2
    assert "one centre crop" in capsys.readouterr().err
