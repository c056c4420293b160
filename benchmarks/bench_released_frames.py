"""``mars frames --preset released`` against the released code's ``ffmpeg`` command.

On every clip of the UCF101 subset (25 and 29.97 fps): frame count, which native
frame each output frame is (its bytes equal the command's native-rate frame
at our index), and the mean absolute difference (grey levels, BGR
after decoding both JPEGs) of every frame against ``ffmpeg -i V -r 25 -q:v 2 -vf
scale=-1:256 %05d.jpg``; and the speed of one worker, one thread, of the preset
against today's default extraction (``--preset mars``) and the ``ffmpeg`` program.
Needs the ``ffmpeg`` program (Debian: ``apt-get install ffmpeg``).

    python benchmarks/bench_released_frames.py [--videos N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from bench_frame_extraction import SUBSET
from harness import write_result

from mars_action.video.extract import VideoItem, extract_video
from mars_action.video.released import released_indices, scale_args


def ffmpeg_jpegs(video: Path, out: Path, *extra: str) -> tuple[list[bytes], float]:
    """Frames the command writes (``extra`` before the encoder options) and its seconds."""
    out.mkdir()
    capture = cv2.VideoCapture(str(video))
    scale = scale_args(int(capture.get(3)), int(capture.get(4)))
    start = time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-threads", "1", "-i", str(video), *extra, "-q:v", "2",
         "-vf", f"scale={scale}", str(out / "%05d.jpg")],
        check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return [path.read_bytes() for path in sorted(out.glob("*.jpg"))], seconds


def decoded(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).astype(np.int16)


def compare(video: Path, tmp: Path) -> dict:
    """Counts, indices and per-frame differences of one clip, and the seconds of each way."""
    reference, ffmpeg_s = ffmpeg_jpegs(video, tmp / "r25", "-r", "25")
    native, _ = ffmpeg_jpegs(video, tmp / "native", "-vsync", "passthrough")
    # Same encoder, same input: the command's frame k is byte-equal to the native frame it
    # took. Compared by content, since some clips repeat a frame (two equal natives).
    digests = [hashlib.md5(data).digest() for data in native]
    picked = released_indices(video)
    same_frames = len(picked) == len(reference) and all(
        i < len(digests) and digests[i] == hashlib.md5(data).digest()
        for i, data in zip(picked, reference, strict=True)
    )
    timings = {}
    for preset in ("released", "mars"):
        start = time.perf_counter()
        figures = extract_video(VideoItem(video, "c"), tmp / preset, threads=1, preset=preset)
        timings[preset] = (time.perf_counter() - start, figures["frames"])
    ours = sorted((tmp / "released" / "c" / video.stem).glob("*.jpg"))
    mads = [
        float(np.abs(decoded(path.read_bytes()) - decoded(data)).mean())
        for path, data in zip(ours, reference, strict=False)
    ]
    return {
        "video": video.name,
        "fps": cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS),
        "frames_ffmpeg": len(reference),
        "frames_ours": len(ours),
        "indices_equal": same_frames,
        "mad_max": max(mads) if mads else None,
        "mad_mean": statistics.fmean(mads) if mads else None,
        "seconds": {
            "ffmpeg": ffmpeg_s,
            "released": timings["released"][0],
            "mars": timings["mars"][0],
        },  # fmt: skip
        "frames_mars": timings["mars"][1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=0, help="first N clips (default all)")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("the ffmpeg program is needed (apt-get install ffmpeg)")
    clips = sorted(SUBSET.glob("*/*.mp4"))[: args.videos or None]
    rows = []
    for clip in clips:
        with tempfile.TemporaryDirectory(prefix="bench-released-") as folder:
            rows.append(compare(clip, Path(folder)))
    ntsc = [row for row in rows if abs(row["fps"] - 29.97) < 0.01]
    total = {
        way: sum(row["seconds"][way] for row in rows) for way in ("ffmpeg", "released", "mars")
    }
    frames = sum(row["frames_ffmpeg"] for row in rows)
    figures = {
        "videos": len(rows),
        "videos_2997fps": len(ntsc),
        "frames": frames,
        "count_mismatches": [r["video"] for r in rows if r["frames_ours"] != r["frames_ffmpeg"]],
        "index_mismatches": [r["video"] for r in rows if not r["indices_equal"]],
        "mad_max_over_all_frames": max(r["mad_max"] for r in rows),
        "mad_mean_over_videos": statistics.fmean(r["mad_mean"] for r in rows),
        "frames_per_s_1thread": {
            "released_preset": round(frames / total["released"], 1),
            "mars_preset": round(sum(r["frames_mars"] for r in rows) / total["mars"], 1),
            "ffmpeg_program": round(frames / total["ffmpeg"], 1),
        },
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "per_video": rows,
    }
    speed = figures["frames_per_s_1thread"]
    summary = (
        f"released frames: {len(rows)} UCF101 clips ({len(ntsc)} at 29.97 fps), {frames} frames: "
        f"{len(figures['count_mismatches'])} count and {len(figures['index_mismatches'])} index "
        f"mismatches, MAD max {figures['mad_max_over_all_frames']:.3f} grey levels; 1 thread "
        f"{speed['released_preset']} frames/s (mars preset {speed['mars_preset']}, ffmpeg "
        f"{speed['ffmpeg_program']}); load {figures['load_average_1min_at_end']}"
    )
    write_result("released_frames", figures, summary)


if __name__ == "__main__":
    main()
