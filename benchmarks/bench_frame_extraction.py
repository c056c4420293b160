"""Frame extraction speed (``mars frames``) on real UCF101 clips: 1 worker against N.

Each round extracts the same clips into a fresh folder with every setting in turn,
so that load from other processes hits all alike; figures are median rounds:

- ``1w_default``: 1 worker (in this process), decoder threads = all cores (the default);
- ``1w_1thread``: 1 worker, 1 decoder thread: the work of one core;
- ``Nw_default``: N workers (default: all cores), decoder threads = cores // N.

Besides frames/s (wall clock, pool start-up included), each setting reports the CPU
seconds its videos took (every thread of the worker processes, from the report's
``cpu_seconds``) and ``cores_busy`` = CPU / wall: how many cores it kept busy. A
speed-up below N with ``cores_busy`` near N means the machine, not the code, is
the limit (other load, memory bandwidth); ``cores_busy`` well below N means idle
cores. Also measured, in one process and one thread: decoding alone (PyAV,
resample, resize) and JPEG encoding alone, to show where the time goes.

    python benchmarks/bench_frame_extraction.py [--videos 24] [--workers N] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from harness import write_result

from mars_action.video.decode import decode_video
from mars_action.video.extract import decoder_threads, extract_frames
from mars_action.video.framestore import DEFAULT_QUALITY, encode_jpeg

SUBSET = Path(
    os.environ.get(
        "MARS_UCF101_SUBSET", Path(__file__).resolve().parents[2] / "shared/data/ucf101-subset"
    )
)


def pick_clips(count: int) -> list[Path]:
    """``count`` clips spread over the classes (first clip of each class, then the second...)."""
    by_class = [sorted(folder.glob("*.mp4")) for folder in sorted(SUBSET.glob("*/"))]
    by_class = [clips for clips in by_class if clips]
    if not by_class:
        raise SystemExit(f"no clips found in {SUBSET} (set MARS_UCF101_SUBSET)")
    rank = max(map(len, by_class))
    return [clips[i] for i in range(rank) for clips in by_class if i < len(clips)][:count]


def extract_once(list_file: Path, workers: int, threads: int | None) -> dict[str, float]:
    """Wall seconds, frames and CPU seconds of one extraction into a fresh folder."""
    with tempfile.TemporaryDirectory(prefix="bench-frames-") as out:
        start = time.perf_counter()
        summary = extract_frames(list_file, out, workers=workers, threads=threads)
        seconds = time.perf_counter() - start
    if summary.failures:
        raise SystemExit(summary.format())
    return {
        "seconds": seconds,
        "frames": sum(result.figures["frames"] for result in summary.results),
        "cpu_seconds": sum(result.figures["cpu_seconds"] for result in summary.results),
    }


def decode_and_encode(clips: list[Path]) -> tuple[float, float, int]:
    """Seconds of decoding alone (one thread) and of JPEG encoding alone, in this process."""
    start = time.perf_counter()
    videos = [decode_video(clip, threads=1) for clip in clips]  # (T, 256, W, 3) each
    decode_s = time.perf_counter() - start
    start = time.perf_counter()
    for video in videos:
        for frame in video:
            encode_jpeg(frame, DEFAULT_QUALITY)
    return decode_s, time.perf_counter() - start, sum(len(video) for video in videos)


def settings(workers: int) -> dict[str, tuple[int, int | None]]:
    """Name -> (workers, decoder threads per worker or None for the default)."""
    return {"1w_default": (1, None), "1w_1thread": (1, 1), f"{workers}w_default": (workers, None)}


def figures_of(runs: list[dict[str, float]], workers: int, threads: int) -> dict:
    median = statistics.median(run["seconds"] for run in runs)
    cpu = statistics.median(run["cpu_seconds"] for run in runs)
    frames = runs[0]["frames"]
    return {
        "workers": workers,
        "decoder_threads": threads,
        "seconds_median": round(median, 3),
        "seconds_all": [round(run["seconds"], 3) for run in runs],
        "frames_per_s": round(frames / median, 1),
        "cpu_seconds_median": round(cpu, 3),
        "cpu_ms_per_frame": round(1000 * cpu / frames, 3),
        "cores_busy": round(cpu / median, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    clips = pick_clips(args.videos)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in settings(args.workers)}
    with tempfile.TemporaryDirectory(prefix="bench-frames-list-") as folder:
        list_file = Path(folder) / "clips.txt"
        list_file.write_text("\n".join(map(str, clips)) + "\n")
        for _ in range(args.rounds):
            for name, (workers, threads) in settings(args.workers).items():
                runs[name].append(extract_once(list_file, workers, threads))
    decode_s, encode_s, decoded = decode_and_encode(clips)
    frames = runs["1w_default"][0]["frames"]

    figures = {
        "videos": len(clips),
        "frames": frames,
        "rounds": args.rounds,
        "cpu_cores": os.cpu_count(),
        "fps_out": 25,
        "short_side": 256,
        "jpeg_quality": DEFAULT_QUALITY,
        "decode_only_1thread_frames_per_s": round(decoded / decode_s, 1),
        "jpeg_encode_only_frames_per_s": round(decoded / encode_s, 1),
    }
    for name, (workers, threads) in settings(args.workers).items():
        figures[name] = figures_of(runs[name], workers, threads or decoder_threads(workers))
    many = figures[f"{args.workers}w_default"]
    for base in ("1w_default", "1w_1thread"):
        ratio = figures[base]["seconds_median"] / many["seconds_median"]
        figures[f"speedup_{args.workers}w_vs_{base}"] = round(ratio, 2)
    figures["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    one, single = figures["1w_default"], figures["1w_1thread"]
    summary = (
        f"frame extraction: {len(clips)} UCF101 clips, {frames} frames/run: "
        f"1 worker {one['frames_per_s']:.0f} frames/s ({one['cores_busy']} cores busy), "
        f"1 worker 1 thread {single['frames_per_s']:.0f} ({single['cores_busy']}), "
        f"{args.workers} workers {many['frames_per_s']:.0f} ({many['cores_busy']}): "
        f"{figures[f'speedup_{args.workers}w_vs_1w_default']}x / "
        f"{figures[f'speedup_{args.workers}w_vs_1w_1thread']}x; "
        f"decode alone {figures['decode_only_1thread_frames_per_s']:.0f}, "
        f"JPEG alone {figures['jpeg_encode_only_frames_per_s']:.0f} frames/s (1 thread); "
        f"load {figures['load_average_1min_at_end']}"
    )
    write_result("frame_extraction", figures, summary)


if __name__ == "__main__":
    main()
