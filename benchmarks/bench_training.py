"""Training step speed and peak memory: RGB vs MARS, the engine vs a plain fp32 eager loop.

Models: ResNeXt-101 on 16x112x112 clips (the paper's) and the demo model
(resnet10_tiny, 16x64x64). Modes:

- ``plain_fp32``: the textbook loop (forward, cross-entropy, backward, SGD step).
- ``rgb``: our engine, RGB stream (autocast bf16/fp16 on CUDA, fp32 on the CPU).
- ``mars``: our engine, MARS: the same plus the frozen Flow teacher's forward
  under ``no_grad`` and the feature MSE.
- ``rgb_fp32`` (CUDA only): the engine with mixed precision off.

Step times come from one process per model that times the modes in interleaved
rounds (median), so the load of other processes hits every mode alike. Peak memory
comes from one process per (model, mode), so each peak is its own: on the CPU the
process's peak RSS (and its growth from just before the first step), on CUDA
``torch.cuda.max_memory_allocated``.

    python benchmarks/bench_training.py [--steps 3] [--demo-steps 12] [--big-batch 2]
        [--demo-batch 16]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from harness import time_call, write_result

from mars_action.models import build_model
from mars_action.training import load_experiment, plan_phases
from mars_action.training.build import build_engine
from mars_action.training.distill import freeze
from mars_action.training.distributed import Process
from mars_action.training.engine import train_one_epoch

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


def make_step(name: str, mode: str, batch_size: int, device: torch.device):
    """A fresh model (same seed for every mode) and the function doing one step of ``mode``."""
    arch, clip, classes = MODELS[name]
    torch.manual_seed(0)
    model = build_model(arch, num_classes=classes).to(device)
    batch = make_batch(clip, classes, batch_size)
    if mode == "plain_fp32":
        return plain_step(model, batch, device)
    return engine_step(model, arch, classes, mode, batch, device)


def time_modes(name: str, modes: list[str], steps: int, batch_size: int) -> dict:
    """Median seconds per step of each mode, timed in interleaved rounds.

    Interleaving spreads the load of other processes evenly over the modes, which
    matters on a shared machine more than the few steps' own noise.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    step_fns = {mode: make_step(name, mode, batch_size, device) for mode in modes}
    for fn in step_fns.values():
        time_call(fn, warmup=2, repeat=1)  # oneDNN / cuDNN pick their kernels on early steps
    rounds = {mode: [] for mode in modes}
    for index in range(steps):
        for mode in modes[index % len(modes) :] + modes[: index % len(modes)]:  # rotate the order
            rounds[mode].append(time_call(step_fns[mode], warmup=0, repeat=1))
    return {mode: statistics.median(times) for mode, times in rounds.items()}


def peak_memory(name: str, mode: str, batch_size: int) -> dict:
    """Peak memory of two steps of one mode, alone in this process."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    step = make_step(name, mode, batch_size, device)
    before = rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    time_call(step, warmup=1, repeat=1)
    if device.type == "cuda":
        return {"peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_rss_mb": round(peak, 1), "peak_growth_mb": round(peak - before, 1)}


def child(*args: str) -> dict:
    """Run ``bench_training.py --child ARGS`` and return the JSON it prints."""
    print(f"  {' '.join(args)} ...", file=sys.stderr, flush=True)
    command = [sys.executable, __file__, "--child", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, modes: list[str], steps: int, batch_size: int) -> dict:
    seconds = child("time", name, ",".join(modes), str(steps), str(batch_size))
    cases = {}
    for mode in modes:
        memory = child("memory", name, mode, "0", str(batch_size))
        cases[mode] = {
            "s_per_step": round(seconds[mode], 4),
            "clips_per_s": round(batch_size / seconds[mode], 2),
            "batch": batch_size,
            **memory,
        }
    return cases


def ratios(cases: dict, memory_key: str) -> dict:
    rgb, mars, plain = cases["rgb"], cases["mars"], cases["plain_fp32"]
    out = {
        "mars_vs_rgb_step_time": round(mars["s_per_step"] / rgb["s_per_step"], 3),
        "mars_vs_rgb_peak_memory": round(mars[memory_key] / rgb[memory_key], 3),
        "engine_rgb_speedup_vs_plain_fp32": round(plain["s_per_step"] / rgb["s_per_step"], 3),
    }
    if "rgb_fp32" in cases:
        amp = cases["rgb_fp32"]["s_per_step"] / rgb["s_per_step"]
        out["amp_speedup_vs_engine_fp32"] = round(amp, 3)
    return out


def run_child(args: list[str]) -> None:
    kind, name, modes, steps, batch_size = args
    if kind == "time":
        result = time_modes(name, modes.split(","), int(steps), int(batch_size))
    else:
        result = peak_memory(name, modes, int(batch_size))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="ResNeXt-101 timed rounds (median)")
    parser.add_argument("--demo-steps", type=int, default=12, help="demo model timed rounds")
    parser.add_argument("--big-batch", type=int, default=2, help="ResNeXt-101 clips per step")
    parser.add_argument("--demo-batch", type=int, default=16, help="demo model clips per step")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child)
        return
    cuda = torch.cuda.is_available()
    modes = ["plain_fp32", "rgb", "mars"] + (["rgb_fp32"] if cuda else [])
    batches = {"resnext101": args.big_batch, "demo": args.demo_batch}
    steps = {"resnext101": args.steps, "demo": args.demo_steps}
    results = {name: measure(name, modes, steps[name], batches[name]) for name in MODELS}
    memory_key = "peak_mb" if cuda else "peak_rss_mb"
    figures = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu (no CUDA here)",
        "cases": results,
        "ratios": {name: ratios(cases, memory_key) for name, cases in results.items()},
        "timed_rounds": steps,
    }
    big, demo = results["resnext101"], results["demo"]
    ratio = figures["ratios"]["resnext101"]
    summary = (
        f"training ({'cuda' if cuda else 'cpu'}): ResNeXt-101 16x112x112 batch {args.big_batch}: "
        f"rgb {big['rgb']['clips_per_s']} clips/s, mars {big['mars']['clips_per_s']} clips/s "
        f"(x{ratio['mars_vs_rgb_step_time']} time, x{ratio['mars_vs_rgb_peak_memory']} memory), "
        f"plain fp32 {big['plain_fp32']['clips_per_s']} clips/s; demo model rgb "
        f"{demo['rgb']['clips_per_s']}, mars {demo['mars']['clips_per_s']} clips/s"
    )
    write_result("training", figures, summary)


if __name__ == "__main__":
    main()
