"""How many threads a command uses, decided once, before torch or OpenCV is imported.

A laptop is always a busy machine. PyTorch's OpenMP threads spin at every barrier
while they wait (libgomp's default), so a run with one thread per core beside
another busy process burns the cores it waits on: two trainings on two cores took
about 3x the time of one, and the same pair with ``OMP_WAIT_POLICY=passive`` 1.2x.
The policy here, applied by ``mars`` before it imports any stage:

- OpenMP threads wait passively unless the user set ``OMP_WAIT_POLICY``;
- a process computes with the cores that are free now (its CPU affinity, less the
  other processes running), unless the user set ``OMP_NUM_THREADS``;
- a pool of ``workers`` processes gives each its share, never workers x threads > cores.

Importable without torch (``mars --help`` stays fast).
"""

from __future__ import annotations

import math
import os
import time

WAIT_POLICY = "OMP_WAIT_POLICY"
NUM_THREADS = "OMP_NUM_THREADS"
_SAMPLES = 3  # /proc/loadavg reads for the running count (its minimum ignores blips)


def cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and taskset set)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def busy_cores() -> int:
    """Cores other processes keep busy: the larger of the 1-minute load average and the
    number running right now (the load average lags a minute behind a process that
    just started)."""
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        load = 0.0
    return max(math.floor(load), _running_now() - 1)  # -1: this process is running too


def _running_now() -> int:
    """Runnable threads system-wide (``/proc/loadavg``'s 4th field), the fewest of a few
    reads 10 ms apart; 1 (this process) where the file does not exist."""
    counts = []
    for sample in range(_SAMPLES):
        try:
            with open("/proc/loadavg", encoding="ascii") as handle:
                counts.append(int(handle.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return 1
        if sample + 1 < _SAMPLES:
            time.sleep(0.01)
    return min(counts)


def free_cores(total: int | None = None, busy: int | None = None) -> int:
    """Cores free for this command: ``total`` (default: :func:`cores`) less the ``busy``
    ones (default: :func:`busy_cores`), at least one."""
    total = cores() if total is None else total
    busy = busy_cores() if busy is None else busy
    return max(1, min(total, total - busy))


def per_worker(workers: int, free: int | None = None) -> int:
    """Threads for each of ``workers`` processes: their share of the free cores, at least one."""
    free = free_cores() if free is None else free
    return max(1, free // max(1, workers))


def apply(environ: dict | None = None) -> int:
    """Set the policy into ``environ`` (default ``os.environ``) for this process and its
    children; returns the intra-op thread count torch will start with.

    Must run before torch is imported: OpenMP reads these variables once, at start.
    A value the user set is kept.
    """
    environ = os.environ if environ is None else environ
    environ.setdefault(WAIT_POLICY, "PASSIVE")
    if NUM_THREADS not in environ:
        environ[NUM_THREADS] = str(free_cores())
    try:
        return max(1, int(environ[NUM_THREADS]))
    except ValueError:
        return 1
