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
