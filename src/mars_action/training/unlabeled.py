"""Distillation on unlabelled video: extra clips that enter only the teacher terms.

``distill.unlabeled`` names a frame store with flow beside the frames (``mars frames``
then ``mars flow``; any ``<class>/<video>/`` layout, the class folders are ignored).
Each labelled batch of MARS / MERS gets ``round(distill.unlabeled_ratio x batch)``
of its clips appended with the label :data:`UNLABELED`: cross-entropy and accuracy
skip them (``ignore_index``), the teacher terms see every clip. A user with 200
labelled and 10 000 unlabelled clips uses them all, and an epoch stays one pass
over the labelled set.

A test video must never be a source: the store is refused when it holds a video
(by id) of the labelled dataset's test split.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import Dataset

from mars_action.data import load_annotations
from mars_action.errors import MarsError
from mars_action.training.config import DataConfig
from mars_action.training.datasets import build_datasets
from mars_action.training.losses import UNLABELED


def unlabeled_config(data: DataConfig, store: str) -> DataConfig:
    """The labelled run's data settings (clip, crop, flow coding) on the unlabelled store."""
    if not Path(store).is_dir():
        raise MarsError(f"distill.unlabeled: {store} is not a folder (a frame store with flow)")
    return dataclasses.replace(data, format="folder", root=None, annotations=store,
                               frame_root=store, val_fraction=0.0, use_test_as_val=False)


def check_no_test_video(data: DataConfig, clips: Dataset, store: str) -> None:
    """Refuse an unlabelled store that holds a video of the labelled test split."""
    annotations = load_annotations(data.format, data.root, data.annotations, fold=data.fold,
                                   val_fraction=data.val_fraction, seed=data.seed)
    test = {record.video_id for record in annotations.split("test")}
    mine = {record.video_id for record in getattr(clips, "records", [])}
    shared = sorted(test & mine)
    if shared:
        raise MarsError(f"distill.unlabeled: {store} holds {len(shared)} test video(s) of the "
                        f"labelled dataset (e.g. {shared[0]}); never distil on test videos")


class Unlabeled(Dataset):
    """A clip dataset whose items carry the label :data:`UNLABELED`."""

    def __init__(self, clips: Dataset):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index):
        item = dict(self.clips[index])
        item["label"] = UNLABELED
        return item


def build_unlabeled(data: DataConfig, store: str) -> Dataset:
    """The training clips (RGB and flow, augmented) of the unlabelled store."""
    clips, _ = build_datasets(unlabeled_config(data, store), ("rgb", "flow"))
    if data.format != "folder" or data.annotations:
        check_no_test_video(data, clips, store)
    return Unlabeled(clips)


class MixedLoader:
    """Labelled batches, each with a batch of unlabelled clips appended (``torch.cat``).

    Looks like the labelled loader to the loop: same length, ``sampler`` and
    ``batch_size``; the unlabelled loader cycles, its order re-drawn each epoch.
    """

    def __init__(self, labelled, unlabeled):
        self.labelled, self.unlabeled = labelled, unlabeled
        self.sampler, self.batch_size = labelled.sampler, labelled.batch_size
        self._epoch = 0

    def __len__(self) -> int:
        return len(self.labelled)

    def __iter__(self) -> Iterator[dict]:
        self._epoch = getattr(self.sampler, "epoch", self._epoch)
        extra = self._cycle()
        for batch in self.labelled:
            yield mix(batch, next(extra))

    def _cycle(self) -> Iterator[dict]:
        for round_ in itertools.count():
            self.unlabeled.sampler.set_epoch(self._epoch * 1000 + round_)
            yield from self.unlabeled


def mix(labelled: dict, unlabeled: dict) -> dict:
    """One batch of both: clips and labels concatenated (the unlabelled after)."""
    out = dict(labelled)
    for key in ("rgb", "flow", "label"):
        out[key] = torch.cat([torch.as_tensor(labelled[key]), torch.as_tensor(unlabeled[key])])
    return out


def unlabeled_batch(batch_size: int, ratio: float) -> int:
    """Unlabelled clips per labelled batch (at least 1 when a store is given)."""
    return max(1, round(batch_size * ratio))
