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
import sys
import time
from collections.abc import Callable
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
