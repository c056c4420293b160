"""A resumable, shardable batch runner over many items (videos), on a pool of processes.

Used by ``mars frames`` and ``mars flow``: a bad item never stops the batch; it is
recorded with a one-line reason, and the run ends with a summary, a JSON + CSV report,
and an exit code that is non-zero if anything failed.

A job is a picklable callable (a module-level function or a ``functools.partial`` of
one) taking one item and returning an optional dict of figures (e.g. ``{"frames": 50}``)
that goes into the report.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mars_action.errors import MarsError
from mars_action.files import describe_os_error, write_atomic
from mars_action.progress import Progress
from mars_action.video.main_guard import GUARD, unguarded_script

Job = Callable[[Any], "dict[str, Any] | None"]
CRASH_REASON = "worker process died (crash or out of memory)"


class SkipItem(MarsError):
    """Raised by a job: the item needs no work here (done meanwhile, or another run has it).

    The item is reported as ``skipped`` with the message as its reason, not as a failure.
    """


@dataclass
class ItemResult:
    """What happened to one item: ``status`` is ``done``, ``skipped`` or ``failed``."""

    item: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchSummary:
    """All item results of one run (one shard), in input order."""

    desc: str
    shard: tuple[int, int]
    results: list[ItemResult]
    seconds: float
    not_run: int = 0  # items of this shard never started (the run was interrupted)
    report_error: str = ""  # why the report could not be written (e.g. disk full)

    def count(self, status: str) -> int:
        """How many items ended with ``status`` (ok, skipped, failed...)."""
        return sum(result.status == status for result in self.results)

    @property
    def failures(self) -> list[ItemResult]:
        """The failed items, in input order: what the summary lists and the exit code
        reports after the batch has gone on past them."""
        return [result for result in self.results if result.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when every item is done or skipped (and the report written), else 1."""
        return 1 if self.failures or self.not_run or self.report_error else 0

    def format(self, max_failures: int = 20) -> str:
        """Summary lines: the counts, then one line per failure (the first ``max_failures``)."""
        shard = f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard[1] > 1 else ""
        lines = [
            f"{self.desc}{shard}: {self.count('done')} done, {self.count('skipped')} skipped, "
            f"{self.count('failed')} failed in {self.seconds:.1f} s"
            + (f", {self.not_run} not run (interrupted)" if self.not_run else "")
        ]
        lines += [f"  failed: {_named(r)}" for r in self.failures[:max_failures]]
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures} more (see the report)")
        if self.report_error:
            lines.append(f"  report not written: {self.report_error}")
        return "\n".join(lines)


def _named(result: ItemResult) -> str:
    """The reason, prefixed with the item unless the reason already names it."""
    return (
        result.reason
        if result.reason.startswith(result.item)
        else f"{result.item}: {result.reason}"
    )


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/n"`` (0-based ``i``, ``0 <= i < n``) into ``(i, n)``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise MarsError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise MarsError(f"--shard {text!r}: need 0 <= i < n (i is 0-based)")
    return index, count


def in_shard(key: str, shard: tuple[int, int]) -> bool:
    """Whether ``key`` belongs to ``shard``: a stable hash, so shards do not depend on order."""
    index, count = shard
    return zlib.crc32(key.encode("utf-8", "surrogateescape")) % count == index


def run_batch(
    items: Sequence[Any],
    job: Job,
    *,
    workers: int,
    shard: tuple[int, int] = (0, 1),
    desc: str = "batch",
    skip: Callable[[Any], bool] | None = None,
    report_path: str | Path | None = None,
    key: Callable[[Any], str] = str,
) -> BatchSummary:
    """Run ``job`` on every item of this shard, on ``workers`` processes.

    Args:
        items: the whole list; each process of a sharded run passes the same list.
        job: picklable ``job(item) -> dict | None``; an exception fails only that item
            (its message, one line, is the reason).
        workers: processes; ``<= 1`` runs in this process (no pool).
        shard: ``(i, n)``: this run does the items whose key hashes to ``i`` mod ``n``.
        desc: name shown on the progress bar and in the summary.
        skip: ``skip(item) -> True`` for items already done (resuming).
        report_path: where to write the report (``.json`` and ``.csv`` beside it).
        key: the item's name in the report and for sharding.

    Returns:
        The summary; ``summary.exit_code`` is 1 if any item failed.
    """
    start = time.perf_counter()
    mine = [item for item in items if in_shard(key(item), shard)]
    results: dict[int, ItemResult] = {}
    todo = []
    for position, item in enumerate(mine):
        if skip is not None and skip(item):
            results[position] = ItemResult(key(item), "skipped")
        else:
            todo.append((position, item))
    # Lines on a terminal or in a log, and one estimate of the total time early on.
    bar = Progress(len(todo), desc, "video", estimate_after=_estimate_after(len(todo)))
    failed = 0
    previous = _interrupt_on_sigterm()
    try:
        for position, result in _execute(todo, job, workers, key):
            results[position] = result
            bar.update()
            if result.status == "failed":
                failed += 1
                bar.set_postfix(failed=failed)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        bar.close()
        ordered = [results[position] for position in sorted(results)]
        seconds = time.perf_counter() - start
        summary = BatchSummary(desc, shard, ordered, seconds, len(mine) - len(ordered))
        kept = not todo and Path(report_path or "-").with_suffix(".json").exists()
        if report_path is not None and not kept:
            # A run that skipped everything keeps the report of the run that did the work
            # (its real cost), e.g. when several runs share a store.
            _try_report(summary, report_path)
    return summary


def _estimate_after(count: int) -> int:
    """Items before the estimate of the total time: a few, not the pool's start-up alone."""
    return 0 if count < 4 else min(10, max(2, count // 20))


def _try_report(summary: BatchSummary, path: str | Path) -> None:
    """Write the report; when that fails (disk full), drop the old one and say so.

    A previous run's report left in place would describe a run that did not happen.
    """
    try:
        write_report(summary, path)
    except OSError as error:
        summary.report_error = describe_os_error(error)
        for stale in (Path(path).with_suffix(".json"), Path(path).with_suffix(".csv")):
            stale.unlink(missing_ok=True)


def _execute(todo: list[tuple[int, Any]], job: Job, workers: int, key: Callable[[Any], str]):
    """Yield ``(position, ItemResult)`` as items finish, in this process or a pool."""
    script = unguarded_script() if workers > 1 and len(todo) > 1 else None
    if script:  # its workers would run the script again: one process, and say why
        print(f"{script}: no `{GUARD}` guard, so no worker process can start (each imports "
              f"the script again); running in this process. Put the call under the guard "
              f"for {workers} processes.", file=sys.stderr, flush=True)
        workers = 1
    if workers <= 1 or len(todo) <= 1:
        for position, item in todo:
            yield position, _run_one(job, item, key(item))
        return
    yield from _execute_pool(todo, job, workers, key)


def _execute_pool(todo, job, workers, key, in_flight=None):
    # A worker that crashes (segfault, out of memory) breaks the whole pool. Items in
    # flight then become suspects, rerun one at a time afterwards, so only the culprit
    # fails; a fresh pool takes the rest.
    in_flight = in_flight or 2 * workers
    pending, suspects = list(reversed(todo)), []
    context = multiprocessing.get_context("spawn" if os.name == "nt" else "forkserver")
    if context.get_start_method() == "forkserver":
        # Workers fork from a server that has imported the job's module once, instead
        # of each importing it (PyAV, OpenCV...: ~0.5 s) before its first item; later
        # pools of this process then start at once.
        context.set_forkserver_preload(["__main__", _module_of(job)])
    while pending:
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        )
        try:
            running: dict[Future, tuple[int, Any]] = {}
            broken = False
            while (pending or running) and not broken:
                while pending and len(running) < in_flight:
                    position, item = pending.pop()
                    running[pool.submit(_run_one, job, item, key(item))] = (position, item)
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    broken |= yield from _collect(future, running.pop(future), suspects, key)
            for future, entry in running.items():
                yield from _collect(future, entry, suspects, key)
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): no worker may keep writing
            _stop_workers(pool)
            raise
        pool.shutdown()
    if in_flight == 1:
        for position, item in suspects:
            yield position, ItemResult(key(item), "failed", CRASH_REASON)
    elif suspects:
        yield from _execute_pool(suspects, job, 1, key, in_flight=1)


def _interrupt_on_sigterm():
    """Turn SIGTERM into KeyboardInterrupt for the batch: the pool is stopped, the report
    written. Returns the previous handler (None off the main thread, where none is set)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    # The executor keeps its workers private; waiting for their items instead
    # (shutdown(wait=True)) would let them run on for minutes after the user's stop.
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _die_with_parent(parent: int) -> None:
    """Pool initializer: the worker kills itself as soon as the run's process is gone.

    A ``kill -9`` of the run cannot be caught, and the workers' parent is the fork
    server, which outlives the run while workers hold its pipe (so ``PR_SET_PDEATHSIG``
    would not fire): a thread waits on a pidfd of the run instead (Linux), or polls.
    """
    threading.Thread(target=_watch, args=(parent,), daemon=True).start()


def _watch(parent: int) -> None:
    try:
        pidfd = os.pidfd_open(parent)
    except ProcessLookupError:
        pidfd = None
    except (AttributeError, OSError):  # no pidfd (old kernel, macOS): poll
        while _alive(parent):
            time.sleep(0.5)
        pidfd = None
    if pidfd is not None:
        select.select([pidfd], [], [])  # readable once the process has exited
    os.kill(os.getpid(), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _module_of(job: Job) -> str:
    return getattr(job, "func", job).__module__


def _collect(future: Future, entry: tuple[int, Any], suspects: list, key) -> bool:
    """Yield the finished item's result, or file it as a suspect; True if the pool broke."""
    try:
        result = future.result()
    except BrokenProcessPool:
        suspects.append(entry)
        return True
    yield entry[0], result
    return False


def _run_one(job: Job, item: Any, name: str) -> ItemResult:
    start = time.perf_counter()
    try:
        figures = job(item) or {}
    except SkipItem as error:
        return ItemResult(name, "skipped", str(error), time.perf_counter() - start)
    except Exception as error:  # noqa: BLE001 - any failure of one item is reported, not raised
        return ItemResult(name, "failed", _reason(error), time.perf_counter() - start)
    return ItemResult(name, "done", "", time.perf_counter() - start, dict(figures))


def _reason(error: Exception) -> str:
    """One line: a MarsError's own message, else the exception type and first line."""
    if isinstance(error, OSError) and error.strerror:  # disk full, permissions: name the file
        return describe_os_error(error)
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, MarsError):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def write_report(summary: BatchSummary, path: str | Path) -> tuple[Path, Path]:
    """Write the summary as ``<path>.json`` (counts + items) and ``<path>.csv`` (one row each)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = path.with_suffix(".json"), path.with_suffix(".csv")
    payload = {
        "desc": summary.desc,
        "shard": f"{summary.shard[0]}/{summary.shard[1]}",
        "seconds": round(summary.seconds, 3),
        **{status: summary.count(status) for status in ("done", "skipped", "failed")},
        "not_run": summary.not_run,
        "items": [asdict(result) for result in summary.results],
    }
    write_atomic(json_path, (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode())
    figure_names = sorted({name for r in summary.results for name in r.figures})
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(["item", "status", "reason", "seconds", *figure_names])
    for r in summary.results:
        figures = [r.figures.get(name, "") for name in figure_names]
        writer.writerow([r.item, r.status, r.reason, f"{r.seconds:.3f}", *figures])
    write_atomic(csv_path, table.getvalue().encode())
    return json_path, csv_path

