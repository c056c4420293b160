"""Match annotation entries to files on disk, and hold a validation set out of train.

Matching is by video name without extension ("stem"), so ``Class/v_x.avi`` in an
official list finds a re-encoded ``Class/v_x.mp4``, and a Kinetics clip is found
whatever its class folder is called (spaces or underscores, a ``train/`` level).
Videos that are not found are counted and reported (Kinetics always has some),
never fatal here.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mars_action.data.records import VIDEO_EXTENSIONS, Annotations, VideoRecord, video_stem
from mars_action.errors import MarsError

_UCF_GROUP = re.compile(r"_g(\d+)_c\d+$")


def resolve_videos(annotations: Annotations, video_root: str | Path) -> Annotations:
    """Point every record at its file under ``video_root``; unmatched ones go to ``missing``."""
    root = Path(video_root)
    if not root.is_dir():
        raise MarsError(f"{root}: video folder not found")
    index = _index_videos(root)
    found, missing = [], list(annotations.missing)
    for record in annotations.records:
        path = _match(record.path, index)
        if path is None:
            missing.append(record)
        else:
            found.append(dataclasses.replace(record, path=path))
    return dataclasses.replace(annotations, records=found, missing=missing)


def _index_videos(root: Path) -> dict[str, list[str]]:
    """stem -> relative paths of every video file."""
    index: dict[str, list[str]] = defaultdict(list)
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        relative = Path(folder).relative_to(root)
        for name in files:
            if Path(name).suffix.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                index[video_stem(name)].append((relative / name).as_posix())
    return index


def _match(path: str, index: dict[str, list[str]]) -> str | None:
    candidates = index.get(video_stem(path), [])
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    parent = Path(path).parent.name
    same_folder = [c for c in candidates if _folder_key(Path(c).parent.name) == _folder_key(parent)]
    return sorted(same_folder or candidates)[0]


def _folder_key(name: str) -> str:
    return re.sub(r"[\s_]+", "_", name.strip().lower())


def ucf101_group(record: VideoRecord) -> str:
    """UCF101 group (same actors and scene): ``v_Class_g08_c01`` -> ``Class/g08``."""
    match = _UCF_GROUP.search(record.video_id)
    group = f"g{match.group(1)}" if match else record.video_id
    return f"{record.label}/{group}"


def hold_out_val(
    annotations: Annotations,
    fraction: float = 0.1,
    seed: int = 0,
    group_of: Callable[[VideoRecord], str] | None = None,
) -> Annotations:
    """Move a seeded, stratified ``fraction`` of each class's train videos to ``val``.

    Classes keep at least one train video (or group). With ``group_of`` (e.g.
    :func:`ucf101_group`) whole groups move, so no actor or scene is in both
    train and val. The draw depends only on ``seed`` and the records, not on
    their order.
    """
    if not 0.0 <= fraction < 1.0:
        raise MarsError(f"val_fraction must be in [0, 1), got {fraction}")
    group_of = group_of or (lambda record: record.video_id)
    by_class: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, record in enumerate(annotations.records):
        if record.split == "train":
            by_class[record.label][group_of(record)].append(i)
    rng = np.random.default_rng(seed)
    to_val: set[int] = set()
    for label in sorted(by_class):
        to_val.update(_draw_groups(by_class[label], fraction, rng))
    records = [
        dataclasses.replace(r, split="val") if i in to_val else r
        for i, r in enumerate(annotations.records)
    ]
    return dataclasses.replace(annotations, records=records)


def _draw_groups(
    groups: dict[str, list[int]], fraction: float, rng: np.random.Generator
) -> list[int]:
    """Indices of whole groups, shuffled, until ``fraction`` of the class's videos is reached."""
    total = sum(len(members) for members in groups.values())
    target = round(fraction * total)
    if fraction > 0 and total >= 2:
        target = max(1, target)
    names = sorted(groups)
    chosen: list[int] = []
    for position in rng.permutation(len(names))[: len(names) - 1]:
        if len(chosen) >= target:
            break
        chosen.extend(groups[names[position]])
    return chosen


def val_from_test(annotations: Annotations) -> Annotations:
    """The released code's behaviour: validate on the test split (copies with role ``val``).

    Model selection on the test split inflates reported accuracy; use only to
    reproduce the released code's numbers.
    """
    copies = [dataclasses.replace(r, split="val") for r in annotations.records if r.split == "test"]
    return dataclasses.replace(annotations, records=[*annotations.records, *copies])
