"""What every annotation parser produces: video records, class names, and a summary.

Split roles are ``train``, ``val`` (held out of train, for model selection) and
``test`` (the official evaluation split: UCF101/HMDB51 test lists, the Kinetics,
MiniKinetics and Something-Something validation sets, whose test labels are not
public). ``unused`` marks HMDB51's "0" entries.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")
VIDEO_EXTENSIONS = (
    ".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".3gp"
)


@dataclass(frozen=True)
class VideoRecord:
    """One annotated video.

    Attributes:
        video_id: unique id (the file stem, or Something-Something's number).
        path: path relative to the dataset root, as found on disk after resolution
            (``Class/v_x.mp4``), or as the annotation names it before.
        label: class index into the dataset's ``class_names``; -1 if unlabelled.
        split: ``train``, ``val``, ``test`` or ``unused``.
    """

    video_id: str
    path: str
    label: int
    split: str


@dataclass
class Annotations:
    """A parsed dataset: class names, records, and what was not found on disk.

    Attributes:
        format: the parser's name (``ucf101``, ``kinetics``...).
        class_names: index -> name.
        records: every usable record (found on disk when a root was given).
        sources: the annotation files read, for messages.
        missing: records whose video was not found (dropped from ``records``).
    """

    format: str
    class_names: list[str]
    records: list[VideoRecord]
    sources: list[str] = field(default_factory=list)
    missing: list[VideoRecord] = field(default_factory=list)

    def split(self, name: str) -> list[VideoRecord]:
        """Records of one split role."""
        return [record for record in self.records if record.split == name]

    def counts(self) -> dict[str, int]:
        """Videos per split role, in the order train, val, test, others."""
        counts = Counter(record.split for record in self.records)
        order = [*SPLITS, *sorted(set(counts) - set(SPLITS))]
        return {name: counts[name] for name in order if counts[name] or name in SPLITS}

    def summary(self, examples: int | None = 5) -> str:
        """A few lines for people: classes, videos per split, missing files.

        ``examples`` caps the class names and missing videos shown (None: all).
        """
        names = ", ".join(self.class_names[:examples])
        more = ", ..." if len(self.class_names) > len(self.class_names[:examples]) else ""
        lines = [
            f"dataset: {self.format} ({', '.join(self.sources) or 'no annotation file'})",
            f"classes: {len(self.class_names)} ({names}{more})",
            "videos: " + ", ".join(f"{k} {v}" for k, v in self.counts().items()),
            f"missing videos: {len(self.missing)}",
        ]
        shown = self.missing if examples is None else self.missing[:examples]
        lines += [f"  missing: {record.path}" for record in shown]
        if len(self.missing) > len(shown):
            lines.append(f"  ... and {len(self.missing) - len(shown)} more")
        return "\n".join(lines)


def strip_video_suffix(path: str) -> str:
    """``Class/v_x.avi`` -> ``Class/v_x``; names without a video extension are kept whole."""
    suffix = Path(path).suffix
    return path[: -len(suffix)] if suffix.lower() in VIDEO_EXTENSIONS else path


def video_stem(path: str) -> str:
    """The file name without a video extension: the key that matches ``.avi`` to ``.mp4``."""
    return Path(strip_video_suffix(path)).name


def offender_list(problems: list[str], limit: int = 20) -> str:
    """``a; b; c ... and N more``: one line naming the first offenders."""
    shown = "; ".join(problems[:limit])
    return shown + (f" ... and {len(problems) - limit} more" if len(problems) > limit else "")
