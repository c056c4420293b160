"""Clip datasets: records + a frame source + a clip sampler + a transform.

A training item (single-clip sampler) is::

    {"rgb": float32 (3, T, H, W), "flow": float32 (2, T, H, W), "label": int, "video_id": str}

with only the modalities of the source present (same crop and flip for both).
With a multi-clip sampler (test time) an item holds every clip of one video:
``{"rgb"|"flow": (K, C, T, H, W), "label", "video_id"}``. The default collate
batches single-clip items; multi-clip items have a different K per video, so
use ``batch_size=1`` or :func:`collate_videos`.

Randomness (clip start, crop, flip) comes from torch's generator of the process
that loads the item. In DataLoader workers torch seeds it ``base_seed +
worker_id`` with ``base_seed`` drawn from the loader's ``generator``, so two
workers never draw the same clips, and a loader built with
:func:`loader_kwargs` (a seeded generator) draws the same clips on every run.
Without workers (``num_workers=0``) items draw from torch's global generator:
seed it (``torch.manual_seed``) for repeatable runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from mars_action.data.records import VideoRecord
from mars_action.data.transforms import CropTransform

Transform = Callable[[Mapping[str, np.ndarray], np.random.Generator], dict[str, torch.Tensor]]


class ClipSampler(Protocol):
    """Which frames an item reads (``data.sampling``), kept apart from how they are read.

    Called with a video's frame count, it returns 0-based indices: ``(T,)`` for one clip,
    ``(K, T)`` for every clip of a test video (``multi_clip``: the item then holds a clip
    axis, and batches need :func:`collate_videos`).
    """

    multi_clip: bool

    def __call__(self, num_frames: int, rng: np.random.Generator) -> np.ndarray: ...


class FrameSource(Protocol):
    """Where frames come from (a frame store, video files, video files with flow packs):
    the dataset only samples and transforms, so every source gets the same clips."""

    modalities: tuple[str, ...]

    def prepare(self, records: Sequence[VideoRecord]) -> list[Any]:
        """A location per record (None: skipped and reported), found once up front so
        that a missing video fails before training, not in the middle of an epoch."""
        ...

    def num_frames(self, location: Any) -> int:
        """Frames of a video, which the sampler needs before any frame is read."""
        ...

    def frame_size(self, location: Any) -> tuple[int, int]:
        """(height, width), so that the crop window is known before decoding."""
        ...

    def read(
        self,
        location: Any,
        indices: Sequence[int],
        window: tuple[int, int, int, int] | None = None,
        reduction: int = 1,
    ) -> dict[str, np.ndarray]:
        """Frames at ``indices`` per modality, only the crop ``window`` (top, left,
        height, width) and at ``1 / reduction`` of the size where the source can: the
        transform decides both, so that frames are not decoded whole to be cropped."""
        ...


class ClipDataset(Dataset):
    """Clips of annotated videos, read from any frame source.

    Args:
        records: the videos (one split).
        class_names: index -> name, kept for checkpoints and reports.
        source: where frames come from (frame store or video files).
        sampler: frame indices per item (``RandomClip``, ``CenterClip``, ``AllClips``...).
        transform: ``TrainTransform`` or ``EvalTransform`` (or any callable alike).
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        class_names: Sequence[str],
        source: FrameSource,
        sampler: ClipSampler,
        transform: Transform,
    ) -> None:
        locations = source.prepare(records)
        kept = [(r, loc) for r, loc in zip(records, locations, strict=True) if loc is not None]
        self.records = [record for record, _ in kept]
        self.locations = [location for _, location in kept]
        self.class_names = list(class_names)
        self.source = source
        self.sampler = sampler
        self.transform = transform

    @property
    def modalities(self) -> tuple[str, ...]:
        """The source's modalities: the keys of every item besides label and video_id."""
        return self.source.modalities

    @property
    def labels(self) -> list[int]:
        """Each video's class index, in item order, without reading any frame."""
        return [record.label for record in self.records]

    def summary(self) -> str:
        """One line for logs: videos, classes, modalities, sampler, where frames come from."""
        sampler = type(self.sampler).__name__
        clip_len = getattr(self.sampler, "clip_len", "?")
        where = getattr(self.source, "root", "?")
        return (
            f"{len(self)} videos, {len(self.class_names)} classes, {'+'.join(self.modalities)} "
            f"from {type(self.source).__name__}({where}), {sampler} of {clip_len} frames, "
            f"{type(self.transform).__name__}"
        )

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record, location = self.records[index], self.locations[index]
        rng = sample_rng()
        indices = self.sampler(self.source.num_frames(location), rng)  # (D,) or (K, D)
        # Read each distinct frame once: looped clips and overlapping test clips repeat frames.
        unique, inverse = np.unique(indices, return_inverse=True)
        tensors = self._load(location, unique, rng)  # {m: (C, U, h, w) float32}
        if indices.ndim == 1 and np.all(np.diff(indices) > 0):
            item: dict[str, Any] = dict(tensors)  # ascending, no repeats: already the clip
        else:
            inverse = inverse.reshape(indices.shape)
            item = {m: _gather(t, inverse) for m, t in tensors.items()}
        item["label"] = record.label
        item["video_id"] = record.video_id
        return item

    def _load(
        self, location: Any, indices: np.ndarray, rng: np.random.Generator
    ) -> dict[str, torch.Tensor]:
        """Read and transform frames: (U,) indices -> {m: (C, U, h, w) float32}.

        A :class:`CropTransform` draws its crop first, so that only the crop is
        read, decoded at reduced size when the crop allows it.
        """
        if not isinstance(self.transform, CropTransform):
            return self.transform(self.source.read(location, indices), rng)
        plan = self.transform.plan(*self.source.frame_size(location), rng)
        top, left, size = plan.box
        crops = self.source.read(location, indices, (top, left, size, size), plan.reduction)
        return self.transform.finish(crops, plan)  # crops: {m: (U, s, s, C) uint8}


def _gather(clip: torch.Tensor, inverse: np.ndarray) -> torch.Tensor:
    """(C, U, h, w) + (D,) -> (C, D, h, w); + (K, D) -> (K, C, D, h, w)."""
    out = clip[:, torch.from_numpy(inverse)]
    return out.movedim(1, 0).contiguous() if inverse.ndim == 2 else out.contiguous()


def sample_rng() -> np.random.Generator:
    """A numpy generator seeded from torch's generator in this process (see module doc)."""
    return np.random.default_rng(int(torch.randint(2**62, ()).item()))


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed ``random`` and numpy's global state from torch's worker seed.

    The datasets here do not need it (they draw from torch), but user transforms
    that call ``random`` or ``np.random`` then also differ per worker and repeat per run.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def loader_kwargs(seed: int) -> dict[str, Any]:
    """``DataLoader(dataset, **loader_kwargs(seed), ...)``: reproducible, distinct workers."""
    return {"generator": torch.Generator().manual_seed(seed), "worker_init_fn": seed_worker}


def collate_videos(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch multi-clip items: clips concatenated, ``clip_counts`` to split them back.

    Returns ``{"rgb"|"flow": (sum K, C, T, H, W), "clip_counts": (B,) long,
    "label": (B,) long, "video_id": list[str]}``.
    """
    modalities = [key for key in items[0] if isinstance(items[0][key], torch.Tensor)]
    batch: dict[str, Any] = {m: torch.cat([item[m] for item in items]) for m in modalities}
    first = modalities[0]
    batch["clip_counts"] = torch.tensor([item[first].shape[0] for item in items])
    batch["label"] = torch.tensor([item["label"] for item in items])
    batch["video_id"] = [item["video_id"] for item in items]
    return batch
