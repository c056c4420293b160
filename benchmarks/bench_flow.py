"""Flow speed (pairs/s at 256x340) per method, worker scaling, and torch/OpenCV TV-L1 parity.

Frames are real UCF101 frames (the subset in ../shared/data, decoded as the frame store
has them: 25 fps, short side 256, cropped to 340 wide); without the subset, synthetic
textured pairs. CPU figures use one thread per worker ("one core"); ``tvl1`` over a
process pool gives the all-cores figure and the 1 -> 2 worker scaling. ``tvl1-torch``
on CUDA is measured only when a GPU is present (the card is recorded).

    .venv/bin/python benchmarks/bench_flow.py [--videos 4] [--pairs 3] [--parity-videos 6]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from harness import process_scaling_controls, write_result

from mars_action.flow.check import real_agreement
from mars_action.flow.methods import compute_flow
from mars_action.flow.mpeg import iter_mpeg_flow
from mars_action.flow.synthetic import synthetic_pair
from mars_action.video.decode import decode_video

SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucf101-subset"
SIZE = (256, 340)


def spread_videos(count: int) -> list[Path]:
    """``count`` videos from different classes of the subset (empty without it)."""
    if not SUBSET.is_dir():
        return []
    classes = sorted(p for p in SUBSET.iterdir() if p.is_dir() and p.name[0].isupper())
    step = max(1, len(classes) // max(count, 1))
    return [sorted(c.glob("*.mp4"))[0] for c in classes[::step][:count]]


def load_clips(videos: list[Path], pairs: int) -> list[np.ndarray]:
    """(pairs + 1, 256, 340, 3) uint8 clips from the middle of each video, or synthetic."""
    if not videos:
        return [synthetic_sequence(pairs, seed) for seed in range(4)]
    clips = []
    for path in videos:
        frames = decode_video(path, 25.0, SIZE[0])
        start = max(0, (len(frames) - pairs - 1) // 2)
        clips.append(np.ascontiguousarray(frames[start : start + pairs + 1, :, : SIZE[1]]))
    return clips


def synthetic_sequence(pairs: int, seed: int) -> np.ndarray:
    frames = [
        synthetic_pair("smooth", *SIZE, magnitude=3.0, seed=seed + i)[0][0]
        for i in range(pairs + 1)
    ]
    return np.stack(frames)


def single_core_rate(method: str, clips: list[np.ndarray], **kwargs) -> float:
    """Pairs per second of ``method`` in this process on one thread."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    compute_flow(clips[0][:2], method, **kwargs)  # warm-up (imports, allocations)
    start = time.perf_counter()
    pairs = sum(len(compute_flow(clip, method, **kwargs)) for clip in clips)
    return pairs / (time.perf_counter() - start)


def _worker_flow(clip: np.ndarray) -> int:
    cv2.setNumThreads(1)
    return len(compute_flow(clip, "tvl1"))


def pool_rate(clips: list[np.ndarray], workers: int) -> float:
    """``tvl1`` pairs per second with ``workers`` processes, one clip per task (as mars flow)."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_worker_flow, [clip[:2] for clip in clips[:workers]]))  # start workers
        start = time.perf_counter()
        pairs = sum(pool.map(_worker_flow, clips))
    return pairs / (time.perf_counter() - start)


def mpeg_video_rate(videos: list[Path]) -> float | None:
    """Pairs per second of ``mpeg`` reading a video file's own vectors (decode included)."""
    if not videos:
        return None
    start = time.perf_counter()
    pairs = sum(1 for path in videos for _ in iter_mpeg_flow(path))
    return pairs / (time.perf_counter() - start)


def cuda_figures(clips: list[np.ndarray], batch_size: int) -> dict:
    """``tvl1-torch`` on the GPU: pairs/s and parity with OpenCV on the same clips."""
    from mars_action.flow.opencv import tvl1
    from mars_action.flow.quantize import quantize

    device = "cuda"
    compute_flow(clips[0], "tvl1-torch", device=device, batch_size=batch_size)  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    flows = [compute_flow(c, "tvl1-torch", device=device, batch_size=batch_size) for c in clips]
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    reference = [tvl1(clip) for clip in clips]
    epe = np.concatenate(
        [np.linalg.norm(f - r, axis=-1).ravel() for f, r in zip(flows, reference, strict=True)]
    )
    same = np.mean(
        [(quantize(f) == quantize(r)).mean() for f, r in zip(flows, reference, strict=True)]
    )
    return {
        "card": torch.cuda.get_device_name(0),
        "batch_size": batch_size,
        "pairs_per_s": sum(len(f) for f in flows) / seconds,
        "epe_vs_opencv": float(epe.mean()),
        "identical_codes_vs_opencv": float(same),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4, help="videos for the speed runs")
    parser.add_argument("--pairs", type=int, default=3, help="pairs per video")
    parser.add_argument("--parity-videos", type=int, default=10)
    parser.add_argument("--parity-pairs", type=int, default=2)
    parser.add_argument("--cuda-batch", type=int, default=32)
    args = parser.parse_args()

    videos = spread_videos(args.videos)
    clips = load_clips(videos, args.pairs)
    cores = os.cpu_count() or 1
    rates = {m: single_core_rate(m, clips) for m in ("tvl1", "farneback", "mpeg")}
    half = clips[: max(1, len(clips) // 2)]
    rates["tvl1-torch"] = single_core_rate("tvl1-torch", half)
    rates["tvl1-torch-compiled"] = single_core_rate("tvl1-torch", clips, compile=True)
    pools = {w: pool_rate(clips, w) for w in sorted({1, 2, cores})}
    figures = {
        "frames": "ucf101-subset" if videos else "synthetic",
        "size": list(clips[0].shape[1:3]),
        "pairs_timed": sum(len(c) - 1 for c in clips),
        "cpu_one_core_pairs_per_s": rates,
        "mpeg_from_video_file_pairs_per_s": mpeg_video_rate(videos),
        "tvl1_pool_pairs_per_s": {str(w): r for w, r in pools.items()},
        "tvl1_scaling_1_to_2_workers": pools[2] / pools[1],
        "machine_scaling_controls": process_scaling_controls(2),
        "load_average_at_end": os.getloadavg()[0],
    }
    parity, _ = real_agreement(
        spread_videos(args.parity_videos), args.parity_pairs, compile=True, device_path=True
    )
    figures["parity_real_frames"] = {**parity["mean"], "videos": len(parity["videos"])}
    figures["parity_per_video"] = parity["videos"]
    if torch.cuda.is_available():
        figures["cuda"] = cuda_figures(clips, args.cuda_batch)
        figures["cuda"]["speedup_vs_opencv_one_core"] = (
            figures["cuda"]["pairs_per_s"] / rates["tvl1"]
        )
    else:
        figures["cuda"] = None  # no GPU on this machine: nothing measured
    mean = parity["mean"]
    summary = (
        f"flow @ {figures['size'][0]}x{figures['size'][1]}, 1 core: tvl1 {rates['tvl1']:.2f}, "
        f"tvl1-torch {rates['tvl1-torch']:.2f} (compiled {rates['tvl1-torch-compiled']:.2f}), "
        f"farneback {rates['farneback']:.1f}, "
        f"mpeg {rates['mpeg']:.1f} pairs/s; tvl1 {cores} workers {pools[cores]:.2f} pairs/s "
        f"(1->2 x{figures['tvl1_scaling_1_to_2_workers']:.2f}; machine controls: compute "
        f"x{figures['machine_scaling_controls']['compute_bound_1_to_2']:.2f}, memory "
        f"x{figures['machine_scaling_controls']['memory_bound_1_to_2']:.2f}); "
        f"parity tvl1-torch vs tvl1 "
        f"EPE {mean['torch_epe']:.4f} px, {100 * mean['torch_identical_codes']:.1f}% codes "
        f"(OpenCV vs itself +-1e-4 gray: {mean['opencv_self_epe']:.4f} px, "
        f"{100 * mean['opencv_self_identical_codes']:.1f}%); GPU arithmetic on the CPU "
        f"EPE {mean['device_path_epe']:.4f} px, {100 * mean['device_path_identical_codes']:.1f}% "
        f"codes; "
        + (f"CUDA {figures['cuda']['pairs_per_s']:.1f} pairs/s" if figures["cuda"] else "no GPU")
    )
    write_result("flow", figures, summary)


if __name__ == "__main__":
    sys.exit(main())
