"""Per-video latency of the paper's streams, and what flow-free inference buys.

For one UCF101-subset video and one synthetic 10 s video: wall time per video split
into decode (25 fps, short side 256, centre crop), flow (OpenCV TV-L1, the paper's
flow) and network (ResNeXt-101, 16x112x112 clips, every non-overlapping clip) for
RGB, MARS, Flow, RGB+Flow and MARS+RGB. Weights are random: timing does not depend
on them. Network time per video = measured time per clip x clips of the video (the
network's cost depends only on the input size). TV-L1 takes ~1 s per pair on one
core, so it is timed on ``--flow-pairs`` evenly spaced pairs and extrapolated to
all pairs of the video (the JSON says so). Also: ``Recognizer.predict`` (what
``mars predict`` runs) end to end against the network alone on the 10 s video, and
the network's clips/s with the inference rewrites and ONNX Runtime against plain
eager, with the max output difference.

Targets (issue 8): MARS >= 50x faster than RGB+TV-L1 per video on the CPU (the
paper: ~100x on a GPU); predict end to end within 1.2x of the network time.

    python benchmarks/bench_latency.py [--flow-pairs 6] [--batch 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from bench_model_forward import _with_trained_statistics
from harness import time_call, write_result

from mars_action.flow import compute_flow
from mars_action.inference import Recognizer
from mars_action.inference.export import export_model, load_exported, random_clips
from mars_action.inference.recognizer import resolve_device
from mars_action.models import CheckpointMeta, build_model
from mars_action.models.optimize import optimize_for_inference, to_model_layout
from mars_action.video.decode import iter_frames
from mars_action.video.writer import write_video

REPO = Path(__file__).resolve().parents[1]
UCF = Path(os.environ.get("MARS_UCF101_SUBSET", REPO.parent / "shared/data/ucf101-subset"))
UCF_VIDEO = "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.mp4"
ARCH, CLIP_LEN, CROP, SHORT_SIDE, FPS = "resnext101", 16, 112, 256, 25.0


def synthetic_video(path: Path, seconds: float = 10.0, seed: int = 0) -> Path:
    """A 320x240 textured scene panning 2 px per frame with a square moving across it."""
    rng = np.random.default_rng(seed)
    frames_n = int(seconds * FPS)
    noise = rng.integers(0, 255, (240, 320 + 2 * frames_n, 3), dtype=np.uint8)
    scene = cv2.GaussianBlur(noise, (0, 0), 2)
    patch = rng.integers(100, 255, (60, 60, 3), dtype=np.uint8)
    frames = []
    for t in range(frames_n):
        frame = scene[:, 2 * t : 2 * t + 320].copy()
        x = (20 + 3 * t) % 240
        frame[90:150, x : x + 60] = patch
        frames.append(frame)
    return write_video(path, frames, fps=FPS)


def timed_decode(recognizer: Recognizer, path: Path) -> tuple[float, np.ndarray, np.ndarray]:
    """Seconds to decode + crop a video; its full frames (for flow) and its crops."""
    start = time.perf_counter()
    full = [frame for _, frame in iter_frames(path, fps=FPS, short_side=SHORT_SIDE)]
    crops = np.stack([recognizer.preprocessing.crop_frame(frame) for frame in full])
    return time.perf_counter() - start, np.stack(full), crops


def timed_flow(frames: np.ndarray, pairs: int) -> dict:
    """TV-L1 seconds per pair on ``pairs`` evenly spaced pairs, extrapolated to the video."""
    starts = np.linspace(0, len(frames) - 2, pairs).round().astype(int)
    seconds = []
    for s in starts:
        begin = time.perf_counter()
        compute_flow(frames[s : s + 2], method="tvl1")
        seconds.append(time.perf_counter() - begin)
    per_pair = float(np.mean(seconds))
    return {
        "pairs_in_video": len(frames) - 1,
        "pairs_timed": int(pairs),
        "per_pair_s": per_pair,
        "per_pair_s_samples": seconds,
        "extrapolated": True,
        "flow_s": per_pair * (len(frames) - 1),
    }


def per_clip_seconds(model: torch.nn.Module, meta: CheckpointMeta, batch: int, repeat: int):
    """Seconds per clip of an optimised model (the path ``Recognizer`` runs)."""
    device = next(model.parameters()).device
    clips = to_model_layout(model, random_clips(meta, batch).to(device))
    with torch.inference_mode():
        return time_call(lambda: model(clips), warmup=1, repeat=repeat) / batch


def stream_rows(decode_s: float, flow_s: float, rgb_s: float, flow_net_s: float) -> dict:
    """Wall time of each stream per video: decode + flow + network(s)."""
    parts = {
        "RGB": (0.0, rgb_s),
        "MARS": (0.0, rgb_s),  # one RGB-input ResNeXt-101, same cost as RGB
        "Flow": (flow_s, flow_net_s),
        "RGB+Flow": (flow_s, rgb_s + flow_net_s),
        "MARS+RGB": (0.0, 2 * rgb_s),
    }
    return {
        name: {"decode_s": decode_s, "flow_s": f, "network_s": n, "total_s": decode_s + f + n}
        for name, (f, n) in parts.items()
    }


def video_latency(recognizer, path: Path, per_clip: dict, pairs: int) -> dict:
    decode_s, full, crops = timed_decode(recognizer, path)
    clips = len(crops) // CLIP_LEN
    flow = timed_flow(full, pairs)
    flow_clips = (len(full) - 1) // CLIP_LEN
    rows = stream_rows(
        decode_s, flow["flow_s"], clips * per_clip["rgb"], flow_clips * per_clip["flow"]
    )
    return {
        "video": str(path),
        "frames": len(full),
        "duration_s": len(full) / FPS,
        "clips": clips,
        "flow": flow,
        "streams": rows,
        "mars_speedup_vs_rgb_tvl1": rows["RGB+Flow"]["total_s"] / rows["MARS"]["total_s"],
    }


def predict_vs_network(recognizer: Recognizer, path: Path, batch: int) -> dict:
    """``Recognizer.predict`` end to end (decode overlapped) vs the network on its clips."""
    _, _, crops = timed_decode(recognizer, path)
    clips = crops[: len(crops) // CLIP_LEN * CLIP_LEN].reshape(-1, CLIP_LEN, CROP, CROP, 3)
    recognizer.score_clips(clips[:batch])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(clips), batch):
        recognizer.score_clips(clips[i : i + batch])
    network_s = time.perf_counter() - start
    start = time.perf_counter()
    prediction = recognizer.predict(path, batch_size=batch)
    end_to_end_s = time.perf_counter() - start
    return {
        "video_s": prediction.duration,
        "clips": len(prediction.clips),
        "batch": batch,
        "network_only_s": network_s,
        "end_to_end_s": end_to_end_s,
        "ratio": end_to_end_s / network_s,
        "target_ratio": 1.2,
        "met": end_to_end_s / network_s <= 1.2,
    }


def network_variants(model, meta: CheckpointMeta, batch: int, repeat: int, onnx: bool) -> dict:
    """clips/s: plain eager vs BN folded (+ channels_last_3d, inference_mode) vs ORT."""
    clips = random_clips(meta, batch)
    folded = optimize_for_inference(model, channels_last=False)
    fast = optimize_for_inference(model, channels_last=True)
    with torch.no_grad():
        reference = model(clips).numpy()
        variants = {
            "eager_no_grad": lambda: model(clips),
            "bn_folded": lambda: folded(clips),
        }
    rows = {}
    for name, fn in variants.items():
        with torch.no_grad():
            seconds = time_call(fn, warmup=1, repeat=repeat)
            rows[name] = _row(batch, seconds, fn().numpy(), reference)
    with torch.inference_mode():
        x = to_model_layout(fast, clips)
        seconds = time_call(lambda: fast(x), warmup=1, repeat=repeat)
        rows["bn_folded_channels_last_3d_inference_mode"] = _row(
            batch, seconds, fast(x).numpy(), reference
        )
    if onnx:
        with tempfile.TemporaryDirectory() as tmp:
            run = load_exported(export_model(model, meta, Path(tmp) / "model.onnx", "onnx"))
            seconds = time_call(lambda: run(clips), warmup=1, repeat=repeat)
            rows["onnxruntime_cpu"] = _row(batch, seconds, run(clips), reference)
    base = rows["eager_no_grad"]["clips_per_s"]
    for row in rows.values():
        row["speedup_vs_eager"] = row["clips_per_s"] / base
    return rows


def _row(batch: int, seconds: float, output: np.ndarray, reference: np.ndarray) -> dict:
    return {
        "clips_per_s": batch / seconds,
        "max_abs_diff_vs_eager": float(np.abs(output - reference).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ucf-video", default=UCF_VIDEO, help="path inside the UCF101 subset")
    parser.add_argument("--flow-pairs", type=int, default=6, help="TV-L1 pairs timed per video")
    parser.add_argument("--batch", type=int, default=2, help="clips per network call")
    parser.add_argument("--repeat", type=int, default=2, help="timed calls per figure")
    parser.add_argument("--device", default="auto", help="network device (TV-L1: CPU)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime row")
    args = parser.parse_args()

    torch.manual_seed(0)
    names = [f"class_{i:03d}" for i in range(101)]
    meta = CheckpointMeta(ARCH, 3, 101, "mars", names, CLIP_LEN, CROP, FPS, SHORT_SIDE)
    flow_meta = CheckpointMeta(ARCH, 2, 101, "flow", names, CLIP_LEN, CROP, FPS, SHORT_SIDE)
    rgb_model = _with_trained_statistics(build_model(ARCH, num_classes=101))
    flow_model = _with_trained_statistics(build_model(ARCH, in_channels=2, num_classes=101))
    recognizer = Recognizer(rgb_model, meta, device=resolve_device(args.device))
    flow_fast = optimize_for_inference(flow_model.to(recognizer.device))
    per_clip = {
        "rgb": per_clip_seconds(recognizer.model, meta, args.batch, args.repeat),
        "flow": per_clip_seconds(flow_fast, flow_meta, args.batch, args.repeat),
    }
    videos = {}
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = synthetic_video(Path(tmp) / "synthetic_10s.mp4")
        sources = {"ucf101": UCF / args.ucf_video, "synthetic_10s": synthetic}
        for name, path in sources.items():
            if path.is_file():
                videos[name] = video_latency(recognizer, path, per_clip, args.flow_pairs)
        end_to_end = predict_vs_network(recognizer, synthetic, args.batch)
    variants = network_variants(rgb_model.cpu(), meta, args.batch, args.repeat, not args.no_onnx)
    figures = {
        "model": f"{ARCH} {CLIP_LEN}x{CROP}x{CROP}, random weights (timing only)",
        "network_device": str(recognizer.device),
        "flow_method": "OpenCV TV-L1 (CPU, defaults) via mars_action.flow.compute_flow",
        "network_s_per_clip": per_clip,
        "network_time_rule": "measured seconds per clip x non-overlapping 16-frame clips",
        "videos": videos,
        "predict_end_to_end": end_to_end,
        "network_variants_cpu": {"batch": args.batch, "rows": variants},
        "target_mars_speedup": 50.0,
    }
    write_result("latency", figures, _summary(figures))


def _summary(figures: dict) -> str:
    speedups = ", ".join(
        f"{name} {v['mars_speedup_vs_rgb_tvl1']:.1f}x "
        f"(MARS {v['streams']['MARS']['total_s']:.1f} s vs RGB+TV-L1 "
        f"{v['streams']['RGB+Flow']['total_s']:.0f} s)"
        for name, v in figures["videos"].items()
    )
    e2e = figures["predict_end_to_end"]
    rows = figures["network_variants_cpu"]["rows"]
    variants = ", ".join(
        f"{name} {r['clips_per_s']:.2f} clips/s (diff {r['max_abs_diff_vs_eager']:.0e})"
        for name, r in rows.items()
    )
    return (
        f"latency ({figures['network_device']}): MARS vs RGB+TV-L1 per video: {speedups} "
        f"[target 50x] | predict end-to-end / network {e2e['ratio']:.2f} on a "
        f"{e2e['video_s']:.0f} s video [target 1.2] | {variants}"
    )


if __name__ == "__main__":
    main()
