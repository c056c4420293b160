"""``mars predict``, ``mars stream`` and ``mars export``."""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mars_action.errors import MarsError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from mars_action.inference.prediction import Prediction
    from mars_action.inference.recognizer import Recognizer

# export.FORMATS and runtime.RUNTIMES, named here so that --help loads no torch (a test
# keeps them equal).
FORMATS = ("torchscript", "onnx")
RUNTIMES = ("auto", "pytorch", "onnxruntime")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mars predict``, ``mars stream`` and ``mars export`` to ``mars`` (``cli.py`` calls
    this); the handlers import torch and the stage's modules themselves, so building the parser
    stays light."""
    predict = subparsers.add_parser(
        "predict", help="recognise actions in video files with an RGB/MARS model (no flow)"
    )
    predict.add_argument("videos", nargs="+", metavar="VIDEO", help="video files to recognise")
    _add_model_args(predict)
    predict.add_argument("--json", action="store_true", help="one JSON line per video")
    predict.add_argument(
        "--output", help="annotated video (.mp4); a folder when several videos are given"
    )
    predict.add_argument("--batch-size", type=int, default=8, help="clips per network batch")
    predict.set_defaults(handler=_predict)

    stream = subparsers.add_parser(
        "stream", help="recognise actions live: a camera index, a file or a URL"
    )
    stream.add_argument("source", help="camera index (0), video file, or URL FFmpeg opens")
    _add_model_args(stream)
    stream.add_argument("--window", type=int, help="frames per window (default: clip length)")
    stream.add_argument("--every", type=int, help="score every S frames (default: window / 2)")
    stream.add_argument("--output", help="write the stream with the verdict drawn on it")
    stream.set_defaults(handler=_stream)

    export = subparsers.add_parser(
        "export", help="export a checkpoint to TorchScript or ONNX (dynamic batch), checked"
    )
    export.add_argument("checkpoint", help="our checkpoint or a released MARS .pth")
    export.add_argument("--format", choices=FORMATS, required=True, help="the file format")
    export.add_argument("--out", help="output file (default: beside the checkpoint)")
    export.add_argument("--labels", help="class names to store, one per line")
    export.add_argument("--arch", help="architecture when a released file names none")
    export.add_argument("--video", action="append", default=[], help="real clips to check on")
    export.add_argument(
        "--precision", choices=("fp32", "bf16", "int8"), default="fp32",
        help="bf16 / int8 for the CPU (TorchScript): written only when its top-1 agrees with "
        "float32 on all clips of the --video files at least --min-agreement",
    )
    export.add_argument(
        "--calibrate", action="append", default=[],
        help="a training video whose clips set int8's activation ranges (repeat: a few)",
    )
    export.add_argument("--min-agreement", type=float, default=0.99,
                        help="the floor of top-1 agreement with float32 (default 0.99)")
    export.add_argument(
        "--atol", type=float, default=1e-4, help="absolute tolerance of |exported - PyTorch|"
    )
    export.add_argument(
        "--rtol",
        type=float,
        default=1e-3,
        help="relative tolerance: a logit may differ by atol + rtol * |PyTorch logit|",
    )
    export.set_defaults(handler=_export)


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="our checkpoint or a MARS .pth")
    parser.add_argument("--labels", help="class names, one per line (needed for a .pth)")
    parser.add_argument("--arch", help="architecture when a released file names none")
    parser.add_argument("--topk", type=int, default=5, help="classes shown per video or window")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="pytorch",
        help="engine for a checkpoint's network (default pytorch, the fastest on an idle CPU); "
        "onnxruntime keeps its speed on a CPU shared with other busy processes (exported "
        "once, checked against PyTorch, cached in $MARS_CACHE_DIR or ~/.cache/mars_action); "
        "auto: onnxruntime on a CPU when possible, else pytorch. An exported file runs in "
        "its own engine",
    )


def _recognizer(args: argparse.Namespace) -> Recognizer:
    from mars_action.inference.recognizer import Recognizer

    if args.topk < 1:
        raise MarsError(f"--topk {args.topk}: must be at least 1")
    recognizer = Recognizer.from_checkpoint(
        args.checkpoint,
        device=args.device,
        labels=args.labels,
        arch=args.arch,
        runtime=args.runtime,
    )
    if recognizer.runtime_note:
        print(f"mars {args.command}: {recognizer.runtime_note}", file=sys.stderr)
    return recognizer


# --- predict -------------------------------------------------------------------------


def _flushing_denormals(handler):
    """Run a command with denormal floats flushed to zero (PyTorch's default is off).

    Denormals (< 1e-38) can cost a CPU several times the time of normal floats and
    change no prediction; the flag is process-wide, so it is reset afterwards for
    callers of ``main`` in their own process (tests).
    """

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        import torch

        torch.set_flush_denormal(True)
        try:
            return handler(args)
        finally:
            torch.set_flush_denormal(False)

    return run


@_flushing_denormals
def _predict(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise MarsError(f"--batch-size {args.batch_size}: must be at least 1")
    from mars_action.inference.prediction import VideoFailure

    outputs = _output_paths(args.videos, args.output) if args.output else [None] * len(args.videos)
    recognizer = _recognizer(args)
    failed = 0
    results = recognizer.predict_each(args.videos, args.topk, args.batch_size)
    for result, out in zip(results, outputs, strict=True):
        if isinstance(result, VideoFailure):
            failed += 1
            print(f"mars predict: {result.reason}", file=sys.stderr)
            if args.json:
                print(json.dumps(result.to_dict()), flush=True)
            continue
        print(json.dumps(result.to_dict()) if args.json else result.format_table(), flush=True)
        if out is not None and not _annotate(args, recognizer, result, out):
            failed += 1
    done = len(args.videos) - failed
    if len(args.videos) > 1 or failed:
        print(f"mars predict: {done} of {len(args.videos)} videos predicted", file=sys.stderr)
    if failed and not done:
        raise MarsError("no video could be predicted")
    return 1 if failed else 0


def _output_paths(videos: list[str], output: str) -> list[Path]:
    """Where each annotated video goes, checked before any work: never over an input.

    One video: ``output`` itself, unless it is a folder (an existing one, or a name
    ending in ``/``). Several: ``<output>/<stem>.mp4``, numbered (``x-1.mp4``) where
    two inputs share a stem or the name is one of the inputs.
    """
    from mars_action.files import free_name

    inputs = {Path(video).resolve() for video in videos}
    folder = Path(output)
    if len(videos) == 1 and not output.endswith(("/", os.sep)) and not folder.is_dir():
        if folder.resolve() in inputs:
            raise MarsError(f"--output {output}: is the input video; choose another name")
        return [folder]
    if folder.exists() and not folder.is_dir():
        raise MarsError(f"--output {output}: not a folder (several videos need one)")
    folder.mkdir(parents=True, exist_ok=True)
    taken, outputs = set(inputs), []
    for video in videos:
        out = free_name(folder / f"{Path(video).stem}.mp4", taken)
        taken.add(out.resolve())
        outputs.append(out)
    return outputs


def _annotate(
    args: argparse.Namespace, recognizer: Recognizer, result: Prediction, out: Path
) -> bool:
    from mars_action.inference.annotate import annotate_video

    try:
        annotate_video(result.source, result, out, recognizer.preprocessing, args.topk)
    except MarsError as error:
        print(f"mars predict: {out}: annotation failed: {error}", file=sys.stderr)
        return False
    print(f"annotated video: {out}", file=sys.stderr if args.json else sys.stdout)
    return True


# --- stream --------------------------------------------------------------------------


@_flushing_denormals
def _stream(args: argparse.Namespace) -> int:
    source = Path(args.source)
    if args.output and source.is_file() and Path(args.output).resolve() == source.resolve():
        raise MarsError(f"--output {args.output}: is the input video; choose another name")
    from mars_action.inference.background import background
    from mars_action.inference.stream import open_source
    from mars_action.video.writer import write_video

    recognizer = _recognizer(args)
    pre = recognizer.preprocessing
    window = pre.clip_len if args.window is None else args.window
    every = max(1, window // 2) if args.every is None else args.every
    if window < 1 or every < 1:
        raise MarsError(f"--window {window} and --every {every} must be at least 1")
    frames, live = open_source(args.source, pre.fps, pre.short_side)
    try:  # open it now: a source that cannot be read is an error, not an empty stream
        first = next(frames)
    except StopIteration:
        raise MarsError(f"{args.source}: no frames") from None
    frames = itertools.chain([first], frames)
    print(
        f"mars stream: {args.source}: window {window} frames, scored every {every} frames at "
        f"{pre.fps:g} fps",
        file=sys.stderr,
    )
    timed = background(frames, maxsize=2 * window, drop_oldest=live)
    counts = {"frames": 0, "windows": 0, "stopped": 0}
    shown = _stream_frames(recognizer, timed, window, every, args, counts)
    if args.output:
        try:
            write_video(args.output, shown, fps=pre.fps)
        except ValueError:
            raise MarsError(f"{args.source}: no frames to write to {args.output}") from None
    else:
        for _ in shown:
            pass
    return 0 if counts["windows"] and not counts["stopped"] else 1


def _stream_frames(
    recognizer: Recognizer,
    timed: Iterator[tuple[float, np.ndarray]],
    window: int,
    every: int,
    args: argparse.Namespace,
    counts: dict[str, int],
) -> Iterator[np.ndarray]:
    """Print each window's verdict; yield frames with the latest verdict drawn on."""
    from mars_action.inference.annotate import draw_topk
    from mars_action.inference.stream import stream_windows

    latest = None
    try:
        for item in stream_windows(recognizer, timed, window, every, args.topk):
            if item.window is not None:
                latest = item
                counts["windows"] += 1
                print(item.window.format_line(), flush=True)
            if item.frame is None:
                continue
            counts["frames"] += 1
            topk = latest.window.topk if latest else []
            header = f"{item.timestamp:7.2f} s" + (
                f"  {latest.window.latency * 1000:.0f} ms" if latest else ""
            )
            yield draw_topk(item.frame, topk, header)
        message = "stream ended"
    except MarsError as error:  # a source that broke off: what came before still counts
        counts["stopped"] = 1
        message = f"stream stopped: {error}"
    except KeyboardInterrupt:  # ends a camera stream; the output file is still finished
        message = "stream stopped by the user"
    print(
        f"mars stream: {message}; {counts['frames']} frames, {counts['windows']} windows",
        file=sys.stderr,
    )


# --- export --------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    from mars_action.inference.export import (
        check_close,
        default_output,
        export_model,
        failed_output,
        load_exported,
        random_clips,
    )
    from mars_action.models.checkpoint import load_checkpoint, read_labels

    for name in ("atol", "rtol"):
        value = getattr(args, name)
        if not value >= 0:  # also refuses nan
            raise MarsError(f"--{name} {value}: must be a number >= 0")
    names = read_labels(args.labels) if args.labels else None
    model, meta = load_checkpoint(args.checkpoint, arch=args.arch, class_names=names)
    if args.precision != "fp32":
        return _export_reduced(args, model, meta)
    out = Path(args.out) if args.out else default_output(args.checkpoint, args.format)
    unchecked = failed_output(out)  # renamed to ``out`` only once the check passes
    export_model(model, meta, unchecked, args.format)
    checks = {"random": random_clips(meta, batch=3, seed=1)}  # batch 3: not the traced 2
    if args.video:
        checks["real"] = _real_clips(model, meta, args.video)
    exported = load_exported(unchecked)
    worst = 0.0
    for name, clips in checks.items():
        diff, ratio = check_close(exported, model, clips, args.atol, args.rtol)
        worst = max(worst, ratio)
        shape = tuple(clips.shape)
        print(
            f"check {name:6s} clips {shape}: {ratio:.2f} of the tolerance, "
            f"max |{args.format} - torch| = {diff:.2e}"
        )
    if worst > 1:
        raise MarsError(
            f"{out}: the exported model differs from PyTorch by {worst:.2f} times the "
            f"tolerance (atol {args.atol:g} + rtol {args.rtol:g} * |logit|); not written "
            f"under that name, kept as {unchecked} for inspection"
        )
    os.replace(unchecked, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {meta.arch}, dynamic batch)")
    return 0


def _export_reduced(args: argparse.Namespace, model: torch.nn.Module, meta) -> int:
    """``--precision bf16|int8``: convert, check the top-1 agreement, write TorchScript."""
    from mars_action.inference.export import default_output
    from mars_action.inference.precision import export_reduced

    option = f"--precision {args.precision}"
    if args.format != "torchscript":
        raise MarsError(f"{option}: written as TorchScript only (--format torchscript)")
    if not args.video:
        raise MarsError(f"{option}: name held-out videos with --video; the top-1 agreement "
                        "with float32 is measured on their clips")
    if args.precision == "int8" and not args.calibrate:
        raise MarsError(f"{option}: name a few training videos with --calibrate")
    default = default_output(args.checkpoint, "torchscript")
    out = Path(args.out) if args.out else default.with_name(f"{Path(args.checkpoint).stem}."
                                                            f"{args.precision}.torchscript.pt")
    test = _real_clips(model, meta, args.video, per_video=None)
    calibration = _real_clips(model, meta, args.calibrate, per_video=4) if args.calibrate else None
    share = export_reduced(model, meta, out, args.precision, test, calibration,
                           args.min_agreement)
    print(f"check top-1 agreement with float32 on {len(test)} clips of {len(args.video)} "
          f"videos: {share:.1%} (floor {args.min_agreement:.1%})")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {meta.arch}, {args.precision})")
    return 0


def _real_clips(model: torch.nn.Module, meta, videos: list[str], per_video: int | None = 2):
    """(K, 3, T, S, S) normalised clips of ``videos``, preprocessed as predict does."""
    from mars_action.inference.recognizer import Recognizer

    if meta.modality != "rgb":
        raise MarsError(f"--video needs an RGB-input checkpoint; this one takes {meta.modality}")
    return Recognizer(model, meta, device="cpu", optimize=False).clips_of(videos, per_video)
