"""What the evaluation subcommands share: model and data arguments, loading, printing."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import torch

from mars_action.evaluation.evaluate import AGGREGATES, ClipTransform, evaluate
from mars_action.evaluation.fusion import streams_by_name
from mars_action.evaluation.loading import (
    GuardedVideos,
    build_test_set,
    data_settings,
    run_config_path,
)
from mars_action.evaluation.scores import VideoScores, load_scores
from mars_action.models.checkpoint import CheckpointMeta, load_checkpoint, read_labels

_NAMED = re.compile(r"^([A-Za-z][\w+-]*)=(.+)$")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--arch", help="architecture of a released .pth that names none")
    group.add_argument("--labels", help="class names (one per line) for a released .pth")
    group.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda:N")
    group.add_argument("--batch-size", type=int, default=16, help="clips per forward pass")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "data", "defaults come from --config, else the run folder's config.yaml")
    group.add_argument("--config", help="a training config whose data section to use")
    group.add_argument("--data", dest="format",
                       help="dataset format: ucf101, hmdb51, kinetics, minikinetics, sthsth-v1, "
                       "folder, manifest")
    group.add_argument("--root", help="the videos (or the dataset folder)")
    group.add_argument("--annotations", help="split/label files of the format")
    group.add_argument("--frame-root", help="frame store with frames and flow")
    group.add_argument("--flow-prefix", help="flow file prefix (default TVL1jpg_)")
    group.add_argument("--fold", type=int, help="UCF101/HMDB51 split number (default 1)")
    group.add_argument("--val-fraction", type=float, help="held-out share of train (val split)")
    group.add_argument("--seed", type=int, help="seed of the held-out val draw")
    group.add_argument("--on-missing", choices=("error", "skip"),
                       help="videos without frames: stop with a list (default) or skip them")
    group.add_argument("--split", default="test", choices=("test", "val", "train"))
    group.add_argument("--clips", default="all",
                       help="'all' non-overlapping clips (paper) or N evenly spaced clips")
    group.add_argument("--crops", type=int, default=1, choices=(1, 3),
                       help="1 centre crop (paper) or 3 crops along the longer side")
    group.add_argument("--aggregate", default="logits", choices=AGGREGATES,
                       help="what is averaged over clips (logits: the released code)")
    group.add_argument("--limit", type=int, help="only the first N videos (quick checks)")
    group.add_argument("--workers", type=int, default=2, help="processes reading videos")


def device_of(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_model(args: argparse.Namespace, checkpoint: str) -> tuple[torch.nn.Module, CheckpointMeta]:
    names = read_labels(args.labels) if args.labels else None
    return load_checkpoint(checkpoint, arch=args.arch, class_names=names,
                           device=device_of(args.device))


def evaluate_checkpoint(
    args: argparse.Namespace,
    model: torch.nn.Module,
    meta: CheckpointMeta,
    checkpoint: str,
    clip_transform: ClipTransform | None = None,
) -> VideoScores:
    """Build the checkpoint's test set from the data arguments and evaluate on it."""
    dataset = GuardedVideos(open_test_set(args, meta, checkpoint), args.limit)
    info = {"checkpoint": str(checkpoint), "split": args.split, "clips": clip_choice(args),
            "static": clip_transform is not None}
    return evaluate(model, meta, dataset, aggregate=args.aggregate, crops=args.crops,
                    batch_size=args.batch_size, device=device_of(args.device),
                    workers=args.workers, clip_transform=clip_transform, info=info)


def open_test_set(args: argparse.Namespace, meta: CheckpointMeta, checkpoint: str,
                  modality: str | None = None):
    config = args.config or run_config_path(checkpoint)
    names = ("format", "root", "annotations", "frame_root", "flow_prefix", "fold",
             "val_fraction", "seed", "on_missing")
    overrides = {k: getattr(args, k) for k in names}
    settings = data_settings(config, overrides)
    return build_test_set(settings, meta, args.split, clips=clip_choice(args), crops=args.crops,
                          modality=modality)


def clip_choice(args: argparse.Namespace) -> str | int:
    """``--clips``: ``all`` or a number of evenly spaced clips."""
    return int(args.clips) if str(args.clips).isdigit() else args.clips


def named_paths(items: list[str]) -> list[tuple[str | None, str]]:
    """``STREAM=path`` or ``path`` -> (stream or None, path)."""
    out = []
    for item in items:
        match = _NAMED.match(item)
        named = match and not Path(item).exists()
        out.append((match.group(1).lower(), match.group(2)) if named else (None, item))
    return out


def load_named_scores(items: list[str]) -> dict[str, VideoScores]:
    """Score files keyed by stream (their own, or STREAM=), aligned to the same videos."""
    named = named_paths(items)
    results = [load_scores(path) for _, path in named]
    return streams_by_name(results, [path for _, path in named], [n for n, _ in named])


def print_summary(summary: dict[str, Any], label: str) -> None:
    parts = [f"top-1 {summary['top1']:.2f}%", f"top-5 {summary['top5']:.2f}%",
             f"mean class {summary['mean_class_accuracy']:.2f}%"]
    if "clip_top1" in summary:
        parts.append(f"clip top-1 {summary['clip_top1']:.2f}%")
    print(f"{label}: {', '.join(parts)} ({summary['num_videos']} videos)")


def report_failures(result: VideoScores) -> int:
    """Print the videos that could not be read; the exit code (1 if any)."""
    failed = result.info.get("failed", [])
    for failure in failed[:20]:
        print(f"  failed: {failure['video_id']}: {failure['reason']}")
    if failed:
        print(f"{len(failed)} video(s) could not be read and are not in the scores")
    return 1 if failed else 0
