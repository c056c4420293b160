"""``mars predict``, ``mars stream`` and ``mars export`` driven through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import moving_square_frames
from test_inference import CLASSES, onnx_cache_in_tmp, save_tiny_checkpoint  # noqa: F401

from mars_action.cli import main
from mars_action.inference import Recognizer, read_exported_meta
from mars_action.video.decode import decode_video


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture
def videos(make_video):
    """Two good videos (40 and 5 frames) and the frames of the first."""
    frames = moving_square_frames(40, 96, 128)
    long = make_video("long.mp4", frames, crf=0)
    short = make_video("short.mp4", moving_square_frames(5, 96, 128, seed=3), crf=0)
    return long, short, frames


def test_predict_prints_a_table_per_video(checkpoint, videos, capsys):
    long, short, _ = videos
    code = main(["predict", str(long), str(short), "--checkpoint", str(checkpoint), "--topk", "2"])
    out, err = capsys.readouterr()
    assert code == 0
    assert f"{long}  (1.6 s, 40 frames, 5 clips)" in out
    assert f"{short}  (0.2 s, 5 frames, 1 clip)" in out
    assert out.count("  1. ") == 2 and out.count("  2. ") == 2 and "  3. " not in out
    assert "note: shorter than one 8-frame clip (5 frames at 25 fps)" in out
    assert "2 of 2 videos predicted" in err


def test_predict_json_lines_and_annotated_video(checkpoint, videos, tmp_path, capsys):
    long, _, frames = videos
    out_video = tmp_path / "annotated.mp4"
    argv = ["predict", str(long), "--checkpoint", str(checkpoint), "--json"]
    code = main([*argv, "--output", str(out_video)])
    out, err = capsys.readouterr()
    assert code == 0 and f"annotated video: {out_video}" in err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["video"] == str(long) and row["num_frames"] == 40 and not row["looped"]
    assert len(row["topk"]) == 4 and {t["label"] for t in row["topk"]} == set(CLASSES)
    assert sum(t["probability"] for t in row["topk"]) == pytest.approx(1.0, abs=1e-4)
    assert [c["start"] for c in row["clips"]] == [0.0, 0.32, 0.64, 0.96, 1.28]
    annotated = decode_video(out_video, fps=None, short_side=None)
    plain = decode_video(long, fps=25.0, short_side=96)
    assert annotated.shape == plain.shape == (40, 96, 128, 3)
    corner = np.abs(annotated[:, :20, :40].astype(int) - plain[:, :20, :40]).mean()
    rest = np.abs(annotated[:, 60:, 60:].astype(int) - plain[:, 60:, 60:]).mean()
    assert corner > 20 and rest < 8  # text drawn top-left; the rest only re-encoded (crf 18)


def test_predict_goes_on_past_bad_videos(checkpoint, videos, tmp_path, capsys):
    long, short, _ = videos
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00not a video" * 100)
    missing = tmp_path / "missing.mp4"
    args = [str(long), str(missing), str(corrupt), str(short)]
    code = main(["predict", *args, "--checkpoint", str(checkpoint), "--json"])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [row["video"] for row in rows] == args
    assert ["error" in row for row in rows] == [False, True, True, False]
    assert rows[3]["looped"] and "looped" in rows[3]["note"] and "note" not in rows[0]
    assert f"{missing}: no such file" in err and f"{corrupt}:" in err
    assert "2 of 4 videos predicted" in err
    assert main(["predict", str(missing), "--checkpoint", str(checkpoint)]) == 2
    assert "no video could be predicted" in capsys.readouterr().err


def test_predict_without_labels_says_labels_is_required(tmp_path, videos, capsys):
    bare = save_tiny_checkpoint(tmp_path / "bare.pt", class_names=[])
    assert main(["predict", str(videos[0]), "--checkpoint", str(bare)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--labels FILE is required" in err
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(CLASSES))
    argv = ["predict", str(videos[0]), "--checkpoint", str(bare), "--labels", str(labels)]
    assert main([*argv, "--runtime", "pytorch"]) == 0


def test_stream_on_a_file_prints_windows(checkpoint, videos, tmp_path, capsys):
    long, _, _ = videos
    out_video = tmp_path / "stream.mp4"
    argv = ["stream", str(long), "--checkpoint", str(checkpoint), "--window", "16", "--every", "8"]
    code = main([*argv, "--topk", "1", "--output", str(out_video)])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert code == 0
    assert len(lines) == 4  # windows ending at frames 16, 24, 32, 40
    assert lines[0].startswith("[    0.00 -     0.64 s]") and lines[-1].startswith("[    0.96 -")
    assert all("latency" in line and " ms" in line for line in lines)
    assert "stream ended; 40 frames, 4 windows" in err
    assert decode_video(out_video, fps=None, short_side=None).shape[0] == 40
    assert main(["stream", str(tmp_path / "gone.mp4"), "--checkpoint", str(checkpoint)]) == 2
    assert "gone.mp4: no such file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "fmt, suffix",
    [("torchscript", ".torchscript.pt"), pytest.param("onnx", ".onnx", marks=pytest.mark.slow)],
)
def test_export_matches_pytorch(checkpoint, videos, tmp_path, capsys, fmt, suffix):
    out = tmp_path / f"model{suffix}"
    code = main(
        ["export", str(checkpoint), "--format", fmt, "--out", str(out), "--video", str(videos[0])]
    )
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file()
    diffs = [float(line.rsplit("=", 1)[1]) for line in printed.splitlines() if "check" in line]
    assert len(diffs) == 2 and max(diffs) <= 1e-4  # random and real clips
    assert read_exported_meta(out).class_names == CLASSES
    # The exported file predicts like the checkpoint (ONNX: in ONNX Runtime), on
    # 5 clips in one batch where the export was traced with 2: the batch is dynamic.
    exported = Recognizer.from_checkpoint(out, device="cpu")
    assert exported.runtime == {"onnx": "onnxruntime", "torchscript": "torchscript"}[fmt]
    exported_pred = exported.predict(videos[0])
    reference = Recognizer.from_checkpoint(checkpoint, device="cpu", runtime="pytorch")
    reference_pred = reference.predict(videos[0])
    np.testing.assert_allclose(exported_pred.clip_logits, reference_pred.clip_logits, atol=1e-4)
