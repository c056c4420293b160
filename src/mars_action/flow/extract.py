"""Flow for a whole dataset (``mars flow``): beside a frame store, or straight from videos.

From a frame store ``<root>/<class>/<video>/00001.jpg`` the flow of each complete
video folder (RGB ``done`` present) is written beside its frames; from videos
(a folder ``<class>/<video>.<ext>`` or a list, as ``mars frames`` takes) frames
are decoded in memory (same fps and short side as ``mars frames``) and only the
flow goes to ``<out>/<class>/<video>/``. Either way:

- files ``<prefix>x_00001.jpg`` / ``<prefix>y_00001.jpg`` (flow i = frame i -> i+1,
  8-bit codes of :mod:`mars_action.flow.quantize`), then the per-method marker
  ``<prefix>done`` (e.g. ``TVL1jpg_done``, recording ``{"pairs": n, "method": m}``),
  written last by the one process holding the video's claim: a video with the marker is
  skipped on the next run, one without it is redone from scratch;
- images are written atomically (``framestore.write_jpegs_atomic``);
- frames are read and solved in chunks, so memory does not grow with video length;
- the batch (process pool, shards, failure summary, report) is ``video.batch.run_batch``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mars_action import threads
from mars_action.errors import MarsError
from mars_action.flow.methods import check_method, compute_flow
from mars_action.flow.mpeg import iter_mpeg_flow
from mars_action.flow.packed import pack_name, write_pack
from mars_action.flow.quantize import BOUND, quantize
from mars_action.progress import duration
from mars_action.video import completeness, framestore, store
from mars_action.video.batch import BatchSummary, SkipItem, run_batch
from mars_action.video.claim import claim
from mars_action.video.decode import iter_frames
from mars_action.video.extract import VideoItem, find_videos, output_dir


@dataclass(frozen=True)
class FlowJob:
    """Everything one worker needs to turn one video into flow files (picklable)."""

    method: str = "tvl1"
    prefix: str = "TVL1jpg_"
    quantize: str = "floor"
    quality: int = framestore.DEFAULT_QUALITY
    device: str = "cpu"
    batch_size: int | None = None  # tvl1-torch: None = 1 on CPU, 16 on GPU
    preset: str = "opencv-cpu"
    compile: bool = False  # tvl1-torch: torch.compile the iteration
    chunk: int = 64  # frame pairs held in memory at once
    fps: float | None = 25.0  # videos only: the frame grid, as ``mars frames``
    short_side: int | None = 256
    reencode: bool = False  # mpeg from videos: re-encode without B-frames first
    threads: int = 1  # OpenCV / torch threads in each worker
    progress: bool = False  # a per-video pairs bar (one worker only)
    packed: bool = False  # videos only: one pack file a video (mars_action.flow.packed)

    @property
    def marker(self) -> str:
        """The file that marks a video's flow as complete (one per method, so methods coexist)."""
        return f"{self.prefix}done"


def extract_flow(
    source: str | Path,
    job: FlowJob,
    *,
    out_root: str | Path | None = None,
    workers: int | None = None,
    shard: tuple[int, int] = (0, 1),
    report_path: str | Path | None = None,
) -> BatchSummary:
    """Flow of every video of a frame store (beside its frames) or of videos (into ``out_root``).

    Resumable: videos whose folder has ``job.marker`` are skipped.
    """
    check_method(job.method)
    source = Path(source)
    workers = workers or (1 if job.device != "cpu" else threads.cores())
    if is_frame_store(source):
        if job.packed:
            raise MarsError(f"{source}: --packed writes flow of videos; a frame store has JPEGs")
        if out_root is not None:
            raise MarsError(f"{source}: a frame store gets its flow beside the frames; drop --out")
        store.record(source, flow_settings(job, from_videos=False), flow_prefix=job.prefix)
        items: list = completeness.list_video_dirs(source)
        forecast = tvl1_forecast(items, job, workers)
        if forecast:
            print(forecast, file=sys.stderr, flush=True)
        run = functools.partial(flow_from_frame_dir, job=job)
        skip = functools.partial(_is_done, job.marker)
        key = _store_key
    else:
        if out_root is None:
            raise MarsError(f"{source}: not a frame store; flow from videos needs --out OUT_DIR")
        store.record(out_root, flow_settings(job, from_videos=True), flow_prefix=job.prefix)
        items = find_videos(source)
        run = functools.partial(flow_from_video, out_root=Path(out_root), job=job)
        skip = functools.partial(_video_done, Path(out_root), job)
        key = str
    return run_batch(
        items,
        run,
        workers=workers,
        shard=shard,
        desc=f"flow {job.method}",
        skip=skip,
        report_path=report_path,
        key=key,
    )


def flow_settings(job: FlowJob, from_videos: bool) -> dict:
    """What ``store.json`` records of a flow extraction (from videos: the frame grid too)."""
    settings = {"method": job.method, "bound": BOUND, "quantize": job.quantize,
                "quality": job.quality}
    if job.method == "tvl1-torch":
        settings["preset"] = job.preset
    if from_videos:
        settings.update(fps=job.fps, short_side=job.short_side)
    return settings


# OpenCV TV-L1 on one core of the reference machine: 0.85 pairs/s at 256x340
# (benchmarks/results/flow.json); its cost grows with the pixels.
TVL1_PIXELS_PER_S = 0.85 * 256 * 340
FORECAST_FROM_S = 600.0  # warn before a flow extraction longer than this


def tvl1_forecast(video_dirs: list[Path], job: FlowJob, workers: int) -> str | None:
    """A warning with the expected time when OpenCV TV-L1 on these frames will take long.

    At the frame store's usual 256 px, TV-L1 costs about a second a pair on a core:
    CPU-hours for even a small dataset, which a user should know before starting.
    """
    if job.method != "tvl1":
        return None
    todo = [d for d in video_dirs if not framestore.is_done(d, job.marker)]
    pairs = sum(max(framestore.frame_count(d) - 1, 0) for d in todo)
    first = next((d for d in todo if framestore.frame_count(d)), None)
    if first is None:
        return None
    height, width = cv2.imread(str(first / framestore.rgb_name(0))).shape[:2]
    seconds = pairs * height * width / TVL1_PIXELS_PER_S / max(workers, 1)
    if seconds < FORECAST_FROM_S:
        return None
    rate = TVL1_PIXELS_PER_S / height / width
    smaller = ("smaller frames (mars frames --short-side 128: ~4x faster) or "
               if min(height, width) > 128 else "")
    return (f"mars flow: TV-L1 on {pairs} frame pairs of {height}x{width} px will take about "
            f"{duration(seconds)} on {workers} process(es) (~{rate:.2g} pairs/s a core); "
            f"{smaller}--method farneback (~100x faster) try things quickly")


def is_frame_store(source: Path) -> bool:
    """Whether ``source`` is ``<root>/<class>/<video>/`` folders of frames (not videos)."""
    if not source.is_dir():
        return False
    try:
        folders = completeness.list_video_dirs(source)
    except MarsError:
        return False
    return any(framestore.frame_count(folder) or framestore.is_done(folder) for folder in folders)


def flow_from_frame_dir(video_dir: Path, job: FlowJob) -> dict[str, int]:
    """Flow of one frame-store video folder, written beside its frames.

    Frames with a ``done`` marker must hold what it records; frames without one
    (shipped by the dataset, e.g. Something-Something's) must be numbered without
    a gap, so a half-copied folder is refused rather than given shifted flow.
    """
    video_dir = Path(video_dir)
    if framestore.is_done(video_dir):
        problem = completeness.done_problem(video_dir)
    else:
        problem = completeness.numbering_problem(video_dir)
    if problem:
        raise MarsError(problem)
    count = framestore.frame_count(video_dir)
    if count < 2:
        raise MarsError(f"{video_dir}: {count} frame(s), flow needs at least 2")
    _limit_threads(job)
    frames = _read_in_blocks(video_dir, count, job.chunk)
    return _write(video_dir, _solve(frames, job, total=count - 1), job, expected=count - 1)


def flow_from_video(item: VideoItem, out_root: Path, job: FlowJob) -> dict[str, int]:
    """Flow of one video file, decoded in memory, into ``<out_root>/<class>/<video>/``.

    With ``job.packed``, into one file ``<out_root>/<class>/<video>.<prefix>pack`` instead.
    """
    _limit_threads(job)
    if job.method == "mpeg":
        fields = iter_mpeg_flow(item.path, job.fps, job.short_side, job.reencode)
    else:
        fields = _solve((f for _, f in iter_frames(item.path, job.fps, job.short_side)), job)
    if job.packed:
        header = {**flow_settings(job, from_videos=True), "prefix": job.prefix}
        pairs = write_pack(pack_path(out_root, item, job.prefix), fields, header, job.quantize,
                           job.quality)  # fmt: skip
        return {"pairs": pairs}
    return _write(output_dir(out_root, item), fields, job)


def pack_path(out_root: str | Path, item: VideoItem, prefix: str) -> Path:
    """``<out_root>/<class>/<video>.<prefix>pack``: the packed flow of one video."""
    return output_dir(out_root, item).parent / pack_name(item.stem, prefix)


def _solve(frames: Iterable[np.ndarray], job: FlowJob, total: int | None = None) -> Iterator:
    """Flow fields of a frame stream, solved ``job.chunk`` pairs at a time."""
    bar = tqdm(total=total, unit="pair", leave=False, disable=not job.progress or None)
    try:
        for window in _windows(frames, job.chunk):
            flow = compute_flow(
                window,
                job.method,
                device=job.device,
                batch_size=job.batch_size,
                preset=job.preset,
                compile=job.compile,
            )
            bar.update(len(flow))
            yield from flow
    finally:
        bar.close()


def _windows(frames: Iterable[np.ndarray], pairs: int) -> Iterator[np.ndarray]:
    """Stacks of ``pairs + 1`` frames, each starting with the last frame of the one before."""
    window: list[np.ndarray] = []
    for frame in frames:
        window.append(frame)
        if len(window) == pairs + 1:
            yield np.stack(window)
            window = [window[-1]]
    if len(window) > 1:
        yield np.stack(window)


def _read_in_blocks(video_dir: Path, count: int, block: int) -> Iterator[np.ndarray]:
    for start in range(0, count, block):
        yield from framestore.read_rgb(video_dir, range(start, min(count, start + block)))


def _write(
    video_dir: Path, fields: Iterable[np.ndarray], job: FlowJob, expected: int | None = None
) -> dict[str, int]:
    """Quantize and write the fields atomically, then the marker; returns ``{"pairs": n}``.

    Holds the video's claim for ``job.marker`` throughout; the marker records the
    pair count and the method, and is refused (nothing moved in) when the count is
    not what the frames promised.
    """
    with claim(video_dir, job.marker):
        if framestore.is_done(video_dir, job.marker):
            raise SkipItem(f"{video_dir}: {job.marker} done by another run meanwhile")
        _remove_stale(video_dir, job)
        written = framestore.write_jpegs_atomic(
            video_dir,
            _named_codes(fields, job),
            job.quality,
            job.marker,
            record=functools.partial(_flow_record, video_dir, job.method, expected),
        )
    return {"pairs": written // 2}


def _flow_record(video_dir: Path, method: str, expected: int | None, files: int) -> dict:
    pairs = files // 2
    if pairs == 0 or (expected is not None and pairs != expected):
        raise MarsError(f"{video_dir}: wrote {pairs} flow fields, expected {expected or '> 0'}")
    return {"pairs": pairs, "method": method}


def _named_codes(fields: Iterable[np.ndarray], job: FlowJob) -> Iterator[tuple[str, np.ndarray]]:
    for index, field in enumerate(fields):
        codes = quantize(field, job.quantize)  # (H, W, 2) uint8
        name_x, name_y = framestore.flow_names(index, job.prefix)
        yield name_x, codes[..., 0]
        yield name_y, codes[..., 1]


def _remove_stale(video_dir: Path, job: FlowJob) -> None:
    """Drop this method's files of an earlier interrupted run (no marker) before rewriting."""
    if not video_dir.is_dir() or framestore.is_done(video_dir, job.marker):
        return
    for path in video_dir.glob(f"{job.prefix}[xy]_*.jpg"):
        path.unlink()


def _limit_threads(job: FlowJob) -> None:
    """One pool worker per core parallelizes better than threads inside OpenCV or torch."""
    cv2.setNumThreads(job.threads)
    if job.method == "tvl1-torch" and job.device == "cpu":
        import torch

        torch.set_num_threads(job.threads)


def _is_done(marker: str, video_dir: Path) -> bool:
    return framestore.is_done(video_dir, marker)


def _video_done(out_root: Path, job: FlowJob, item: VideoItem) -> bool:
    try:
        if job.packed:  # a pack is renamed into place whole: there means complete
            return pack_path(out_root, item, job.prefix).is_file()
        return framestore.is_done(output_dir(out_root, item), job.marker)
    except MarsError:  # outside out_root: the job fails with the reason
        return False


def _store_key(video_dir: Path) -> str:
    return f"{video_dir.parent.name}/{video_dir.name}"
