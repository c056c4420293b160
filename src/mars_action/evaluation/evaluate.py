"""Video-level evaluation as in the paper: every clip of a video, scores averaged.

The test-time dataset yields one item per video, ``{"rgb"|"flow": (K, C, T, H, W),
"label": int, "video_id": str}`` (all K non-overlapping clips, see the data stage).
Each clip is cut into one centre crop (the paper) or three crops along the longer
side; the network scores every view; views are averaged into a clip's scores and
clips into the video's. Averaging logits is what the released code does; softmax
probabilities are the option.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from mars_action.errors import MarsError
from mars_action.evaluation.scores import VideoScores, class_list_difference
from mars_action.models.checkpoint import CheckpointMeta
from mars_action.progress import Progress

AGGREGATES = ("logits", "softmax")
ClipTransform = Callable[[torch.Tensor], torch.Tensor]


def spatial_crops(clips: torch.Tensor, size: int, count: int = 1) -> torch.Tensor:
    """(K, C, T, H, W) -> (K, V, C, T, size, size): centre crop, or 3 along the longer side.

    Three crops (start, centre, end of the longer side, centred on the shorter) cover
    a frame scaled to ``size`` on its short side, as in multi-crop testing.
    """
    height, width = clips.shape[-2:]
    if min(height, width) < size:
        raise MarsError(f"clips are {height}x{width}, smaller than the {size}x{size} crop")
    if count not in (1, 3):
        raise MarsError(f"crops must be 1 or 3, got {count}")
    top, left = (height - size) // 2, (width - size) // 2
    if count == 1:
        origins = [(top, left)]
    elif width >= height:
        origins = [(top, 0), (top, left), (top, width - size)]
    else:
        origins = [(0, left), (top, left), (height - size, left)]
    views = [clips[..., y : y + size, x : x + size] for y, x in origins]
    return torch.stack(views, dim=1)


def score_views(
    model: nn.Module, views: torch.Tensor, batch_size: int, device: torch.device
) -> torch.Tensor:
    """Logits (K, V, classes) of views (K, V, C, T, h, w), ``batch_size`` views at a time."""
    flat = views.flatten(0, 1)  # (K*V, C, T, h, w)
    outputs = []
    for start in range(0, flat.shape[0], batch_size):
        batch = flat[start : start + batch_size].to(device, dtype=torch.float32, non_blocking=True)
        outputs.append(model(batch).float().cpu())
    return torch.cat(outputs).reshape(*views.shape[:2], -1)


def evaluate(
    model: nn.Module,
    meta: CheckpointMeta,
    dataset: Sequence[dict[str, Any]],
    *,
    aggregate: str = "logits",
    crops: int = 1,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    workers: int = 0,
    clip_transform: ClipTransform | None = None,
    progress: bool = True,
    info: dict[str, Any] | None = None,
) -> VideoScores:
    """Score every video of ``dataset`` with ``model``; returns per-video scores.

    Args:
        model: a classifier on clips of ``meta.modality``.
        meta: the checkpoint's description (modality, stream, crop size, classes).
        dataset: test-time items, one per video (see the module docstring); an item
            ``{"error": reason, "video_id": id}`` is a video that could not be read:
            it is skipped and listed in ``info["failed"]``.
        aggregate: ``logits`` (released code) or ``softmax``, averaged over views.
        crops: 1 centre crop (paper) or 3 crops along the longer side.
        batch_size: views per forward pass.
        device: where the network runs.
        workers: DataLoader processes reading videos ahead (0: in this process,
            so ``time_data`` is the full reading time rather than the stall).
        clip_transform: applied to each video's (K, C, T, H, W) clips before
            cropping, e.g. :func:`mars_action.evaluation.static.static_transform`.
        progress: show the videos done, with the total and an ETA (a bar, or lines in a log).
        info: extra provenance to keep in the result.
    """
    if aggregate not in AGGREGATES:
        raise MarsError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    if len(dataset) == 0:
        raise MarsError("the dataset has no videos to evaluate")
    device = torch.device(device)
    model = model.to(device).eval()
    class_names = _class_names(meta, dataset)
    rows: list[tuple[str, int, np.ndarray, int, int, float, float]] = []
    failures: list[dict[str, str]] = []
    bar = Progress(len(dataset), f"eval {meta.stream}", "video", disable=not progress)
    with torch.inference_mode():
        for sample, data_s in _timed(_iterate(dataset, workers, device.type == "cuda")):
            bar.update(1)
            if "error" in sample:  # an unreadable video (see loading.GuardedVideos)
                failures.append({"video_id": str(sample["video_id"]), "reason": sample["error"]})
                continue
            label = int(sample["label"])
            if not 0 <= label < len(class_names):
                raise MarsError(f"video {sample['video_id']}: label {label} outside the classes")
            clips = _clips_of(sample, meta.modality)
            if clip_transform is not None:
                clips = clip_transform(clips)
            views = spatial_crops(clips, meta.crop_size, crops)  # (K, V, C, T, h, w)
            if not rows:  # untimed warm-up: kernel selection would inflate the first video
                score_views(model, views[:1, :1], batch_size, device)
            clip_scores, network_s = _clip_scores(model, views, aggregate, batch_size, device)
            hits = int((clip_scores.argmax(dim=1) == label).sum())
            video = clip_scores.mean(dim=0).numpy()  # (classes,)
            rows.append((str(sample["video_id"]), label, video, hits, len(clips), data_s,
                         network_s))
    bar.close()
    if not rows:
        raise MarsError(f"no video could be read; the first: {failures[0]['video_id']}: "
                        f"{failures[0]['reason']}")
    return _collect(rows, class_names, meta, aggregate, crops, {**(info or {}), "failed": failures})


def _clip_scores(
    model: nn.Module, views: torch.Tensor, aggregate: str, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, float]:
    """Scores (K, classes) of each clip, its views averaged; and the network seconds."""
    start = time.perf_counter()
    logits = score_views(model, views, batch_size, device)  # (K, V, classes)
    _synchronize(device)
    network_s = time.perf_counter() - start
    if aggregate == "softmax":
        logits = logits.softmax(-1)
    return logits.mean(dim=1), network_s


def _collect(rows, class_names, meta, aggregate, crops, info) -> VideoScores:
    ids, labels, scores, hits, counts, data_s, network_s = zip(*rows, strict=True)
    duplicates = sorted(v for v, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise MarsError(f"the dataset repeats video ids: {', '.join(duplicates[:5])}")
    provenance = {
        "modality": meta.modality,
        "clip_len": meta.clip_len,
        "crop_size": meta.crop_size,
        "crops": crops,
        "arch": meta.arch,
        **info,
    }
    return VideoScores(
        video_ids=list(ids),
        labels=np.array(labels),
        scores=np.stack(scores),
        class_names=class_names,
        stream=meta.stream,
        aggregate=aggregate,
        clip_hits=np.array(hits),
        clip_counts=np.array(counts),
        times={"data": np.array(data_s), "network": np.array(network_s)},
        info=provenance,
    )


def _class_names(meta: CheckpointMeta, dataset: Any) -> list[str]:
    """The checkpoint's classes; they must be the dataset's where both are known."""
    ours = list(meta.class_names) or [str(i) for i in range(meta.num_classes)]
    theirs = list(getattr(dataset, "class_names", None) or [])
    difference = class_list_difference(ours, theirs) if meta.class_names and theirs else ""
    if difference:
        raise MarsError(f"the checkpoint's classes differ from the dataset's ({difference})")
    return ours


def _clips_of(sample: dict[str, Any], modality: str) -> torch.Tensor:
    if modality not in sample:
        raise MarsError(
            f"video {sample.get('video_id')}: the dataset gives {sorted(sample)} but the "
            f"model needs {modality!r} clips"
        )
    clips = torch.as_tensor(sample[modality])
    if clips.ndim != 5:
        raise MarsError(
            f"video {sample.get('video_id')}: {modality} clips of shape {tuple(clips.shape)}, "
            "expected (K, C, T, H, W)"
        )
    return clips


def _iterate(
    dataset: Sequence[dict[str, Any]], workers: int, pin_memory: bool
) -> Iterator[dict[str, Any]]:
    """Items in order; with workers, read ahead in other processes (pinned for CUDA copies)."""
    if workers <= 0:
        return (dataset[i] for i in range(len(dataset)))
    loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                        pin_memory=pin_memory)
    return iter(loader)


def _timed(items: Iterator[Any]) -> Iterator[tuple[Any, float]]:
    """Each item with the seconds spent waiting for it."""
    while True:
        start = time.perf_counter()
        try:
            item = next(items)
        except StopIteration:
            return
        yield item, time.perf_counter() - start


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
