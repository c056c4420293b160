"""Where a dataset's frames come from: the frame store on disk, or the video files.

A source finds each record's frames once, at dataset construction (so empty or
missing folders are reported up front, naming the offenders - the first 20 and
the count; ``mars data-summary`` lists them all - never skipped silently or
looped over forever, both bugs of the released code), then reads frames by
0-based index:

- ``prepare(records) -> list[location]`` (raises :class:`MarsError` naming offenders),
- ``num_frames(location) -> int``,
- ``frame_size(location) -> (height, width)`` (what ``read`` gives without a window),
- ``read(location, indices, window=None, reduction=1) -> {modality: (N, H, W, C) uint8}``:
  ``window`` ``(top, left, height, width)`` keeps only that part of each frame, and
  ``reduction`` allows decoding at ``1 / reduction`` of the size (the window's
  coordinates divided by it) where the source can do it cheaply.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mars_action.data.records import VideoRecord, offender_list, strip_video_suffix, video_stem
from mars_action.errors import MarsError
from mars_action.video import completeness, decode, framestore

MODALITIES = ("rgb", "flow")
ON_MISSING = ("error", "skip")


def parse_modality(modality: str | Sequence[str]) -> tuple[str, ...]:
    """``"rgb"``, ``"flow"``, ``"rgb+flow"`` (or a sequence) -> ordered tuple of modalities."""
    names = modality.split("+") if isinstance(modality, str) else list(modality)
    unknown = [name for name in names if name not in MODALITIES]
    if not names or unknown or len(set(names)) != len(names):
        raise MarsError(f"modality must be rgb, flow or rgb+flow, got {modality!r}")
    return tuple(name for name in MODALITIES if name in names)


class FrameStoreSource:
    """Frames (and flow) from ``<frame_root>/<class>/<video>/`` (see ``video.framestore``).

    A record's folder is its path without the video extension; when that does not
    exist, a folder with the same video name one class level down is used (frames
    extracted from re-encoded or renamed class folders still match).

    With ``rgb+flow`` a sample has as many frames as there are flow fields (N - 1
    per video: flow i is frame i -> i + 1), and frame i is paired with flow i.

    Args:
        frame_root: the frame store's root folder.
        modalities: ``("rgb",)``, ``("flow",)`` or ``("rgb", "flow")``.
        flow_prefix: file prefix of the flow method (``TVL1jpg_``, ``MPEGjpg_``...).
        on_missing: ``"error"`` (default) raises listing every empty or missing
            folder; ``"skip"`` drops them and prints the same list to stderr.
    """

    def __init__(
        self,
        frame_root: str | Path,
        modalities: Sequence[str] = ("rgb",),
        flow_prefix: str = framestore.FLOW_PREFIX,
        on_missing: str = "error",
    ) -> None:
        if on_missing not in ON_MISSING:
            raise MarsError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}")
        self.root = Path(frame_root)
        self.modalities = parse_modality(modalities)
        self.flow_prefix = flow_prefix
        self.on_missing = on_missing
        self._counts: dict[Path, int] = {}
        self._sizes: dict[Path, tuple[int, int]] = {}

    def prepare(self, records: Sequence[VideoRecord]) -> list[Path | None]:
        """Folder of each record (None where skipped); counts frames, reports offenders."""
        folders, problems = self.scan(records)
        _report(self.root, problems, "without usable frames", self.on_missing)
        return folders

    def scan(self, records: Sequence[VideoRecord]) -> tuple[list[Path | None], list[str]]:
        """(folder or None per record, one ``"<path>: <reason>"`` per offender)."""
        if not self.root.is_dir():
            raise MarsError(f"{self.root}: frame store folder not found")
        folders: list[Path | None] = []
        problems: list[str] = []
        for record, folder in zip(records, self._locate(records), strict=True):
            count, problem = self._count(folder)
            if problem:
                problems.append(f"{record.path}: {problem}")
            else:
                self._counts[folder] = count
            folders.append(None if problem else folder)
        return folders, problems

    def num_frames(self, location: Path) -> int:
        """Frames of a video, counted once when the source was built."""
        return self._counts[location]

    def frame_size(self, location: Path) -> tuple[int, int]:
        """(height, width) of the video's frames, read once per video and process."""
        if location not in self._sizes:
            first = []
            if "rgb" in self.modalities:
                first.append(location / framestore.rgb_name(0))
            if "flow" in self.modalities:
                first.append(location / framestore.flow_names(0, self.flow_prefix)[0])
            sizes = [framestore.image_size(path) for path in first]
            if len(set(sizes)) > 1:
                raise MarsError(f"{location}: RGB frames {sizes[0]} and flow {sizes[1]} differ")
            self._sizes[location] = sizes[0]
        return self._sizes[location]

    def read(
        self,
        location: Path,
        indices: Sequence[int],
        window: framestore.Window | None = None,
        reduction: int = 1,
    ) -> dict[str, np.ndarray]:
        """Frames at 0-based ``indices``, each modality decoded straight into its window."""
        frames = {}
        if "rgb" in self.modalities:  # (N, H, W, 3)
            frames["rgb"] = framestore.read_rgb(location, indices, window, reduction)
        if "flow" in self.modalities:  # (N, H, W, 2) codes
            frames["flow"] = framestore.read_flow(
                location, indices, self.flow_prefix, window, reduction
            )
        return frames

    def _locate(self, records: Sequence[VideoRecord]) -> list[Path]:
        folders = [self.root / strip_video_suffix(record.path) for record in records]
        if all(folder.is_dir() for folder in folders):
            return folders
        by_name = _folders_by_name(self.root)
        return [
            folder if folder.is_dir() else by_name.get(video_stem(record.path), folder)
            for record, folder in zip(records, folders, strict=True)
        ]

    def _count(self, folder: Path) -> tuple[int, str]:
        """(usable frames, problem or "")."""
        if not folder.is_dir():
            return 0, "frame folder not found"
        markers = [framestore.DONE] if "rgb" in self.modalities else []
        markers += [f"{self.flow_prefix}done"] if "flow" in self.modalities else []
        for marker in markers:  # a set marked done must hold what its record says
            problem = completeness.done_problem(folder, marker)
            if problem:
                return 0, problem.removeprefix(f"{folder}: ")
        if "rgb" in self.modalities and not framestore.is_done(folder):
            # Frames a dataset ships (Something-Something) have no marker: no gaps allowed.
            problem = completeness.numbering_problem(folder)
            if problem:
                return 0, problem.removeprefix(f"{folder}: ")
        rgb = framestore.frame_count(folder) if "rgb" in self.modalities else 0
        flow = framestore.flow_count(folder, self.flow_prefix) if "flow" in self.modalities else 0
        if self.modalities == ("rgb",):
            return rgb, "" if rgb else "no frames (empty folder)"
        if not flow:
            return 0, f"no {self.flow_prefix}x_/y_ flow files"
        if self.modalities == ("flow",):
            return flow, ""
        if flow < rgb - 1 or not rgb:
            return 0, f"flow incomplete ({flow} fields for {rgb} frames)"
        return min(rgb, flow), ""


class VideoFileSource:
    """RGB frames decoded straight from video files (no frame store), 25 fps, short side 256.

    Frame ``k`` is the frame shown at ``k / fps`` s. A clip is decoded by seeking
    to the keyframe before its first frame; frames before the clip that no other
    frame refers to are skipped, the others decoded but not converted, and only
    the clip's frames are converted to RGB. Video properties are probed once per
    video and process (the frame count is an estimate from the container: a clip
    that runs past the real end repeats the last frame).

    Args:
        video_root: folder the records' paths are relative to.
        fps: frame rate to resample to.
        short_side: resize so the shorter side has this length.
        threads: decoder threads per video (1 suits DataLoader workers).
        on_missing: as for :class:`FrameStoreSource`.
    """

    modalities = ("rgb",)

    def __init__(
        self,
        video_root: str | Path,
        fps: float = 25.0,
        short_side: int | None = 256,
        threads: int = 1,
        on_missing: str = "error",
    ) -> None:
        if on_missing not in ON_MISSING:
            raise MarsError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}")
        self.root = Path(video_root)
        self.fps, self.short_side, self.threads = fps, short_side, threads
        self.on_missing = on_missing
        self._counts: dict[Path, int] = {}
        self._infos: dict[Path, decode.VideoInfo] = {}

    def prepare(self, records: Sequence[VideoRecord]) -> list[Path | None]:
        """Path of each record's video (None where skipped); reports missing files."""
        found = [p if (p := self.root / r.path).is_file() else None for r in records]
        problems = [f"{r.path}: no file" for r, p in zip(records, found, strict=True) if not p]
        _report(self.root, problems, "not found", self.on_missing)
        return found

    def num_frames(self, location: Path) -> int:
        """Frames of a video at the source's fps, from its duration (probed once per video)."""
        if location not in self._counts:
            self._counts[location] = max(1, round(self._info(location).duration * self.fps))
        return self._counts[location]

    def frame_size(self, location: Path) -> tuple[int, int]:
        """(height, width) of the decoded frames (after the short-side resize)."""
        info = self._info(location)
        if self.short_side is None:
            return info.height, info.width
        width, height = decode.resized_size(info.width, info.height, self.short_side)
        return height, width

    def read(
        self,
        location: Path,
        indices: Sequence[int],
        window: tuple[int, int, int, int] | None = None,
        reduction: int = 1,
    ) -> dict[str, np.ndarray]:
        """Frames at sorted 0-based ``indices``: (N, H, W, 3) uint8.

        ``window`` crops each frame as it is decoded; ``reduction`` is ignored
        (frames are decoded at full size).
        """
        first, last = int(indices[0]), int(indices[-1])
        decoded = decode.iter_frames(
            location,
            self.fps,
            self.short_side,
            start=first / self.fps,
            end=(last + 1) / self.fps,
            threads=self.threads,
        )
        frames = [frame for _, frame in decoded]
        if not frames:  # the count was an overestimate: learn the real one, read again
            self._counts[location] = len(decode.decode_video(location, self.fps, self.short_side))
            indices = [i % self._counts[location] for i in indices]
            return self.read(location, sorted(set(indices)), window)
        top, left, height, width = window or (0, 0, *frames[0].shape[:2])
        picks = [frames[min(int(i) - first, len(frames) - 1)] for i in indices]
        clip = np.stack([frame[top : top + height, left : left + width] for frame in picks])
        if clip.shape[1:3] != (height, width):
            raise decode.VideoError(f"{location}: window {window} is outside the frames")
        return {"rgb": clip}  # (N, H, W, 3)

    def _info(self, location: Path) -> decode.VideoInfo:
        if location not in self._infos:
            self._infos[location] = decode.probe(location)
        return self._infos[location]


def _report(root: Path, problems: list[str], what: str, on_missing: str) -> None:
    """Raise (``on_missing="error"``) or warn on stderr (``"skip"``), naming every offender."""
    if not problems:
        return
    message = f"{root}: {len(problems)} video(s) {what}: {offender_list(problems)}"
    if on_missing == "error":
        raise MarsError(message + " (on_missing='skip' drops them; mars data-summary lists all)")
    print(f"warning: {message} (skipped)", file=sys.stderr)


def _folders_by_name(root: Path) -> dict[str, Path]:
    """``video name -> <root>/<class>/<video>`` for every folder one class level down."""
    index: dict[str, Path] = {}
    with os.scandir(root) as classes:
        for class_dir in classes:
            if class_dir.is_dir() and not class_dir.name.startswith("."):
                with os.scandir(class_dir.path) as videos:
                    for video in videos:
                        if video.is_dir() and not video.name.startswith("."):
                            index.setdefault(video.name, Path(video.path))
    return index
