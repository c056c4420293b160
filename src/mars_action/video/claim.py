"""One writer per video folder and marker: a claim file locked with ``flock``.

Two ``mars frames`` (or ``mars flow``) runs on the same store must never write the
same video at once: the second would delete or mix the first's files and mark a
half-written folder as done. The writer of ``<class>/<video>`` for ``marker`` holds
an exclusive ``flock`` on ``<class>/.<video>.<marker>.lock`` (the file holds its PID,
for messages). The kernel releases the lock when its holder dies, even by ``kill -9``,
so a dead writer's claim is taken over at once; its leftover temporary folders are
then removed by the new holder, which knows nobody else is writing them.

Linux and macOS only (``fcntl``), like the rest of the batch tooling.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mars_action.video.batch import SkipItem

_held: dict[Path, int] = {}  # lock path -> nesting depth, in this process


class ClaimedElsewhere(SkipItem):
    """Another live process is writing this video: the item is skipped, not redone."""


@contextmanager
def claim(video_dir: str | Path, marker: str) -> Iterator[None]:
    """Hold the claim on ``video_dir``'s ``marker`` set for the duration of the block.

    Re-entrant within one process (an extraction job may claim around a write
    that claims too). On entry, stale temporary folders of this set (left by a
    killed writer) are removed.

    Raises:
        ClaimedElsewhere: another live process holds the claim; nothing was touched.
    """
    video_dir = Path(video_dir)
    lock = video_dir.with_name(f".{video_dir.name}.{marker}.lock")
    if lock in _held:
        _held[lock] += 1
        try:
            yield
        finally:
            _held[lock] -= 1
        return
    fd = _acquire(lock, video_dir)
    _held[lock] = 1
    try:
        remove_stale_temps(video_dir, marker)
        yield
    finally:
        del _held[lock]
        lock.unlink(missing_ok=True)  # while still locked: a waiting opener retries
        os.close(fd)


def _acquire(lock: Path, video_dir: Path) -> int:
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise ClaimedElsewhere(
                f"{video_dir}: being written by another process{pid}; left to it"
            ) from None
        # The previous holder unlinks the file as it lets go: a lock taken on that
        # unlinked file would claim nothing, so take it again on the current one.
        try:
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            return fd
        os.close(fd)


def temp_name(video_dir: Path, marker: str) -> Path:
    """A temporary folder name unique to this process and call (same file system)."""
    unique = f"{os.getpid()}-{os.urandom(4).hex()}"
    return video_dir.with_name(f".{video_dir.name}.{marker}.{unique}.tmp")


def remove_stale_temps(video_dir: Path, marker: str) -> None:
    """Delete temporary folders of ``marker``'s set; call only while holding its claim."""
    pattern = re.compile(
        rf"^\.{re.escape(video_dir.name)}\.{re.escape(marker)}(\.\d+-[0-9a-f]{{8}})?\.tmp$"
    )
    try:
        entries = list(os.scandir(video_dir.parent))
    except FileNotFoundError:
        return
    for entry in entries:
        if pattern.match(entry.name):
            shutil.rmtree(entry.path, ignore_errors=True)
