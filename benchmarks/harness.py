"""What every benchmark shares: timing, machine facts, one JSON result, one summary line.

Usage inside ``benchmarks/bench_x.py``::

    from harness import time_call, write_result
    seconds = time_call(fn, warmup=1, repeat=5)
    write_result("x", {"clips_per_s": ...}, summary="x: 12.3 clips/s")
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """CPU, cores, accelerator and library versions, recorded with every number."""
    import numpy
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    for name in ("cv2", "av", "onnxruntime"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def time_call(fn: Callable[[], Any], warmup: int = 1, repeat: int = 5) -> float:
    """Median wall seconds of ``fn()`` after ``warmup`` untimed calls (CUDA synchronised)."""
    import torch

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_result(name: str, figures: dict[str, Any], summary: str) -> Path:
    """Write ``results/<name>.json`` with the figures and the machine, print the summary."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "figures": figures,
        "summary": summary,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(summary)
    return path


def _stream_through(megabytes: int) -> int:
    """A memory-bound task: sweep a ``megabytes`` buffer many times (beyond the L2 cache)."""
    import numpy as np

    data = np.ones(megabytes * 2**18, dtype=np.float32)
    for _ in range(100):
        data *= 1.0001
    return data.size


def _compute_only(_: int) -> int:
    """A compute-bound task: arithmetic on a buffer that stays in the L1 cache."""
    import numpy as np

    data = np.ones(4096, dtype=np.float32)
    for _ in range(100_000):
        data *= 1.0001
    return data.size


def process_scaling_controls(workers: int = 2, tasks: int = 8) -> dict[str, float]:
    """What ``workers`` processes can gain over one on this machine, before any real work.

    Speed-up of a compute-bound and of a memory-bound task (same pool as the
    benchmarks use). A worker-scaling figure only means something next to these: on
    a VM whose cores share a narrow memory path, memory-heavy work (TV-L1 on full
    frames) cannot scale like arithmetic does.
    """
    from concurrent.futures import ProcessPoolExecutor

    def rate(task: Callable[[int], int], argument: int, count: int) -> float:
        with ProcessPoolExecutor(max_workers=count) as pool:
            list(pool.map(task, [1] * count))  # start the workers
            start = time.perf_counter()
            list(pool.map(task, [argument] * tasks))
        return tasks / (time.perf_counter() - start)

    compute = rate(_compute_only, 0, workers) / rate(_compute_only, 0, 1)
    memory = rate(_stream_through, 64, workers) / rate(_stream_through, 64, 1)
    return {f"compute_bound_1_to_{workers}": compute, f"memory_bound_1_to_{workers}": memory}


BUSY_LOOP = "import time\nend = time.time() + {limit}\nwhile time.time() < end:\n    pass\n"


@contextmanager
def busy_processes(count: int, limit_s: float = 900.0):
    """``count`` CPU-bound processes (a busy loop each) beside the block: another user's
    work on a shared machine. Each ends by itself after ``limit_s``; all are killed when
    the block ends."""
    code = BUSY_LOOP.format(limit=limit_s)
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def timed_command(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``argv`` (output discarded unless it fails); wall seconds and the load averages."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return {"wall_s": round(seconds, 2), "load_1min_before": round(load_before, 2),
            "load_1min_after": round(os.getloadavg()[0], 2)}


def quiet_and_busy(make_argv: Callable[[str], list[str]], busy: int, env=None) -> dict:
    """The command quiet, then beside 1..``busy`` busy processes; ``make_argv(tag)`` gives
    a command line that writes where ``tag`` says (a fresh place per run)."""
    runs = {"quiet": timed_command(make_argv("quiet"), env)}
    for count in range(1, busy + 1):
        with busy_processes(count):
            time.sleep(1.0)  # the busy loops are running before the command starts
            runs[f"busy_{count}"] = timed_command(make_argv(f"busy{count}"), env)
    quiet = runs["quiet"]["wall_s"]
    ratios = {name: round(run["wall_s"] / quiet, 2)
              for name, run in runs.items() if name != "quiet"}
    return {"runs": runs, "ratio_to_quiet": ratios}


def together(argvs: list[list[str]], env=None) -> dict[str, Any]:
    """Start the commands at once; each one's wall seconds (two users' runs side by side)."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for argv in argvs]
    walls: list[float | None] = [None] * len(procs)
    while None in walls:
        for index, proc in enumerate(procs):
            if walls[index] is None and proc.poll() is not None:
                walls[index] = round(time.perf_counter() - start, 2)
        time.sleep(0.1)
    failed = [" ".join(p.args) for p in procs if p.returncode != 0]
    if failed:
        raise SystemExit(f"run together, failed: {failed}")
    return {"wall_s": walls, "load_1min_before": round(load_before, 2),
            "load_1min_after": round(os.getloadavg()[0], 2)}
