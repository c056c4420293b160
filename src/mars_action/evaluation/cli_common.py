"""What the evaluation subcommands share: model and data arguments, loading, printing."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import torch

from mars_action.evaluation.evaluate import ClipTransform, evaluate
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


def device_of(name: str) -> torch.device:
    """A torch device from the CLI's ``--device`` (``auto``: CUDA when present, else CPU)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_model(args: argparse.Namespace, checkpoint: str) -> tuple[torch.nn.Module, CheckpointMeta]:
    """The checkpoint's model and meta on the chosen device (``--labels``/``--arch`` override)."""
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
            "static": clip_transform is not None, "protocol": getattr(args, "protocol", "mars")}
    return evaluate(model, meta, dataset, aggregate=args.aggregate, crops=args.crops,
                    batch_size=args.batch_size, device=device_of(args.device),
                    workers=args.workers, clip_transform=clip_transform, info=info)


def open_test_set(args: argparse.Namespace, meta: CheckpointMeta, checkpoint: str,
                  modality: str | None = None):
    """The test set a checkpoint was trained for: its run's config, overridden by the CLI's
    data options, so ``mars evaluate CKPT`` needs no arguments for a run of ours."""
    config = args.config or run_config_path(checkpoint)
    names = ("format", "root", "annotations", "frame_root", "flow_root", "flow_prefix", "fold",
             "val_fraction", "seed", "on_missing")
    overrides = {k: getattr(args, k) for k in names}
    settings = data_settings(config, overrides)
    return build_test_set(settings, meta, args.split, clips=clip_choice(args), crops=args.crops,
                          modality=modality, protocol=getattr(args, "protocol", "mars"))


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
    """Video and clip accuracy side by side, each named for what it counts.

    The paper's tables (and the released test scripts' "Video accuracy") are video
    accuracy: one prediction per video from its clips' averaged scores. Clip accuracy,
    each clip judged alone, is lower; users of the released code mistook one for the
    other (its issues #31, #35, #40), so both are always printed, labelled.
    """
    videos = summary["num_videos"]
    if "clip_top1" in summary:
        clips = f"{summary['clip_top1']:.2f}% of {summary['num_clips']} clips, each alone"
    else:
        clips = "not kept (fused scores are per video)"
    print(f"{label}:\n"
          f"  VIDEO accuracy (top-1) {summary['top1']:.2f}% of {videos} videos (clip scores "
          f"averaged per video; the paper's number)\n"
          f"  CLIP accuracy  (top-1) {clips}\n"
          f"  video top-5 {summary['top5']:.2f}%, mean class {summary['mean_class_accuracy']:.2f}%")


def report_failures(result: VideoScores) -> int:
    """Print the videos that could not be read; the exit code (1 if any)."""
    failed = result.info.get("failed", [])
    for failure in failed[:20]:
        print(f"  failed: {failure['video_id']}: {failure['reason']}")
    if failed:
        print(f"{len(failed)} video(s) could not be read and are not in the scores")
    return 1 if failed else 0
