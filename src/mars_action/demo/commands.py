"""The demo stage's subcommands: ``mars synth`` (the synthetic motion dataset), ``mars demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mars_action.data.commands import FORMAT_NAMES
from mars_action.errors import MarsError


def register(subparsers) -> None:
    """Add ``mars synth`` and ``mars demo`` to ``mars`` (``cli.py`` calls this); the handlers
    import torch and the stage's modules themselves, so building the parser stays light."""
    _register_synth(subparsers)
    _register_demo(subparsers)


def _register_synth(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write the synthetic motion dataset (MP4 files + manifest.csv)",
        description=(
            "Render videos whose classes differ only by motion (appearance is random for "
            "every class) into OUT_DIR/<class>/<video>.mp4, with OUT_DIR/manifest.csv "
            "(path,label,split) for the 'manifest' dataset format. Deterministic from "
            "--seed; resumable (existing videos are kept). The classes (move_up, "
            "move_down, ...) and every setting are written to OUT_DIR/synth.json."
        ),
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder for the dataset")
    parser.add_argument("--classes", type=int, default=None,
                        help="number of motion classes (default: all of them)")
    parser.add_argument("--videos-per-class", type=int, default=None,
                        help="videos of each class (default: the spec's)")
    parser.add_argument("--test-fraction", type=float, default=None,
                        help="share of each class marked 'test' in the manifest")
    parser.add_argument("--size", type=int, nargs=2, default=None,
                        metavar=("H", "W"), help="frame size (default 64 64)")
    parser.add_argument("--frames", type=int, default=None, help="frames per video")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of the videos")
    parser.add_argument("--seed", type=int, default=None, help="the random seed of the videos")
    parser.set_defaults(handler=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    """``mars synth``: write a synthetic motion dataset (videos + manifest) with PyAV."""
    from mars_action.data.synthetic import MOTION_CLASSES, generate_dataset, spec_with_classes

    given = {
        "videos_per_class": args.videos_per_class,
        "test_fraction": args.test_fraction,
        "height": args.size[0] if args.size else None,
        "width": args.size[1] if args.size else None,
        "num_frames": args.frames,
        "fps": args.fps,
        "seed": args.seed,
    }
    fields = {name: value for name, value in given.items() if value is not None}
    spec = spec_with_classes(args.classes or len(MOTION_CLASSES), **fields)
    manifest = generate_dataset(args.out_dir, spec)
    print(f"{len(spec.classes)} classes x {spec.videos_per_class} videos in {args.out_dir}")
    print(f"manifest: {manifest}  (dataset format 'manifest', root {args.out_dir})")
    return 0


def _register_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole method on a synthetic dataset (or one on disk), on a laptop CPU",
        description=(
            "Generate a synthetic motion dataset, extract frames and TV-L1 flow, train the "
            "Flow, RGB, MERS and MARS streams with a small 3D ResNet (MARS starts from a "
            "pretraining step in which the RGB network regresses its clips' flow; MERS from "
            "the RGB stream), evaluate every stream "
            "and their fusions (the paper's Table 1), run the static-clip analysis and write "
            "an HTML report. Offline; a second run reuses what exists. With --dataset FORMAT "
            "ROOT the same on real videos, at small sizes (48 px frames, 40 px crops): "
            "`mars demo --dataset ucf101 data/ucf101-subset` takes 15-40 minutes on 2 CPU "
            "cores, depending on what else runs (TV-L1 flow is most of it)."
        ),
    )
    parser.add_argument("root", nargs="?", type=Path, metavar="ROOT",
                        help="with --dataset: the dataset's folder (<class>/<video>.<ext>)")
    parser.add_argument("--dataset", choices=FORMAT_NAMES, default=None,
                        help="run on the videos in ROOT, in this annotation format, instead "
                        "of the synthetic set")
    parser.add_argument("--annotations", type=Path, default=None,
                        help="with --dataset: its annotation file or folder (default: the "
                        "format's place under ROOT, e.g. ucfTrainTestlist)")
    parser.add_argument("--out", type=Path, default=None,
                        help="working folder (default ./mars_demo, ./mars_demo_quick, or "
                        "./mars_demo_<dataset>)")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny smoke version (well under a minute): checks the plumbing, "
                        "its accuracies mean nothing")
    parser.add_argument("--fresh", action="store_true",
                        help="delete what an earlier run left in --out and start over")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for frames and flow (default: all cores)")
    parser.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """``mars demo``: the whole pipeline (data, four streams, evaluation, report) in one run."""
    from mars_action.demo.pipeline import run
    from mars_action.demo.settings import DemoSettings

    if args.dataset:
        if args.root is None or args.quick:
            raise MarsError("--dataset needs ROOT (the dataset's folder) and no --quick")
        annotations = str(args.annotations) if args.annotations else None
        settings = DemoSettings.on_disk(args.dataset, str(args.root), annotations)
        out = args.out or Path(f"mars_demo_{args.dataset}")
    elif args.root is not None:
        raise MarsError(f"{args.root}: a ROOT folder goes with --dataset FORMAT")
    else:
        settings = DemoSettings.quick() if args.quick else DemoSettings.full()
        out = args.out or Path("mars_demo_quick" if args.quick else "mars_demo")
    if args.quick:
        print(QUICK_NOTE, flush=True)
    run(out, settings, fresh=args.fresh, workers=args.workers)
    if args.quick:
        print(f"\n{QUICK_NOTE}", file=sys.stderr, flush=True)
    return 0


QUICK_NOTE = ("mars demo --quick: a smoke test of every stage on 12 tiny videos and 2 epochs; "
              "its accuracies mean nothing (run `mars demo` for numbers)")
