"""Frame extraction of a whole dataset: videos -> ``<out>/<class>/<video>/00001.jpg ...``."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from mars_action import threads as thread_policy
from mars_action.errors import MarsError
from mars_action.files import confined
from mars_action.video import framestore, store
from mars_action.video.batch import BatchSummary, SkipItem, run_batch
from mars_action.video.claim import claim
from mars_action.video.decode import iter_frames
from mars_action.video.released import iter_released_jpegs

RELEASED = "released"
# Frame recipes: ours (nearest frame on the grid, OpenCV resize and JPEG) and the
# released code's ffmpeg command, reproduced frame for frame.
PRESETS = ("mars", RELEASED)
# Files in class folders that are certainly not videos (FFmpeg reads nearly anything
# else, so other names are tried and fail with a reason if they are not videos).
NOT_VIDEO = frozenset(
    ".txt .csv .json .md .yaml .yml .xml .html .pdf .py .sh .log .lst .srt .vtt .ass"
    " .jpg .jpeg .png .bmp .zip .tar .gz .tgz .rar .7z".split()
)


@dataclass(frozen=True)
class VideoItem:
    """One video to extract: its file and the class folder its frames go to."""

    path: Path
    class_name: str

    @property
    def stem(self) -> str:
        """The video's name without extension: its folder name in the frame store."""
        return self.path.stem

    def __str__(self) -> str:
        return str(self.path)


def find_videos(source: str | Path) -> list[VideoItem]:
    """Videos of a folder ``<source>/<class>/<video>.<ext>`` or of a text list of paths.

    In a list, one path a line (blank lines and ``#`` comments skipped), relative paths
    taken from the list's folder; the class is each video's parent folder name.
    """
    source = Path(source)
    if source.is_dir():
        items = [
            VideoItem(path, class_dir.name)
            for class_dir in sorted(_visible(source.iterdir()))
            if class_dir.is_dir()
            for path in sorted(_visible(class_dir.iterdir()))
            if not path.is_dir() and path.suffix.lower() not in NOT_VIDEO
        ]
    elif source.is_file():
        items = [VideoItem(path, path.parent.name) for path in _read_list(source)]
    else:
        raise MarsError(f"{source}: no such folder or list file")
    _check_unique_outputs(items)
    return items


def _visible(paths):
    return (path for path in paths if not path.name.startswith("."))


def _read_list(list_file: Path) -> list[Path]:
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise MarsError(f"{list_file}: cannot read the video list ({error})") from None
    paths = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            # Lexically normalised: ``sub/../x.mp4`` belongs to the list's own folder.
            paths.append(Path(os.path.normpath(list_file.parent / line)))
    return paths


def _check_unique_outputs(items: list[VideoItem]) -> None:
    seen: dict[tuple[str, str], Path] = {}
    for item in items:
        first = seen.setdefault((item.class_name, item.stem), item.path)
        if first != item.path:
            raise MarsError(
                f"{item.path}: same output folder {item.class_name}/{item.stem} as {first}"
            )


def output_dir(out_root: str | Path, item: VideoItem) -> Path:
    """Where the frames of ``item`` go: ``<out_root>/<class>/<video stem>``.

    Raises:
        MarsError: that folder would not be inside ``out_root`` (a class or video
            named ``..``, a symbolic link out): the item fails, nothing is written.
    """
    return confined(out_root, item.class_name, item.stem)


def extract_video(
    item: VideoItem,
    out_root: str | Path,
    fps: float | None = 25.0,
    short_side: int | None = 256,
    quality: int = framestore.DEFAULT_QUALITY,
    threads: int = 0,
    preset: str = "mars",
) -> dict[str, int]:
    """Decode one video into its frame folder (atomic, ``done`` last); returns figures.

    ``preset`` ``"released"`` writes the frames of the released code's ``ffmpeg -r 25
    -q:v 2`` command (:mod:`mars_action.video.released`; ``fps``, ``short_side`` and
    ``quality`` are then those of the command); ``"mars"`` uses them as given.
    ``cpu_seconds`` is the CPU time of this process (every thread: decoder threads
    included) spent on the video; against the wall time it shows how many cores
    one video keeps busy.
    """
    cpu_start = time.process_time()
    out = output_dir(out_root, item)
    with claim(out, framestore.DONE):
        if framestore.is_done(out):
            raise SkipItem(f"{out}: done by another run meanwhile")
        if preset == RELEASED:
            frames = iter_released_jpegs(item.path, threads=threads)
        else:
            frames = (
                frame for _, frame in iter_frames(item.path, fps, short_side, threads=threads)
            )
        count = framestore.write_frames(out, frames, quality)
    return {"frames": count, "cpu_seconds": round(time.process_time() - cpu_start, 4)}


def extract_frames(
    source: str | Path,
    out_root: str | Path,
    *,
    fps: float | None = 25.0,
    short_side: int | None = 256,
    quality: int = framestore.DEFAULT_QUALITY,
    workers: int | None = None,
    threads: int | None = None,
    shard: tuple[int, int] = (0, 1),
    report_path: str | Path | None = None,
    preset: str = "mars",
) -> BatchSummary:
    """Extract every video of ``source`` (see :func:`find_videos`) into ``out_root``.

    ``preset`` as for :func:`extract_video` (one of :data:`PRESETS`).

    Resumable: videos whose folder has ``done`` are skipped. ``workers`` processes
    (default: one per core) each decode with ``threads`` threads (default: their
    share of the cores, so N workers do not start N x cores threads).
    """
    items = find_videos(source)
    store.record(out_root, frame_settings(fps, short_side, quality, preset))
    # One process per core even when others are busy: single-threaded workers do not
    # spin, so the scheduler shares the cores fairly; threads per worker follow the free ones.
    workers = workers or thread_policy.cores()
    threads = threads or decoder_threads(workers)
    job = functools.partial(
        extract_video,
        out_root=out_root,
        fps=fps,
        short_side=short_side,
        quality=quality,
        threads=threads,
        preset=preset,
    )
    skip = functools.partial(_is_extracted, out_root)
    return run_batch(
        items, job, workers=workers, shard=shard, desc="frames", skip=skip, report_path=report_path
    )


def decoder_threads(workers: int, cores: int | None = None) -> int:
    """Decoder threads per worker: the worker's share of the (free) cores, at least one."""
    return thread_policy.per_worker(workers, cores)


def frame_settings(
    fps: float | None, short_side: int | None, quality: int, preset: str = "mars"
) -> dict:
    """What ``store.json`` records of a frame extraction (None: the video's own)."""
    if preset == RELEASED:  # the command's, whatever was passed
        return {"preset": preset, "fps": 25.0, "short_side": 256, "quality": "ffmpeg -q:v 2"}
    return {"preset": preset, "fps": fps, "short_side": short_side, "quality": quality}


def _is_extracted(out_root: str | Path, item: VideoItem) -> bool:
    try:
        return framestore.is_done(output_dir(out_root, item))
    except MarsError:  # outside out_root: the job fails with the reason
        return False
