"""Precision and streaming figures of a frontier student: agreement and CPU latency of
fp32 / bf16 / int8 (``precision_table``), the same for a trained UCF101 checkpoint
(``bench_frontier.py ucf101-precision``), and ``mars stream`` frames per second.

Split from ``bench_frontier.py``, which trains the students and calls these on their
checkpoints; nothing here trains or reads the frontier's settings.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness import write_result


def precision_table(model, test, calibration, side: int | None = None) -> dict:
    """Agreement and ms per clip of each precision of ``model`` on ``test`` clips."""
    import torch
    import torch.nn.functional as F
    from harness import time_call

    from mars_action.inference.precision import agreement, bf16_supported, convert
    from mars_action.models import count_macs
    from mars_action.models.optimize import to_model_layout

    if side is not None:
        test, calibration = (F.interpolate(c, size=(c.shape[2], side, side), mode="trilinear")
                             for c in (test[:96], calibration))
    networks = {"fp32_eager": model, "fp32": convert(model, "fp32")}
    if bf16_supported():
        networks["bf16"] = convert(model, "bf16")
    networks["int8"] = convert(model, "int8", torch.split(calibration, 8))
    row = {"gmacs": count_macs(model, tuple(test.shape[1:])) / 1e9,
           "clip": list(test.shape[1:]), "test_clips": len(test)}
    for name, network in networks.items():
        entry = {"agreement": agreement(model, network, test)}
        for batch in (1, 8):
            clips = to_model_layout(network, test[:batch])
            with torch.inference_mode():
                seconds = time_call(lambda: network(clips), warmup=2, repeat=7)  # noqa: B023
            entry[f"ms_per_clip_b{batch}"] = seconds * 1000 / batch
        row[name] = entry
    eager = row["fp32_eager"]
    for name in networks:
        for batch in (1, 8):
            key = f"ms_per_clip_b{batch}"
            row[name][f"speedup_b{batch}"] = eager[key] / row[name][key]
    return row


def ucf101_precision(args) -> None:
    """A trained MARS checkpoint on the real UCF101 subset (split 1): agreement on the
    first test video of each class, int8 calibrated on 8 training videos; at the trained
    clip size and with the clips enlarged to 112 px."""
    import os

    import torch

    from mars_action.inference.recognizer import Recognizer
    from mars_action.models import load_checkpoint

    torch.set_num_threads(1)
    root = args.ucf101
    lists = root / "ucfTrainTestlist"

    def first_of_each_class(name: str) -> list[str]:
        seen, videos = set(), []
        for line in (lists / name).read_text().splitlines():
            path = line.split()[0].replace(".avi", ".mp4")
            if path.split("/")[0] not in seen:
                seen.add(path.split("/")[0])
                videos.append(str(root / path))
        return videos

    model, meta = load_checkpoint(args.checkpoint)
    recognizer = Recognizer(model, meta, optimize=False)
    test = recognizer.clips_of(first_of_each_class("testlist01.txt"))
    calibration = recognizer.clips_of(first_of_each_class("trainlist01.txt")[:8], per_video=4)
    figures = {"checkpoint": str(args.checkpoint), "arch": meta.arch, "stream": meta.stream,
               "test_videos": "first test video of each class, split 1",
               "trained": precision_table(model, test, calibration),
               "at_112": precision_table(model, test, calibration, side=112),
               "load_average": os.getloadavg()}
    rows = [(label, name, figures[label][name]) for label in ("trained", "at_112")
            for name in ("fp32", "bf16", "int8") if name in figures[label]]
    summary = "; ".join(f"{label} {name}: x{row['speedup_b1']:.2f}/x{row['speedup_b8']:.2f} "
                        f"(b1/b8), agreement {row['agreement']:.1%}" for label, name, row in rows)
    write_result("precision_ucf101", figures, summary=f"{meta.arch} MARS, UCF101: {summary}")


def stream_fps(checkpoint: Path, work: Path) -> dict:
    """``mars stream`` on 640x480 25 fps files, one thread on one core: frames in per s.

    Two files (30 s and 2 s); the difference of their frames over the difference of their
    wall times leaves out the process start and the model load.
    """
    runs = [_stream_run(checkpoint, work, seconds) for seconds in (30.0, 2.0)]
    if any("failed" in run for run in runs):
        return {"failed": [run.get("failed") for run in runs]}
    (long, short) = runs
    rate = (long["frames"] - short["frames"]) / (long["wall_s"] - short["wall_s"])
    return {"frames_per_s": rate, "video": "640x480, 25 fps", "runs": runs,
            "window_latency_ms_median": long["window_latency_ms_median"]}


def _stream_run(checkpoint: Path, work: Path, seconds: float) -> dict:
    import os
    import re
    import subprocess
    import sys

    from mars_action.data.synthetic import render_video, spec_with_classes
    from mars_action.video.writer import write_video

    video = work / f"camera_640x480_{seconds:g}s.mp4"
    if not video.is_file():
        spec = spec_with_classes(1, videos_per_class=1, height=480, width=640,
                                 num_frames=int(25 * seconds))
        write_video(video, render_video(spec, 0, 0), fps=25.0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = ["taskset", "-c", "0", sys.executable, "-m", "mars_action.cli", "stream",
               str(video), "--checkpoint", str(checkpoint), "--device", "cpu"]
    tic = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - tic
    frames = re.search(r"(\d+) frames, (\d+) windows", done.stderr)
    latencies = sorted(float(m) for m in re.findall(r"(\d+) ms", done.stdout))
    if done.returncode or frames is None:
        return {"failed": done.stderr.strip().splitlines()[-1:]}
    return {"frames": int(frames.group(1)), "windows": int(frames.group(2)),
            "wall_s": round(wall, 2),
            "window_latency_ms_median": latencies[len(latencies) // 2] if latencies else None}
