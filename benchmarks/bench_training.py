"""Training step speed and peak memory: RGB vs MARS, the engine vs a plain fp32 eager loop.

Models: ResNeXt-101 on 16x112x112 clips (the paper's) and the demo model
(resnet10_tiny, 16x64x64). Modes:

- ``plain_fp32``: the textbook loop (forward, cross-entropy, backward, SGD step).
- ``rgb``: our engine, RGB stream (autocast bf16/fp16 on CUDA, fp32 on the CPU).
- ``mars``: our engine, MARS: the same plus the frozen Flow teacher's forward
  under ``no_grad`` and the feature MSE.
- ``rgb_fp32`` (CUDA only): the engine with mixed precision off.

Every (model, mode) runs in its own process, so each peak memory is its own: the
CPU figure is the process's peak RSS (and its growth from just before the first
step); the CUDA figure is ``torch.cuda.max_memory_allocated``.

    python benchmarks/bench_training.py [--steps 3] [--big-batch 2] [--demo-batch 16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch
from harness import time_call, write_result

from mars_action.models import build_model
from mars_action.training import load_experiment, plan_phases
from mars_action.training.build import build_engine
from mars_action.training.distributed import Process
from mars_action.training.engine import train_one_epoch
from mars_action.training.losses import freeze

MODELS = {  # name: (arch, (T, H, W), classes)
    "resnext101": ("resnext101", (16, 112, 112), 400),
    "demo": ("resnet10_tiny", (16, 64, 64), 8),
}


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def make_batch(arch_clip, classes: int, batch: int) -> dict:
    t, h, w = arch_clip
    generator = torch.Generator().manual_seed(0)
    return {
        "rgb": torch.randn(batch, 3, t, h, w, generator=generator),  # (B, 3, T, H, W)
        "flow": torch.randn(batch, 2, t, h, w, generator=generator),  # (B, 2, T, H, W)
        "label": torch.randint(0, classes, (batch,), generator=generator),
    }


def plain_step(model, batch: dict, device: torch.device):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def step() -> None:
        logits = model(batch["rgb"].to(device))
        torch.nn.functional.cross_entropy(logits, batch["label"].to(device)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def engine_step(model, arch: str, classes: int, mode: str, batch: dict, device: torch.device):
    stream = "mars" if mode == "mars" else "rgb"
    amp = "off" if mode == "rgb_fp32" else "auto"
    overrides = [
        f"stream={stream}",
        f"model.arch={arch}",
        "distill.teacher=unused.pt",
        "optim.lr=0.001",
        f"train.amp={amp}",
    ]
    config = load_experiment(None, overrides)
    teacher = None
    if stream == "mars":
        teacher = freeze(build_model(arch, in_channels=2, num_classes=classes).to(device))
    engine, _, _ = build_engine(
        plan_phases(config)[0], model, teacher, config, Process(0, 1, device)
    )
    model.train()
    return lambda: train_one_epoch(engine, [batch], epoch=0)


def run_case(name: str, mode: str, steps: int, batch_size: int) -> dict:
    """One (model, mode) in this process: seconds per step, clips/s, peak memory."""
    arch, clip, classes = MODELS[name]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = build_model(arch, num_classes=classes).to(device)
    batch = make_batch(clip, classes, batch_size)
    if mode == "plain_fp32":
        step = plain_step(model, batch, device)
    else:
        step = engine_step(model, arch, classes, mode, batch, device)
    before = rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = time_call(step, warmup=2, repeat=steps)  # oneDNN tunes on early steps
    figures = {
        "s_per_step": round(seconds, 4),
        "clips_per_s": round(batch_size / seconds, 2),
        "batch": batch_size,
        "device": device.type,
    }
    if device.type == "cuda":
        figures["peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures.update(peak_rss_mb=round(peak, 1), peak_growth_mb=round(peak - before, 1))
    return figures


def run_child(name: str, mode: str, steps: int, batch_size: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        f"{name}:{mode}",
        "--steps",
        str(steps),
        "--batch",
        str(batch_size),
    ]
    print(f"  {name} {mode} (batch {batch_size}) ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratios(results: dict, memory_key: str) -> dict:
    out = {}
    for name, modes in results.items():
        rgb, mars, plain = modes["rgb"], modes["mars"], modes["plain_fp32"]
        out[name] = {
            "mars_vs_rgb_step_time": round(mars["s_per_step"] / rgb["s_per_step"], 3),
            "mars_vs_rgb_peak_memory": round(mars[memory_key] / rgb[memory_key], 3),
            "engine_rgb_speedup_vs_plain_fp32": round(plain["s_per_step"] / rgb["s_per_step"], 3),
        }
        if "rgb_fp32" in modes:
            amp = modes["rgb_fp32"]["s_per_step"] / rgb["s_per_step"]
            out[name]["amp_speedup_vs_engine_fp32"] = round(amp, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case (median)")
    parser.add_argument("--big-batch", type=int, default=2, help="ResNeXt-101 clips per step")
    parser.add_argument("--demo-batch", type=int, default=16, help="demo model clips per step")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, mode = args.child.split(":")
        print(json.dumps(run_case(name, mode, args.steps, args.batch)))
        return
    cuda = torch.cuda.is_available()
    modes = ("plain_fp32", "rgb", "mars") + (("rgb_fp32",) if cuda else ())
    batches = {"resnext101": args.big_batch, "demo": args.demo_batch}
    results = {n: {m: run_child(n, m, args.steps, batches[n]) for m in modes} for n in MODELS}
    memory_key = "peak_mb" if cuda else "peak_rss_mb"
    figures = {
        "cases": results,
        "ratios": ratios(results, memory_key),
        "steps": args.steps,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
    }
    big = figures["ratios"]["resnext101"]
    summary = (
        f"training ({'cuda' if cuda else 'cpu'}): ResNeXt-101 16x112x112 batch {args.big_batch}: "
        f"rgb {results['resnext101']['rgb']['clips_per_s']} clips/s, "
        f"mars {results['resnext101']['mars']['clips_per_s']} clips/s "
        f"(x{big['mars_vs_rgb_step_time']} time, x{big['mars_vs_rgb_peak_memory']} memory); "
        f"demo rgb {results['demo']['rgb']['clips_per_s']} clips/s"
    )
    write_result("training", figures, summary)


if __name__ == "__main__":
    main()
