"""Reproducible batches: a per-epoch seeded order, per-sample seeded augmentation.

The random crop, scale and flip of a sample depend only on (seed, epoch, index):
not on the loader worker that reads it, the number of processes, or where a
resumed run starts. That is what lets a run killed mid-epoch and resumed reach
the same weights as one that never stopped.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mars_action.errors import MarsError
from mars_action.training.config import ExperimentConfig
from mars_action.training.unlabeled import MixedLoader, unlabeled_batch


def mixed_seed(*values: int) -> int:
    """A well-mixed 32-bit seed from non-negative integers, e.g. (seed, epoch, index)."""
    return int(np.random.SeedSequence(list(values)).generate_state(1)[0])


class SeededSamples(Dataset):
    """Item ``(epoch, index)`` is ``dataset[index]`` with Python, NumPy and torch RNGs seeded.

    Datasets draw their augmentation from the global generators (``random``,
    ``np.random``, ``torch``); seeding those per sample makes every draw a
    function of the sample alone.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        seed = mixed_seed(self.seed, epoch, index)
        random.seed(seed)
        np.random.seed(seed)
        torch.random.default_generator.manual_seed(seed)
        return self.dataset[index]


class EpochSampler(Sampler):
    """Yields ``(epoch, index)``: this process's share of a seeded order, from ``start``.

    Like ``DistributedSampler`` (a permutation per ``set_epoch``, seeded by the run's
    seed; ``rank::world_size`` shares; training shares padded to equal length so
    every process runs the same number of steps) plus a start offset for resuming
    mid-epoch. Validation (``shuffle=False, pad=False``) sees every clip once.
    """

    def __init__(
        self,
        size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        pad: bool = True,
    ):
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.shuffle, self.pad = shuffle, pad
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """The order of ``epoch``, skipping this process's first ``start`` samples."""
        self.epoch, self.start = epoch, start

    def _share(self) -> list[int]:
        order = list(range(self.size))
        if self.shuffle:
            generator = torch.Generator().manual_seed(mixed_seed(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=generator).tolist()
        if self.pad and self.size % self.world_size:
            order += order[: self.world_size - self.size % self.world_size]
        return order[self.rank :: self.world_size]

    @property
    def share_size(self) -> int:
        """Samples per process in a whole epoch."""
        return len(self._share())

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, index) for index in self._share()[self.start :])

    def __len__(self) -> int:
        return max(0, len(self._share()) - self.start)


def make_loader(
    dataset: Dataset,
    sampler: EpochSampler,
    *,
    batch_size: int,
    num_workers: int,
    seed: int,
    train: bool,
    pin_memory: bool = False,
) -> DataLoader:
    """A loader over ``dataset`` in ``sampler``'s order; training drops the last partial batch."""
    if train and sampler.share_size < batch_size:
        raise MarsError(
            f"training set: {sampler.share_size} clips per process is fewer than a batch of "
            f"{batch_size}; lower data.batch_size or add videos"
        )
    return DataLoader(
        SeededSamples(dataset, seed),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=train,
        persistent_workers=num_workers > 0,  # no respawn every epoch
    )


def run_loader(dataset: Dataset, config: ExperimentConfig, process, train: bool):
    """The loader of a run's dataset: seeded order, this process's share of each batch.

    ``data.batch_size`` is the total over processes: a recipe means the same on any
    number of GPUs."""
    total, world = config.data.batch_size, process.world_size
    if total % world:
        raise MarsError(f"data.batch_size {total} does not split over {world} processes")
    sampler = EpochSampler(
        len(dataset),
        seed=config.train.seed,
        rank=process.rank,
        world_size=world,
        shuffle=train,
        pad=train,
    )
    return make_loader(
        dataset,
        sampler,
        batch_size=total // world,
        num_workers=config.data.num_workers,
        seed=config.train.seed,
        train=train,
        pin_memory=process.device.type == "cuda",
    )


def train_loader(train_set: Dataset, extra: Dataset | None, config, process):
    """The labelled loader, with ``distill.unlabeled`` clips appended to each batch."""
    loader = run_loader(train_set, config, process, train=True)
    if extra is None:
        return loader
    size = unlabeled_batch(config.data.batch_size, config.distill.unlabeled_ratio)
    data = dataclasses.replace(config.data, batch_size=size * process.world_size)
    other = run_loader(extra, dataclasses.replace(config, data=data), process, train=True)
    return MixedLoader(loader, other)
