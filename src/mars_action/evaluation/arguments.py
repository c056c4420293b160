"""The model and data options of ``mars eval`` and ``mars analyze static|cam``.

Apart from :mod:`cli_common` (which loads torch) so that registering the
subcommands, and ``mars --help``, import nothing heavy.
"""

from __future__ import annotations

import argparse

# evaluate.AGGREGATES, named here so that --help loads no torch (a test keeps them equal)
AGGREGATES = ("logits", "softmax")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The checkpoint's loading options, one group in --help."""
    group = parser.add_argument_group("model")
    group.add_argument("--arch", help="architecture of a released .pth that names none")
    group.add_argument("--labels", help="class names (one per line) for a released .pth")
    group.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda:N")
    group.add_argument("--batch-size", type=int, default=16, help="clips per forward pass")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Which videos to score and how; unset ones come from the run's config."""
    group = parser.add_argument_group(
        "data", "defaults come from --config, else the run folder's config.yaml")
    group.add_argument("--config", help="a training config whose data section to use")
    group.add_argument("--data", dest="format",
                       help="dataset format: ucf101, hmdb51, kinetics, minikinetics, sthsth-v1, "
                       "folder, manifest")
    group.add_argument("--root", help="the videos (or the dataset folder)")
    group.add_argument("--annotations", help="split/label files of the format")
    group.add_argument("--frame-root", help="frame store with frames and flow")
    group.add_argument("--flow-root", help="packed flow (mars flow VIDEOS --out DIR --packed)")
    group.add_argument("--flow-prefix", help="flow file prefix (default TVL1jpg_)")
    group.add_argument("--fold", type=int, help="UCF101/HMDB51 split number (default 1)")
    group.add_argument("--val-fraction", type=float, help="held-out share of train (val split)")
    group.add_argument("--seed", type=int, help="seed of the held-out val draw")
    group.add_argument("--on-missing", choices=("error", "skip"),
                       help="videos without frames: stop with a list (default) or skip them")
    group.add_argument("--split", default="test", choices=("test", "val", "train"),
                       help="which split's videos to score (default test)")
    group.add_argument("--clips", default="all",
                       help="'all' non-overlapping clips (paper) or N evenly spaced clips")
    group.add_argument("--crops", type=int, default=1, choices=(1, 3),
                       help="1 centre crop (paper) or 3 crops along the longer side")
    group.add_argument("--protocol", default="mars", choices=("mars", "released"),
                       help="'released': frame clips as the released test scripts do "
                       "(Scale + CenterCrop of whole frames; every clip, logits averaged)")
    group.add_argument("--aggregate", default="logits", choices=AGGREGATES,
                       help="what is averaged over clips (logits: the released code)")
    group.add_argument("--limit", type=int, help="only the first N videos (quick checks)")
    group.add_argument("--workers", type=int, default=2, help="processes reading videos")
