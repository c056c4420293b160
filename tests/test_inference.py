"""Recognizer API: prediction structure, inputs, looping, preprocessing from the checkpoint."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import moving_square_frames

from mars_action.data.transforms import EvalTransform
from mars_action.errors import MarsError
from mars_action.inference import Recognizer, VideoFailure, runtime, stream_windows
from mars_action.inference.background import background
from mars_action.models import CheckpointMeta, build_model, save_checkpoint
from mars_action.video.decode import decode_video

CLASSES = ["jump", "run", "swim", "wave"]


def save_tiny_checkpoint(path: Path, in_channels: int = 3, **meta_fields) -> Path:
    """A seeded resnet10_tiny checkpoint: 8-frame clips, 64 px crops, 25 fps, short side 96."""
    torch.manual_seed(0)
    model = build_model("resnet10_tiny", in_channels=in_channels, num_classes=len(CLASSES))
    fields = {"class_names": CLASSES, "clip_len": 8, "crop_size": 64, "short_side": 96}
    fields.update(meta_fields)
    meta = CheckpointMeta(
        arch="resnet10_tiny", in_channels=in_channels, num_classes=len(CLASSES), **fields
    )
    return save_checkpoint(path, model, meta)


@pytest.fixture(autouse=True, scope="module")
def onnx_cache_in_tmp(tmp_path_factory):
    """ONNX exports that ``runtime="auto"`` makes go to a temporary cache, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(runtime.CACHE_ENV, str(tmp_path_factory.mktemp("onnx_cache")))
        yield


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory) -> Recognizer:
    path = save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")
    return Recognizer.from_checkpoint(path, device="cpu", runtime="pytorch")


def test_prediction_structure_and_probabilities(recognizer, make_video):
    video = make_video("walk.mp4", moving_square_frames(40, 96, 128), crf=0)  # 1.6 s
    pred = recognizer.predict(video, topk=3)
    assert pred.num_frames == 40 and not pred.looped and pred.note() is None
    assert len(pred.topk) == 3 and len(pred.clips) == 5  # 40 frames / 8
    assert pred.probabilities.shape == (4,)
    assert pred.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    probs = [p for _, p in pred.topk]
    assert probs == sorted(probs, reverse=True) and set(dict(pred.topk)) <= set(CLASSES)
    mean_logits = torch.from_numpy(pred.clip_logits.mean(0))
    expected = torch.softmax(mean_logits.double(), 0).numpy()
    np.testing.assert_allclose(pred.probabilities, expected, atol=1e-6)
    assert pred.topk[0] == (CLASSES[int(expected.argmax())], pytest.approx(expected.max()))
    starts = [c.start for c in pred.clips]
    ends = [c.end for c in pred.clips]
    np.testing.assert_allclose(starts, [0.0, 0.32, 0.64, 0.96, 1.28], atol=1e-6)
    np.testing.assert_allclose(ends, [0.32, 0.64, 0.96, 1.28, 1.6], atol=1e-6)
    for clip, logits in zip(pred.clips, pred.clip_logits, strict=True):
        assert clip.topk[0][0] == CLASSES[int(logits.argmax())]
        assert sum(p for _, p in clip.topk) <= 1.0 + 1e-6
    row = pred.to_dict()
    assert row["video"] == str(video) and len(row["clips"]) == 5 and row["looped"] is False


def test_path_list_and_array_inputs_agree(recognizer, make_video):
    first = make_video("a.mp4", moving_square_frames(24, 96, 128, seed=1), crf=0)
    second = make_video("b.mp4", moving_square_frames(33, 96, 128, step=3, seed=2), crf=0)
    alone = recognizer.predict(first)
    both = recognizer.predict([first, second], batch_size=2)  # clips of both videos share batches
    array = recognizer.predict(decode_video(first, fps=25.0, short_side=96))
    assert [p.source for p in both] == [str(first), str(second)]
    assert array.source == "<array>" and array.num_frames == alone.num_frames == 24
    for other in (both[0], array):
        np.testing.assert_allclose(other.clip_logits, alone.clip_logits, atol=1e-4)
        assert [label for label, _ in other.topk] == [label for label, _ in alone.topk]
    assert both[1].num_frames == 33 and len(both[1].clips) == 4  # tail of 1 frame dropped


def test_short_video_is_looped_and_flagged(recognizer, make_video):
    frames = moving_square_frames(5, 96, 128)
    pred = recognizer.predict(make_video("short.mp4", frames, crf=0))
    assert pred.looped and len(pred.clips) == 1 and pred.num_frames == 5
    assert "looped" in pred.note() and "5 frames" in pred.note()
    assert pred.clips[0].end == pytest.approx(0.2)
    decoded = decode_video(make_video("short2.mp4", frames, crf=0), fps=25.0, short_side=96)
    crops = np.stack([recognizer.preprocessing.crop_frame(f) for f in decoded])
    looped = crops[[0, 1, 2, 3, 4, 0, 1, 2]][None]  # (1, 8, 64, 64, 3): frames repeated in order
    np.testing.assert_allclose(pred.clip_logits, recognizer.score_clips(looped), atol=1e-5)


def test_preprocessing_comes_from_the_checkpoint(tmp_path, make_video):
    path = save_tiny_checkpoint(
        tmp_path / "meta.pt", fps=10.0, clip_len=4, crop_size=48, short_side=72, std=[2.0] * 3
    )
    recognizer = Recognizer.from_checkpoint(path, device="cpu", runtime="pytorch")
    pre = recognizer.preprocessing
    assert (pre.fps, pre.clip_len, pre.crop_size, pre.short_side) == (10.0, 4, 48, 72)
    video = make_video("v.mp4", moving_square_frames(50, 96, 128), crf=0)  # 2 s at 25 fps
    seen = []
    hook = recognizer.model.conv1.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    try:
        pred = recognizer.predict(video, batch_size=16)
    finally:
        hook.remove()
    assert pred.num_frames == 20 and len(pred.clips) == 5  # 2 s at 10 fps, 4-frame clips
    assert pred.clips[1].start == pytest.approx(0.4) and pred.clips[1].end == pytest.approx(0.8)
    assert seen[0].shape == (5, 3, 4, 48, 48)
    # The data stage's test transform on the same frames, then the checkpoint's std.
    frames = decode_video(video, fps=10.0, short_side=72)[:4]
    expected = EvalTransform(crop_size=48)({"rgb": frames})["rgb"] / 2.0  # (3, 4, 48, 48)
    torch.testing.assert_close(seen[0][0], expected, atol=1e-4, rtol=0)


def test_checkpoint_without_class_names_needs_labels(tmp_path, make_video):
    ours = save_tiny_checkpoint(tmp_path / "nolabels.pt", class_names=[])
    with pytest.raises(MarsError, match="--labels"):
        Recognizer.from_checkpoint(ours, device="cpu")
    # A released-style .pth: DataParallel keys, no class names, no preprocessing.
    state = torch.load(ours, weights_only=True)["state_dict"]
    released = tmp_path / "MARS_Mini_8f.pth"
    prefixed = {f"module.{key}": value for key, value in state.items()}
    torch.save({"arch": "resnet10_tiny", "state_dict": prefixed}, released)
    with pytest.raises(MarsError, match="--labels"):
        Recognizer.from_checkpoint(released, device="cpu")
    labels = tmp_path / "classInd.txt"
    labels.write_text("".join(f"{i} {name}\r\n" for i, name in enumerate(CLASSES, 1)))
    from_pth = Recognizer.from_checkpoint(released, device="cpu", labels=labels, runtime="pytorch")
    assert from_pth.class_names == CLASSES
    assert from_pth.preprocessing.clip_len == 8  # from the "_8f" in the name
    assert from_pth.preprocessing.short_side == 256  # the released code's frames
    from_ours = Recognizer.from_checkpoint(ours, device="cpu", labels=CLASSES, runtime="pytorch")
    video = make_video("v.mp4", moving_square_frames(16, 96, 128), crf=0)
    assert from_ours.predict(video).topk[0][0] in CLASSES


def test_flow_checkpoints_and_unreadable_exports_are_refused(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "flow.pt", in_channels=2)
    with pytest.raises(MarsError, match="flow"):
        Recognizer.from_checkpoint(path, device="cpu")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx at all")
    with pytest.raises(MarsError, match="broken.onnx: not a model exported by mars export"):
        Recognizer.from_checkpoint(broken, device="cpu")


def test_bad_videos_fail_alone(recognizer, make_video, tmp_path):
    good = make_video("good.mp4", moving_square_frames(16, 96, 128), crf=0)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"definitely not a video" * 50)
    results = list(recognizer.predict_each([tmp_path / "missing.mp4", corrupt, good]))
    assert [type(r).__name__ for r in results] == ["VideoFailure", "VideoFailure", "Prediction"]
    assert "missing.mp4" in results[0].reason and "corrupt.mp4" in results[1].reason
    assert isinstance(results[0], VideoFailure) and results[2].num_frames == 16
    with pytest.raises(MarsError, match="missing.mp4"):
        recognizer.predict(tmp_path / "missing.mp4")
    with pytest.raises(MarsError, match=r"\(T, H, W, 3\)"):
        recognizer.predict(np.zeros((4, 8, 8), np.uint8))


def test_stream_windows_match_the_clips_of_predict(recognizer, make_video):
    video = make_video("s.mp4", moving_square_frames(40, 96, 128), crf=0)
    pred = recognizer.predict(video, topk=4)
    frames = recognizer.timed_frames(video)
    windows = [s.window for s in stream_windows(recognizer, frames, 8, 8, topk=4) if s.window]
    assert len(windows) == 5 and all(w.latency > 0 and w.num_frames == 8 for w in windows)
    for window, clip in zip(windows, pred.clips, strict=True):
        assert (window.start, window.end) == pytest.approx((clip.start, clip.end))
        assert [label for label, _ in window.topk] == [label for label, _ in clip.topk]
    # A stream that ends before the window fills is scored once on what it had.
    partial = [s.window for s in stream_windows(recognizer, frames_of(video, 40), 64, 4)]
    assert [(w.num_frames, w.looped) for w in partial if w] == [(40, False)]
    short = [s.window for s in stream_windows(recognizer, frames_of(video, 5), 64, 4)]
    assert [(w.num_frames, w.looped) for w in short if w] == [(5, True)]


def frames_of(video: Path, count: int):
    frames = decode_video(video, fps=25.0, short_side=96)[:count]
    return ((i / 25.0, frame) for i, frame in enumerate(frames))


def test_background_raises_in_the_consumer_and_stops_when_closed():
    def failing():
        yield 1
        raise ValueError("decoder broke")

    with pytest.raises(ValueError, match="decoder broke"):
        list(background(failing()))
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    items = background(endless(), maxsize=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert closed.wait(5.0)
