"""Subcommands of the video stage: ``mars frames``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mars_action.errors import MarsError
from mars_action.video.batch import parse_shard


def register(subparsers) -> None:
    """Add ``mars frames`` to ``mars`` (``cli.py`` calls this); the handlers import torch and
    the stage's modules themselves, so building the parser stays light."""
    parser = subparsers.add_parser(
        "frames",
        help="decode videos into the frame store (JPEG frames at a fixed fps)",
        description=(
            "Decode every video into OUT_DIR/<class>/<video>/00001.jpg ... with a 'done' "
            "record (JSON: the frame count) written last. Resumable (videos with 'done' are "
            "skipped) and shardable; ends with a summary and a JSON + CSV report; exits 1 if "
            "any video failed."
        ),
    )
    parser.add_argument(
        "videos",
        type=Path,
        metavar="VIDEOS_DIR_OR_LIST",
        help="a folder <class>/<video>.<ext>, or a text file with one video path a line "
        "(relative to the list's folder; the class is the parent folder's name)",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the frame store to write")
    parser.add_argument(
        "--fps",
        type=float,
        default=25.0,
        help="output frame rate (default 25); 0 keeps the native rate",
    )
    parser.add_argument(
        "--short-side",
        type=int,
        default=256,
        help="resize the short side to this (default 256); 0 keeps the size",
    )
    parser.add_argument(
        "--quality",
        type=int,
        default=None,
        help="JPEG quality 1-100 (default 95, close to ffmpeg -q:v 2)",
    )
    parser.add_argument(
        "--preset",
        choices=("mars", "released"),
        default="mars",
        help="'released': the authors' `ffmpeg -i V -r 25 -q:v 2 -vf scale=-1:256` frames "
        "(same frames, resize and JPEG; needs no ffmpeg program; fixes fps, size and "
        "quality); 'mars' (default): --fps, --short-side and --quality as given",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="decoder threads per worker (default: cores // workers, at least 1)",
    )
    parser.add_argument("--shard", default="0/1", metavar="i/n", help="do shard i of n (0-based)")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="report path (.json and .csv); default OUT_DIR/frames-report[-shard-i-of-n]",
    )
    parser.set_defaults(handler=run_frames)


def run_frames(args: argparse.Namespace) -> int:
    """``mars frames``: decode videos to a JPEG frame store, sharded and resumable."""
    from mars_action.video.extract import extract_frames
    from mars_action.video.framestore import DEFAULT_QUALITY

    index, count = shard = parse_shard(args.shard)
    if args.fps < 0 or args.short_side < 0:
        raise MarsError("--fps and --short-side must be positive (or 0 to keep the video's)")
    if args.preset == "released" and (
        args.quality is not None or (args.fps, args.short_side) != (25, 256)
    ):
        raise MarsError("--preset released: fps 25, short side 256 and -q:v 2 are the command's")
    args.quality = DEFAULT_QUALITY if args.quality is None else args.quality
    if not 1 <= args.quality <= 100:
        raise MarsError(f"--quality {args.quality}: must be 1-100")
    for option in ("workers", "threads"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise MarsError(f"--{option} {value}: must be at least 1")
    suffix = f"-shard-{index}-of-{count}" if count > 1 else ""
    report = args.report or args.out_dir / f"frames-report{suffix}.json"
    summary = extract_frames(
        args.videos,
        args.out_dir,
        fps=args.fps or None,
        short_side=args.short_side or None,
        quality=args.quality,
        workers=args.workers,
        threads=args.threads,
        shard=shard,
        report_path=report,
        preset=args.preset,
    )
    print(summary.format(), file=sys.stderr if summary.failures else sys.stdout)
    if not summary.report_error:
        print(f"report: {report.with_suffix('.json')} (and .csv)")
    return summary.exit_code
