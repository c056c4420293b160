"""``mars flow-check``: how good is each flow method, and does the torch TV-L1 match OpenCV?

1. Synthetic ground truth (:mod:`mars_action.flow.synthetic`): end-point error of every
   method, overall, interior and binned by speed.
2. Real frames: ``tvl1-torch`` against OpenCV ``tvl1`` (mean EPE, % identical 8-bit
   codes), next to OpenCV against itself on input changed by ~1e-4 gray levels
   (Gaussian noise): TV-L1 amplifies tiny differences (also without early stopping), so
   that is the agreement any implementation that is not bit-identical can expect (the
   torch solver on a GPU); on the CPU ``tvl1-torch`` is bit-identical almost everywhere.
3. A Middlebury colour-coded PNG of the true and estimated fields.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mars_action.flow import opencv
from mars_action.flow.methods import compute_flow
from mars_action.flow.quantize import quantize
from mars_action.flow.synthetic import FIELDS, endpoint_error, epe_summary, synthetic_pair
from mars_action.flow.torch_ops import device_path_on_cpu
from mars_action.flow.visualize import save_flow_figure
from mars_action.video.decode import decode_video

SELF_NOISE = 1e-4  # gray levels: the input change for OpenCV's self-agreement


def synthetic_check(
    methods: Sequence[str],
    size: tuple[int, int] = (256, 340),
    magnitude: float = 3.0,
    seed: int = 0,
    device: str = "cpu",
    compile: bool = False,
) -> tuple[dict, list]:
    """EPE of each method on each synthetic field; also the figure rows."""
    results, rows = {}, []
    for kind in FIELDS:
        frames, truth = synthetic_pair(kind, *size, magnitude=magnitude, seed=seed)
        panels = [("I1", frames[1, ..., 0]), ("truth", truth)]
        results[kind] = {}
        for method in methods:
            start = time.perf_counter()
            flow = compute_flow(frames, method, device=device, compile=compile)[0]
            seconds = time.perf_counter() - start
            results[kind][method] = {**epe_summary(flow, truth), "seconds": round(seconds, 3)}
            panels.append((method, flow))
        rows.append((kind, panels))
    return results, rows


def real_agreement(
    videos: Sequence[Path],
    pairs: int = 2,
    device: str = "cpu",
    preset: str = "opencv-cpu",
    short_side: int = 256,
    compile: bool = False,
    device_path: bool = False,
) -> tuple[dict, list]:
    """``tvl1-torch`` vs OpenCV ``tvl1`` on ``pairs`` frame pairs from the middle of each video.

    Frames are decoded as the frame store has them (25 fps, ``short_side``).
    ``device_path``: also ``tvl1-torch`` with the torch operations a GPU runs (instead
    of OpenCV's resize, remap and median), on the CPU: GPU parity without a GPU.
    """
    rng = np.random.default_rng(0)
    per_video, rows = [], []
    for path in videos:
        frames = _middle_frames(path, pairs + 1, short_side)
        reference = opencv.tvl1(frames)
        torch_flow = compute_flow(
            frames, "tvl1-torch", device=device, preset=preset, compile=compile
        )
        gray = opencv.to_gray(frames).astype(np.float32)
        noisy = gray + rng.normal(0.0, SELF_NOISE, gray.shape).astype(np.float32)
        solver = opencv.tvl1_instance(gray.shape[1:3])
        self_flow = np.stack(
            [solver.calc(noisy[i] / 255, gray[i + 1] / 255, None) for i in range(pairs)]
        )
        entry = {
            "video": str(path),
            "size": list(frames.shape[1:3]),
            **_agreement(torch_flow, reference, "torch"),
            **_agreement(self_flow, reference, "opencv_self"),
        }
        if device_path:
            with device_path_on_cpu():
                gpu_style = compute_flow(frames, "tvl1-torch", preset=preset)
            entry.update(_agreement(gpu_style, reference, "device_path"))
        per_video.append(entry)
        rows.append(
            (
                Path(path).stem[:24],
                [("I0", frames[0]), ("tvl1", reference[0]), ("tvl1-torch", torch_flow[0])],
            )
        )
    keys = [key for key in per_video[0] if key not in ("video", "size")] if per_video else []
    mean = {key: float(np.mean([entry[key] for entry in per_video])) for key in keys}
    return {"videos": per_video, "mean": mean, "pairs_per_video": pairs, "preset": preset}, rows


def _agreement(flow: np.ndarray, reference: np.ndarray, name: str) -> dict[str, float]:
    error = endpoint_error(flow, reference)
    return {
        f"{name}_epe": float(error.mean()),
        f"{name}_epe_max": float(error.max()),
        f"{name}_identical_codes": float((quantize(flow) == quantize(reference)).mean()),
    }


def _middle_frames(path: Path, count: int, short_side: int) -> np.ndarray:
    frames = decode_video(path, 25.0, short_side)  # (T, H, W, 3)
    start = max(0, (len(frames) - count) // 2)
    return frames[start : start + count]


def run_flow_check(
    methods: Sequence[str],
    out_dir: str | Path,
    *,
    size: tuple[int, int] = (256, 340),
    real_videos: Sequence[Path] = (),
    real_pairs: int = 2,
    real_short_side: int = 256,
    device: str = "cpu",
    seed: int = 0,
    compile: bool = False,
    device_path: bool = False,
) -> dict:
    """Run the checks, write ``flow-check.json`` and ``flow-check.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    synthetic, rows = synthetic_check(methods, size, seed=seed, device=device, compile=compile)
    report: dict = {"size": list(size), "methods": list(methods), "synthetic": synthetic}
    if real_videos:
        report["real"], real_rows = real_agreement(
            real_videos, real_pairs, device, short_side=real_short_side, compile=compile,
            device_path=device_path,
        )
        rows += real_rows
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "flow-check.json").write_text(json.dumps(report, indent=2) + "\n")
    save_flow_figure(out_dir / "flow-check.png", rows)
    return report


def format_report(report: dict) -> str:
    """The synthetic EPE table, then the real-frame agreement, as text."""
    lines = [f"{'field':<12} {'method':<11} {'EPE':>7} {'interior':>9} {'seconds':>8}"]
    for kind, by_method in report["synthetic"].items():
        for method, figures in by_method.items():
            lines.append(
                f"{kind:<12} {method:<11} {figures['epe']:>7.3f} "
                f"{figures['epe_interior']:>9.3f} {figures['seconds']:>8.2f}"
            )
    real = report.get("real")
    if real:
        mean = real["mean"]
        lines.append(
            f"real frames ({len(real['videos'])} videos x {real['pairs_per_video']} pairs): "
            f"tvl1-torch vs tvl1 EPE {mean['torch_epe']:.4f} px, "
            f"{100 * mean['torch_identical_codes']:.2f}% identical codes; "
            f"OpenCV vs itself (input +-{SELF_NOISE:g}) EPE {mean['opencv_self_epe']:.4f} px, "
            f"{100 * mean['opencv_self_identical_codes']:.2f}%"
        )
        if "device_path_epe" in mean:
            lines.append(
                f"tvl1-torch with the GPU's operations, on the CPU: EPE "
                f"{mean['device_path_epe']:.4f} px, "
                f"{100 * mean['device_path_identical_codes']:.2f}% identical codes"
            )
    return "\n".join(lines)
