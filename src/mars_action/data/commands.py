"""``mars data-summary``: what a dataset holds, and what is missing, before training on it."""

from __future__ import annotations

import argparse

# The dataset formats (``data.builder.FORMATS``), named here so that --help loads no torch.
FORMAT_NAMES = ("folder", "hmdb51", "kinetics", "manifest", "minikinetics", "sthsth-v1", "ucf101")


def register(subparsers) -> None:
    """Add ``mars data-summary`` to ``mars`` (``cli.py`` calls this); the handlers import torch
    and the stage's modules themselves, so building the parser stays light."""
    parser = subparsers.add_parser(
        "data-summary",
        help="classes, videos per split and missing videos/frames of a dataset",
        description="Parse a dataset's annotations, match them to the videos (and the frame "
        "store), and print classes, videos per split and every missing video or frame "
        "folder. Exits 1 when something is missing.",
    )
    parser.add_argument("format", choices=FORMAT_NAMES, help="the dataset's annotation format")
    parser.add_argument("--root", help="folder of the videos (<class>/<video>.<ext>)")
    parser.add_argument("--annotations", help="annotation file or folder")
    parser.add_argument("--frame-root", help="frame store to check (<class>/<video>/00001.jpg)")
    parser.add_argument("--modality", default="rgb", help="rgb, flow or rgb+flow (frame check)")
    parser.add_argument("--flow-prefix", help="flow file prefix (default TVL1jpg_)")
    parser.add_argument("--fold", type=int, default=1, help="UCF101/HMDB51 split number")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="share of each class's train videos held out for validation")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out draw")
    parser.add_argument(
        "--use-test-as-val", action="store_true", help="validate on test (released code)"
    )
    parser.add_argument(
        "--all", action="store_true", help="list every class, missing video and frame problem"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check every done folder of the frame store against what its marker records",
    )
    parser.add_argument(
        "--strict", action="store_true", help="classes without training videos exit 1 too"
    )
    parser.set_defaults(handler=run_summary)


def run_summary(args: argparse.Namespace) -> int:
    """``mars data-summary``: what a dataset holds per split and class, and what is missing."""
    from mars_action.data.builder import data_problems, default_paths, load_annotations
    from mars_action.data.records import SPLITS
    from mars_action.data.sources import FrameStoreSource, parse_modality
    from mars_action.video.framestore import FLOW_PREFIX

    paths, frame_root = default_paths(args.format, args.root, args.annotations, args.frame_root)
    annotations = load_annotations(
        args.format,
        args.root,
        paths,
        fold=args.fold,
        val_fraction=args.val_fraction,
        seed=args.seed,
        use_test_as_val=args.use_test_as_val,
    )
    limit = None if args.all else 5
    print(annotations.summary(limit))
    failed = bool(annotations.missing)
    if frame_root is not None:
        prefix = args.flow_prefix or FLOW_PREFIX
        source = FrameStoreSource(frame_root, parse_modality(args.modality), prefix)
        _, problems = source.scan(annotations.records)
        usable = len(annotations.records) - len(problems)
        print(f"frames ({'+'.join(source.modalities)}): {usable} videos ready, "
              f"{len(problems)} without usable frames")
        for problem in problems[:limit]:
            print(f"  {problem}")
        if len(problems) > len(problems[:limit]):
            print(f"  ... and {len(problems) - len(problems[:limit])} more (--all lists them)")
        failed = failed or bool(problems)
    if args.verify and frame_root is not None:
        failed = _verify(frame_root, limit) or failed
    empty = [name for name, count in annotations.counts().items() if name in SPLITS and not count]
    if empty:
        print(f"warning: no videos in split(s) {', '.join(empty)}")
    absent = [p for p in data_problems(annotations) if "no training video" in p]
    for problem in absent:
        print(f"{'error' if args.strict else 'warning'}: {problem}")
    return 1 if failed or (absent and args.strict) else 0


def _verify(frame_root, limit: int | None) -> bool:
    """Print what ``--verify`` finds (every marker against its record); True if any is bad."""
    from mars_action.video.completeness import verify_store

    checked, problems = verify_store(frame_root)
    print(f"verify: {checked} done markers checked, {len(problems)} not matching their record")
    for problem in problems[:limit]:
        print(f"  bad: {problem}")
    if len(problems) > len(problems[:limit]):
        print(f"  ... and {len(problems) - len(problems[:limit])} more (--all lists them)")
    return bool(problems)
