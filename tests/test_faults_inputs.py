"""Fault matrix, inputs and outputs: bad config values, data problems, outputs over inputs,
disk full and permissions (simulated: tests run as root), texts, failed exports.

Every case: one line naming the file or key, a non-zero exit, no traceback, nothing
half-written that looks complete.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from conftest import moving_square_frames
from test_inference import save_tiny_checkpoint

from mars_action.cli import main
from mars_action.data.builder import check_data, load_annotations
from mars_action.errors import MarsError
from mars_action.evaluation.scores import load_scores
from mars_action.inference import commands as inference_commands
from mars_action.inference import export
from mars_action.models import checkpoint as ck
from mars_action.video import batch
from mars_action.video import framestore as fs
from mars_action.video.decode import probe
from mars_action.video.writer import write_video

TINY = str(Path(__file__).parents[1] / "configs" / "tiny" / "rgb.yaml")
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error" in line]
    return line


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=abc", "optim.lr: expected a number, got 'abc'"),
        ("optim.lr=nan", "optim.lr: expected a number, got 'nan'"),
        ("optim.lr=.nan", "optim.lr: expected a finite number, got nan"),
        ("optim.lr=-1", "optim.lr=-1.0: must be > 0"),
        ("data.clip_len=0", "data.clip_len=0: must be >= 1"),
        ("data.num_workers=-3", "data.num_workers=-3: must be >= 0"),
        ("data.batch_size=true", "data.batch_size: expected int, got True"),
        ("optim.momentum=1.5", "optim.momentum=1.5: must be between 0 and 1"),
    ],
)
def test_bad_config_values_fail_at_load_before_any_run_folder(tmp_path, capsys, override, message):
    run = tmp_path / "run"
    assert main(["train", TINY, override, "--run-dir", str(run)]) == 2
    assert message in one_error_line(capsys)
    assert not run.exists()


def test_train_without_its_dataset_is_one_line_and_makes_no_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    missing = tmp_path / "data" / "manifest.csv"
    assert main(["train", TINY, f"data.annotations={missing}", "--run-dir", str(run)]) == 2
    assert f"{missing}: annotation file or folder not found" in one_error_line(capsys)
    assert not run.exists()


def write_manifest(tmp_path: Path) -> Path:
    """Classes a, b with train videos, c only in test; one annotated video absent."""
    root = tmp_path / "videos"
    for name in ("a/a1.mp4", "a/a2.mp4", "b/b1.mp4", "c/c1.mp4"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")  # matched by name only
    manifest = tmp_path / "manifest.csv"
    rows = ["a/a1.mp4,a,train", "a/a2.mp4,a,train", "b/b1.mp4,b,train", "b/gone.mp4,b,train"]
    manifest.write_text("path,label,split\n" + "\n".join([*rows, "c/c1.mp4,c,test"]) + "\n")
    return manifest


def test_missing_videos_and_untrained_classes_warn_or_fail_with_strict(tmp_path, capsys):
    manifest = write_manifest(tmp_path)
    annotations = load_annotations("manifest", tmp_path / "videos", manifest, val_fraction=0)
    assert annotations.class_names == ["a", "b", "c"]  # c keeps its index though never trained
    problems = check_data(annotations)
    assert problems == [
        "1 annotated video(s) not found (b/gone.mp4 ...)",
        "1 class(es) with no training video (c)",
    ]
    assert capsys.readouterr().err.count("warning: manifest dataset:") == 2
    with pytest.raises(MarsError, match="not found .* no training video .c.*strict"):
        check_data(annotations, strict=True)
    argv = ["data-summary", "manifest", "--annotations", str(manifest)]
    assert main(argv) == 0  # no video root: nothing is missing; an untrained class warns
    assert "warning: 1 class(es) with no training video (c)" in capsys.readouterr().out
    assert main([*argv, "--strict"]) == 1
    assert "error: 1 class(es) with no training video (c)" in capsys.readouterr().out


def test_data_summary_verify_names_a_done_folder_that_lost_frames(tmp_path, capsys):
    store = tmp_path / "frames"
    for name in ("c/v1", "c/v2"):
        fs.write_frames(store / name, moving_square_frames(6, 32, 32))
    (store / "c" / "v2" / "00006.jpg").unlink()
    assert main(["data-summary", "folder", "--frame-root", str(store), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "verify: 2 done markers checked, 1 not matching their record" in out
    assert f"bad: {store / 'c' / 'v2'}: marked done with 6 frames, holds 5" in out


def test_predict_never_writes_over_an_input(tmp_path, capsys):
    video = write_video(tmp_path / "x.mp4", moving_square_frames(4))
    original = video.read_bytes()
    argv = ["predict", str(video), "--checkpoint", str(tmp_path / "none.pt")]
    assert main([*argv, "--output", str(video)]) == 2
    assert "is the input video" in one_error_line(capsys)
    assert video.read_bytes() == original
    stream = ["stream", str(video), "--checkpoint", str(tmp_path / "none.pt")]
    assert main([*stream, "--output", str(video)]) == 2
    assert "is the input video" in one_error_line(capsys)
    assert video.read_bytes() == original
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.mp4").write_bytes(b"input")
    inputs = [str(tmp_path / "a" / "x.mp4"), str(tmp_path / "b" / "x.mp4"), str(video)]
    outputs = inference_commands._output_paths(inputs, str(tmp_path))
    # tmp_path/x.mp4 is an input: numbered names, and the two a/x, b/x never collide.
    assert [p.name for p in outputs] == ["x-1.mp4", "x-2.mp4", "x-3.mp4"]
    assert inference_commands._output_paths(inputs, str(tmp_path / "out")) == [
        tmp_path / "out" / name for name in ("x.mp4", "x-1.mp4", "x-2.mp4")
    ]
    new = inference_commands._output_paths([str(video)], f"{tmp_path / 'newdir'}/")
    assert new == [tmp_path / "newdir" / "x.mp4"] and (tmp_path / "newdir").is_dir()


def test_disk_full_during_frames_fails_items_and_says_the_report_was_not_written(
    tmp_path, capsys, monkeypatch
):
    write_video(tmp_path / "src" / "c" / "v.mp4", moving_square_frames(4))
    out = tmp_path / "out"
    (out).mkdir()
    (out / "frames-report.json").write_text("{}")  # a previous run's report
    (out / "frames-report.csv").write_text("")

    def full(image, quality=95):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "c" / "x.jpg"))

    def report_full(path, payload):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(fs, "encode_jpeg", full)
    monkeypatch.setattr(batch, "write_atomic", report_full)
    assert main(["frames", str(tmp_path / "src"), str(out), "--workers", "1"]) == 1
    printed, err = capsys.readouterr()
    assert "Traceback" not in err
    assert f"{out / 'c' / 'x.jpg'}: no space left on device" in err
    assert f"report not written: {out / 'frames-report.json'}: no space left on device" in err
    assert not (out / "frames-report.json").exists()  # nothing describes a run that failed
    assert "report: " not in printed
    assert not fs.is_done(out / "c" / "v")


@pytest.mark.parametrize("wrapped", [False, True])
def test_disk_full_while_saving_a_checkpoint_keeps_the_last_good_one(
    tmp_path, monkeypatch, wrapped
):
    path = tmp_path / "last.pt"
    model = torch.nn.Linear(3, 2)
    ck.save_checkpoint(path, model, ck.CheckpointMeta("resnet10_tiny", 3, 2))
    good = path.read_bytes()

    def full(payload, file):
        file.write(b"partial")
        if not wrapped:
            raise ENOSPC
        try:  # torch reports a failed write as a RuntimeError raised during the OSError
            raise ENOSPC
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] . unexpected pos") from None

    monkeypatch.setattr(ck.torch, "save", full)
    with pytest.raises(MarsError) as caught:
        ck.save_checkpoint(path, model, ck.CheckpointMeta("resnet10_tiny", 3, 2))
    assert str(caught.value) == (
        f"{path}: no space left on device (checkpoint not written; last.pt keeps its "
        "previous content)"
    )
    assert path.read_bytes() == good and sorted(os.listdir(tmp_path)) == ["last.pt"]


def test_permission_errors_are_one_line(tmp_path, capsys, monkeypatch):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"x")

    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(ck.torch, "load", denied)
    video = write_video(tmp_path / "v.mp4", moving_square_frames(4))
    assert main(["predict", str(video), "--checkpoint", str(checkpoint)]) == 2
    line = one_error_line(capsys)
    assert line == f"mars predict: error: cannot read checkpoint {checkpoint}: permission denied"
    # A read-only output parent or an unreadable class folder: the same one line.
    monkeypatch.setattr("mars_action.video.extract.find_videos", denied)
    assert main(["frames", str(tmp_path / "videos"), str(tmp_path / "out")]) == 2
    assert one_error_line(capsys).endswith(f"{tmp_path / 'videos'}: permission denied")


def test_texts_of_symlink_loops_and_random_bytes(tmp_path):
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    with pytest.raises(MarsError, match="loop.mp4: symbolic link loop"):
        probe(loop)
    (tmp_path / "loop.pt").symlink_to(tmp_path / "loop.pt")
    with pytest.raises(MarsError, match="loop.pt: symbolic link loop"):
        ck.load_checkpoint(tmp_path / "loop.pt")
    scores = tmp_path / "scores.npz"
    scores.write_bytes(os.urandom(512))
    with pytest.raises(MarsError) as caught:
        load_scores(scores)
    assert str(caught.value) == f"{scores}: not a readable score file (not a NumPy .npz archive)"
    assert "allow_pickle" not in str(caught.value)


def test_a_failed_export_check_never_leaves_the_requested_name(tmp_path, capsys, monkeypatch):
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "model.torchscript.pt"
    argv = ["export", str(checkpoint), "--format", "torchscript", "--out", str(out)]
    monkeypatch.setattr(export, "check_close", lambda *args: (1.25e-1, 12.5))
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "differs from PyTorch by 12.50 times the tolerance (atol 0.0001 + rtol 0.001" in line
    failed = tmp_path / "model.failed.torchscript.pt"
    assert not out.exists() and failed.is_file() and f"kept as {failed}" in line
    monkeypatch.undo()
    assert main([*argv, "--atol", "1e-3", "--rtol", "0"]) == 0
    assert out.is_file() and not failed.exists()
    assert export.failed_output(tmp_path / "best.onnx") == tmp_path / "best.failed.onnx"
