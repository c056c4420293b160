"""Subcommands of the flow stage: ``mars flow`` (extraction) and ``mars flow-check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mars_action import threads
from mars_action.errors import MarsError
from mars_action.video.batch import parse_shard

METHOD_NAMES = ("tvl1", "tvl1-torch", "farneback", "mpeg")
PRESET_NAMES = ("opencv-cpu", "opencv-cuda")


def register(subparsers) -> None:
    """Add ``mars flow`` and ``mars flow-check`` to ``mars`` (``cli.py`` calls this); the
    handlers import torch and the stage's modules themselves, so building the parser stays
    light."""
    _register_flow(subparsers)
    _register_check(subparsers)


def _register_flow(subparsers) -> None:
    parser = subparsers.add_parser(
        "flow",
        help="optical flow of a frame store (beside the frames) or of videos",
        description=(
            "Compute flow i = frame i -> i+1 for every video and write 8-bit JPEGs "
            "<prefix>x_00001.jpg / <prefix>y_00001.jpg (bound 20 px) and a <prefix>done "
            "marker. SOURCE is a frame store made by 'mars frames', or frames a dataset "
            "ships as <root>/<id>/00001.jpg (Something-Something; numbered without gaps): "
            "flow goes beside the frames; or videos (a folder <class>/<video>.<ext> or a "
            "list; needs --out; --packed: one file a video). "
            "Resumable, shardable; ends with a summary and a JSON + CSV report; exits 1 "
            "if any video failed."
        ),
    )
    parser.add_argument(
        "source",
        type=Path,
        metavar="FRAME_STORE_OR_VIDEOS",
        help="a frame store of mars frames, or videos (a folder <class>/<video>.<ext> or a list)",
    )
    parser.add_argument("--out", type=Path, default=None, help="output root for videos")
    parser.add_argument(
        "--method",
        choices=METHOD_NAMES,
        default="tvl1",
        help="tvl1: OpenCV's TV-L1, the paper's (slow: about 1 s a pair at 256 px on a "
        "core); tvl1-torch: the same on a GPU; farneback: fast, coarser; mpeg: codec vectors",
    )
    parser.add_argument(
        "--preset", choices=PRESET_NAMES, default="opencv-cpu", help="tvl1-torch variant"
    )
    parser.add_argument("--device", default="cpu", help="tvl1-torch: cpu, cuda, cuda:1...")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="tvl1-torch: pairs at once (1 CPU, 16 GPU)"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="tvl1-torch: torch.compile the iteration (~5x faster on a CPU core; each "
        "process compiles once, ~15 s; needs a C++ compiler or Triton)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default: one per core)"
    )
    parser.add_argument("--shard", default="0/1", metavar="i/n", help="do shard i of n (0-based)")
    parser.add_argument("--prefix", default=None, help="file prefix (default: the method's)")
    parser.add_argument(
        "--quantize",
        choices=("floor", "round"),
        default="floor",
        help="px -> 8-bit code (floor: the released code's)",
    )
    parser.add_argument("--quality", type=int, default=None, help="JPEG quality (default 95)")
    parser.add_argument("--fps", type=float, default=25.0, help="videos: frame rate (0: native)")
    parser.add_argument("--short-side", type=int, default=256, help="videos: short side (0: keep)")
    parser.add_argument(
        "--reencode",
        action="store_true",
        help="mpeg from videos: re-encode without B-frames first (exact vector scales)",
    )
    parser.add_argument(
        "--packed",
        action="store_true",
        help="videos: one file a video, OUT/<class>/<video>.<prefix>pack (the same JPEG "
        "planes behind an offset table) instead of two files a pair; datasets read it "
        "with data.flow_root",
    )
    parser.add_argument("--report", type=Path, default=None, help="report path (.json + .csv)")
    parser.set_defaults(handler=run_flow)


def run_flow(args: argparse.Namespace) -> int:
    """``mars flow``: optical flow for a frame store or a folder of videos, resumable."""
    from mars_action.flow.extract import FlowJob, extract_flow, is_frame_store
    from mars_action.flow.methods import default_prefix
    from mars_action.video.framestore import DEFAULT_QUALITY

    index, count = shard = parse_shard(args.shard)
    args.quality = DEFAULT_QUALITY if args.quality is None else args.quality
    _check_numbers(args)
    free = threads.free_cores()
    workers = args.workers or (1 if args.device != "cpu" else threads.cores())
    job = FlowJob(
        method=args.method,
        prefix=args.prefix or default_prefix(args.method, args.preset),
        quantize=args.quantize,
        quality=args.quality,
        device=args.device,
        batch_size=args.batch_size,
        preset=args.preset,
        compile=args.compile,
        fps=args.fps or None,
        short_side=args.short_side or None,
        reencode=args.reencode,
        packed=args.packed,
        threads=threads.per_worker(workers, free),
        progress=workers == 1,
    )
    root = args.source if is_frame_store(args.source) else args.out or args.source
    suffix = f"-shard-{index}-of-{count}" if count > 1 else ""
    report = args.report or Path(root) / f"flow-{args.method}-report{suffix}.json"
    summary = extract_flow(
        args.source, job, out_root=args.out, workers=workers, shard=shard, report_path=report
    )
    pairs = sum(result.figures.get("pairs", 0) for result in summary.results)
    print(summary.format(), file=sys.stderr if summary.failures else sys.stdout)
    rate = pairs / summary.seconds if summary.seconds > 0 else 0.0
    where = "" if summary.report_error else f"; report: {report.with_suffix('.json')}"
    print(f"{pairs} frame pairs, {rate:.2f} pairs/s{where}")
    return summary.exit_code


def _check_numbers(args: argparse.Namespace) -> None:
    if args.workers is not None and args.workers < 1:
        raise MarsError(f"--workers {args.workers}: must be at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        raise MarsError(f"--batch-size {args.batch_size}: must be at least 1")
    if not 1 <= args.quality <= 100:
        raise MarsError(f"--quality {args.quality}: must be 1-100")
    if args.fps < 0 or args.short_side < 0:
        raise MarsError("--fps and --short-side must be positive (or 0 to keep the video's)")
    if args.device != "cpu" and args.method != "tvl1-torch":
        raise MarsError(f"--device {args.device}: only tvl1-torch runs on a GPU")
    if args.compile and args.method != "tvl1-torch":
        raise MarsError("--compile: only for --method tvl1-torch")


def _register_check(subparsers) -> None:
    parser = subparsers.add_parser(
        "flow-check",
        help="flow quality: EPE on synthetic ground truth, torch vs OpenCV TV-L1 agreement",
        description=(
            "End-point error of each method on synthetic pairs with known flow "
            "(translation, rotation, smooth random), tvl1-torch vs OpenCV tvl1 on real "
            "frames (with OpenCV's own sensitivity for scale), a table, flow-check.json "
            "and a colour-wheel flow-check.png in OUT_DIR."
        ),
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder for the results")
    parser.add_argument("--methods", default=",".join(METHOD_NAMES), help="comma-separated")
    parser.add_argument("--size", default="256x340", help="synthetic frame size HxW")
    parser.add_argument(
        "--real", type=Path, default=None, help="a video, or a folder of videos, for agreement"
    )
    parser.add_argument("--real-videos", type=int, default=3, help="videos taken from --real")
    parser.add_argument("--real-pairs", type=int, default=2, help="frame pairs per video")
    parser.add_argument(
        "--real-short-side", type=int, default=256, help="decode real frames at this short side"
    )
    parser.add_argument("--device", default="cpu", help="tvl1-torch device")
    parser.add_argument("--compile", action="store_true", help="tvl1-torch: torch.compile")
    parser.add_argument(
        "--device-path",
        action="store_true",
        help="--real: also run tvl1-torch with the operations a GPU runs, on the CPU",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic pairs")
    parser.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    """``mars flow-check``: compare flow methods on a few real frame pairs (speed and agreement)."""
    from mars_action.flow.check import format_report, run_flow_check

    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = [name for name in methods if name not in METHOD_NAMES]
    if unknown or not methods:
        raise MarsError(f"--methods {args.methods!r}: choose from {', '.join(METHOD_NAMES)}")
    try:
        height, width = (int(part) for part in args.size.lower().split("x"))
    except ValueError:
        raise MarsError(f"--size {args.size!r}: expected HxW, e.g. 256x340") from None
    if min(height, width) < 32:
        raise MarsError(f"--size {args.size}: at least 32x32")
    report = run_flow_check(
        methods,
        args.out_dir,
        size=(height, width),
        real_videos=_real_videos(args.real, args.real_videos),
        real_pairs=args.real_pairs,
        real_short_side=args.real_short_side,
        device=args.device,
        seed=args.seed,
        compile=args.compile,
        device_path=args.device_path,
    )
    print(format_report(report))
    print(f"wrote {args.out_dir / 'flow-check.json'} and {args.out_dir / 'flow-check.png'}")
    return 0


def _real_videos(path: Path | None, count: int) -> list[Path]:
    """Up to ``count`` videos from a file or folder, spread over its classes."""
    if path is None:
        return []
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise MarsError(f"--real {path}: no such file or folder")
    from mars_action.video.extract import find_videos

    videos = [item.path for item in find_videos(path)]
    if not videos:
        raise MarsError(f"--real {path}: no videos found")
    step = max(1, len(videos) // max(count, 1))
    return videos[::step][:count]
