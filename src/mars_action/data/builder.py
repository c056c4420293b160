"""Build annotations and datasets from plain arguments (what configs and the CLI hold)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from mars_action.data.datasets import ClipDataset
from mars_action.data.formats import parse_hmdb51, parse_sthsth_v1, parse_ucf101
from mars_action.data.formats_custom import (
    parse_folder,
    parse_kinetics,
    parse_manifest,
    parse_minikinetics,
)
from mars_action.data.packed_source import PackedFlowSource
from mars_action.data.records import Annotations
from mars_action.data.resolve import hold_out_val, resolve_videos, ucf101_group, val_from_test
from mars_action.data.sampling import AllClips, CenterClip, EvenClips, RandomClip
from mars_action.data.sources import FrameStoreSource, VideoFileSource, parse_modality
from mars_action.data.transforms import EvalTransform, TrainTransform
from mars_action.errors import MarsError
from mars_action.video.framestore import FLOW_PREFIX

FORMATS: dict[str, Callable[[Path, int], Annotations]] = {
    "ucf101": parse_ucf101,
    "hmdb51": parse_hmdb51,
    "kinetics": lambda path, fold: parse_kinetics(path),
    "minikinetics": lambda path, fold: parse_minikinetics(path),
    "sthsth-v1": lambda path, fold: parse_sthsth_v1(path),
    "folder": lambda path, fold: parse_folder(path),
    "manifest": lambda path, fold: parse_manifest(path),
}
CLIPS = ("random", "center", "all")


def load_annotations(
    format: str,
    root: str | Path | None,
    annotations: str | Path | None = None,
    *,
    fold: int = 1,
    val_fraction: float = 0.1,
    seed: int = 0,
    use_test_as_val: bool = False,
) -> Annotations:
    """Parse a dataset's annotations, match them to videos under ``root``, hold out val.

    Args:
        format: one of :data:`FORMATS`.
        root: the folder of the videos (``<class>/<video>.<ext>``); None when only a
            frame store is at hand. Unmatched entries are counted in ``missing``.
            For ``sthsth-v1`` it is the folder of the given frames (not matched);
            for ``folder`` the dataset folder itself when ``annotations`` is None.
        annotations: the annotation file or folder (UCF101 defaults to
            ``root/ucfTrainTestlist``).
        fold: the split number of UCF101 / HMDB51 (1, 2 or 3).
        val_fraction: part of each class's train videos held out as ``val``
            (seeded, stratified; whole UCF101 groups).
        seed: seed of the held-out draw.
        use_test_as_val: validate on the test split as the released code did
            (then nothing is held out of train). Reported test accuracy is then
            optimistic: only for reproducing the released code.
    """
    if format not in FORMATS:
        raise MarsError(f"unknown dataset format {format!r}; choose from {', '.join(FORMATS)}")
    source = _annotation_path(format, root, annotations)
    if not source.exists():
        raise MarsError(f"{source}: annotation file or folder not found ({format} dataset)")
    parsed = FORMATS[format](source, fold)
    if root is not None and format not in ("sthsth-v1", "folder"):
        parsed = resolve_videos(parsed, root)
    if use_test_as_val:
        return val_from_test(parsed)
    group_of = ucf101_group if format == "ucf101" else None
    return hold_out_val(parsed, val_fraction, seed, group_of)


def data_problems(annotations: Annotations) -> list[str]:
    """What a run on ``annotations`` should hear about: videos not found, untrained classes.

    Class indices always come from the annotation's full class list, so a class
    with no training video still has its index (its logit is simply never
    trained): worth a warning, or an error when the user asks for strictness.
    """
    problems = []
    if annotations.missing:
        first = ", ".join(record.path for record in annotations.missing[:3])
        problems.append(f"{len(annotations.missing)} annotated video(s) not found ({first} ...)")
    trained = {record.label for record in annotations.split("train")}
    absent = [name for i, name in enumerate(annotations.class_names) if i not in trained]
    if absent:
        more = " ..." if len(absent) > 5 else ""
        problems.append(
            f"{len(absent)} class(es) with no training video ({', '.join(absent[:5])}{more})"
        )
    return problems


def check_data(annotations: Annotations, strict: bool = False) -> list[str]:
    """Warn on stderr about :func:`data_problems`, or raise them with ``strict``; returns them."""
    problems = data_problems(annotations)
    if problems and strict:
        raise MarsError(f"{annotations.format} dataset: {'; '.join(problems)} (strict)")
    for problem in problems:
        print(f"warning: {annotations.format} dataset: {problem}", file=sys.stderr)
    return problems


def _annotation_path(format: str, root: str | Path | None, annotations: str | Path | None) -> Path:
    if annotations is not None:
        return Path(annotations)
    if format == "ucf101" and root is not None:
        return Path(root) / "ucfTrainTestlist"
    if format in ("folder", "sthsth-v1") and root is not None:
        return Path(root)
    raise MarsError(f"{format}: the annotations file or folder is required")


def default_paths(
    format: str,
    root: str | Path | None,
    annotations: str | Path | None,
    frame_root: str | Path | None,
) -> tuple[str | Path | None, str | Path | None]:
    """(annotations, frame_root) with the defaults a format implies.

    Something-Something frames are given as ``<root>/<id>/%05d.jpg``: ``root`` is
    the frame store. A frame store alone is a folder dataset of frame folders.
    """
    if format == "sthsth-v1" and frame_root is None:
        frame_root = root
    if format == "folder" and root is None and annotations is None:
        annotations = frame_root
    return annotations, frame_root


def make_dataset(
    annotations: Annotations,
    split: str,
    modality: str = "rgb",
    clip_len: int = 16,
    crop_size: int = 112,
    *,
    root: str | Path | None = None,
    frame_root: str | Path | None = None,
    clips: str | int | None = None,
    augment: bool | None = None,
    stride: int = 1,
    flow_prefix: str = FLOW_PREFIX,
    flow_scale: float = 1.0,
    scale_flow_vectors: bool = True,
    fps: float = 25.0,
    short_side: int = 256,
    on_missing: str = "error",
    flip: bool = True,
    flow_root: str | Path | None = None,
) -> ClipDataset:
    """A dataset of one split of parsed annotations; see :func:`build_dataset` for arguments.

    Without a frame store, ``flow_root`` (packs of ``mars flow --packed``) gives flow
    clips, RGB ones decoded from the videos under ``root``.

    ``flip=False`` turns training's horizontal flips off: for classes a mirror
    changes (Something-Something's "pushing left to right").
    """
    records = annotations.split(split)
    if not records:
        counts = ", ".join(f"{k} {v}" for k, v in annotations.counts().items())
        missing = f"; {len(annotations.missing)} missing videos" if annotations.missing else ""
        raise MarsError(f"{annotations.format}: no videos in split {split!r} ({counts}{missing})")
    modalities = parse_modality(modality)
    _, frame_root = default_paths(annotations.format, root, None, frame_root)
    if frame_root is not None:
        source = FrameStoreSource(frame_root, modalities, flow_prefix, on_missing)
    elif "flow" in modalities and flow_root is not None:
        source = PackedFlowSource(flow_root, modalities, root, flow_prefix, fps, short_side,
                                  on_missing)  # fmt: skip
    elif modalities == ("rgb",) and root is not None:
        source = VideoFileSource(root, fps, short_side, on_missing=on_missing)
    elif modalities == ("rgb",):
        raise MarsError("rgb clips need root (video files) or frame_root (a frame store)")
    else:
        raise MarsError(f"modality {modality!r} needs frame_root (a frame store) or flow_root "
                        "(packed flow of mars flow --packed)")  # fmt: skip
    augment = split == "train" if augment is None else augment
    crop = {"flow_scale": flow_scale, "scale_vectors": scale_flow_vectors}
    if augment:
        transform = TrainTransform(crop_size, flip_prob=0.5 if flip else 0.0, **crop)
    else:
        transform = EvalTransform(crop_size, **crop)
    sampler = _sampler(clips or ("random" if split == "train" else "all"), clip_len, stride)
    return ClipDataset(records, annotations.class_names, source, sampler, transform)


def _sampler(clips: str | int, clip_len: int, stride: int):
    if isinstance(clips, int) or str(clips).isdigit():
        return EvenClips(clip_len, int(clips), stride)
    samplers = {"random": RandomClip, "center": CenterClip, "all": AllClips}
    if clips not in samplers:
        raise MarsError(f"clips must be one of {CLIPS} or a number of clips, got {clips!r}")
    return samplers[clips](clip_len, stride)


def build_dataset(
    format: str,
    root: str | Path | None,
    annotations: str | Path | None,
    split: str,
    modality: str = "rgb",
    clip_len: int = 16,
    crop_size: int = 112,
    *,
    frame_root: str | Path | None = None,
    fold: int = 1,
    val_fraction: float = 0.1,
    seed: int = 0,
    use_test_as_val: bool = False,
    clips: str | int | None = None,
    augment: bool | None = None,
    stride: int = 1,
    flow_prefix: str = FLOW_PREFIX,
    flow_scale: float = 1.0,
    scale_flow_vectors: bool = True,
    fps: float = 25.0,
    short_side: int = 256,
    on_missing: str = "error",
    flip: bool = True,
    flow_root: str | Path | None = None,
) -> ClipDataset:
    """One split of a dataset as a :class:`ClipDataset` (see the package docstring)."""
    annotations, frame_root = default_paths(format, root, annotations, frame_root)
    parsed = load_annotations(
        format,
        root,
        annotations,
        fold=fold,
        val_fraction=val_fraction,
        seed=seed,
        use_test_as_val=use_test_as_val,
    )
    return make_dataset(
        parsed,
        split,
        modality,
        clip_len,
        crop_size,
        root=root,
        frame_root=frame_root,
        clips=clips,
        augment=augment,
        stride=stride,
        flow_prefix=flow_prefix,
        flow_scale=flow_scale,
        scale_flow_vectors=scale_flow_vectors,
        fps=fps,
        short_side=short_side,
        on_missing=on_missing,
        flip=flip,
        flow_root=flow_root,
    )
