"""Frame extraction speed (``mars frames``) on real UCF101 clips: frames/s, 1 and N workers.

Each round extracts the same clips into a fresh folder with 1 worker, then with N
(default: all cores), so that load from other processes hits both alike; the figure
is the median round. Also measured, in one process: decoding alone (PyAV, resample,
resize) and JPEG encoding alone, to show where the time goes.

    python benchmarks/bench_frame_extraction.py [--videos 8] [--workers N] [--rounds 3]
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
from mars_action.video.extract import extract_frames
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


def extract_once(list_file: Path, workers: int) -> tuple[float, int]:
    """Seconds and frames of one extraction into a fresh folder."""
    with tempfile.TemporaryDirectory(prefix="bench-frames-") as out:
        start = time.perf_counter()
        summary = extract_frames(list_file, out, workers=workers)
        seconds = time.perf_counter() - start
    if summary.failures:
        raise SystemExit(summary.format())
    return seconds, sum(result.figures["frames"] for result in summary.results)


def decode_and_encode(clips: list[Path]) -> tuple[float, float, int]:
    """Seconds of decoding alone and of JPEG encoding alone, in this process."""
    start = time.perf_counter()
    videos = [decode_video(clip) for clip in clips]  # (T, 256, W, 3) each
    decode_s = time.perf_counter() - start
    start = time.perf_counter()
    for video in videos:
        for frame in video:
            encode_jpeg(frame, DEFAULT_QUALITY)
    return decode_s, time.perf_counter() - start, sum(len(video) for video in videos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    clips = pick_clips(args.videos)
    rounds: dict[int, list[float]] = {1: [], args.workers: []}
    with tempfile.TemporaryDirectory(prefix="bench-frames-list-") as folder:
        list_file = Path(folder) / "clips.txt"
        list_file.write_text("\n".join(map(str, clips)) + "\n")
        for _ in range(args.rounds):
            for workers in rounds:
                seconds, frames = extract_once(list_file, workers)
                rounds[workers].append(seconds)
    decode_s, encode_s, decoded = decode_and_encode(clips)

    figures = {
        "videos": len(clips),
        "frames": frames,
        "rounds": args.rounds,
        "fps_out": 25,
        "short_side": 256,
        "jpeg_quality": DEFAULT_QUALITY,
        "decode_only_frames_per_s": round(decoded / decode_s, 1),
        "jpeg_encode_only_frames_per_s": round(decoded / encode_s, 1),
    }
    for workers, times in rounds.items():
        median = statistics.median(times)
        figures[f"workers_{workers}"] = {
            "seconds_median": round(median, 3),
            "seconds_all": [round(t, 3) for t in times],
            "frames_per_s": round(frames / median, 1),
        }
    one, many = figures["workers_1"], figures[f"workers_{args.workers}"]
    speedup = one["seconds_median"] / many["seconds_median"]
    figures["speedup"] = round(speedup, 2)
    summary = (
        f"frame extraction: {len(clips)} UCF101 clips, {frames} frames: "
        f"{one['frames_per_s']:.0f} frames/s with 1 worker, "
        f"{many['frames_per_s']:.0f} frames/s with {args.workers} ({speedup:.2f}x); "
        f"decode alone {figures['decode_only_frames_per_s']:.0f}, "
        f"JPEG alone {figures['jpeg_encode_only_frames_per_s']:.0f} frames/s"
    )
    write_result("frame_extraction", figures, summary)


if __name__ == "__main__":
    main()
