"""Progress of a long stage, with its total and an ETA, on a terminal or in a log file.

On a terminal it is a tqdm bar. When the output goes to a file or a pipe
(``make demo > log``, a cluster job), tqdm prints nothing useful, so a plain line
is written every ``every_s`` seconds or every ``every_fraction`` of the total,
whichever comes first. Either way ``estimate_after`` items in, one line says how
long the whole stage will take, so a user knows early whether to wait or to stop.
"""

from __future__ import annotations

import sys
import time
from typing import IO

from tqdm import tqdm


def duration(seconds: float) -> str:
    """``3 h 05 min``, ``12 min 30 s``, ``42 s``: short, for progress lines."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class Progress:
    """``update``/``set_postfix``/``close`` as tqdm, on any output.

    Args:
        total: items the stage will do (``None``: unknown, no ETA).
        desc: what is counted, e.g. ``"frames"`` or ``"epoch 3/60"``.
        unit: the item's name (``"video"``, ``"step"``).
        file: where lines go (default ``sys.stderr``).
        estimate_after: after this many items, one line with the estimated total time
            (0: none).
        leave: keep the finished bar on a terminal (tqdm's ``leave``).
        disable: print nothing (another process prints, or the caller asked so).
        initial: items done before (a resumed run), counted but not in the rate.
        every_s, every_fraction: how often plain lines come when not on a terminal
            (``every_fraction`` None: by time only).
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "item",
        *,
        file: IO[str] | None = None,
        estimate_after: int = 0,
        leave: bool = True,
        disable: bool = False,
        initial: int = 0,
        every_s: float = 10.0,
        every_fraction: float | None = 0.05,
    ):
        self.total, self.desc, self.unit = total, desc, unit
        self.file = file or sys.stderr
        self.disable, self.estimate_after = disable, estimate_after
        self.every_s, self.every_fraction = every_s, every_fraction
        self.done = self.initial = self._last_done = initial
        self.postfix = ""
        self.started = self._last_time = time.perf_counter()
        terminal = not disable and _is_terminal(self.file)
        self.bar = (
            tqdm(total=total, desc=desc, unit=unit, file=self.file, leave=leave,
                 dynamic_ncols=True, initial=initial)
            if terminal
            else None
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, count: int = 1) -> None:
        """``count`` more items done."""
        self.done += count
        if self.disable:
            return
        if self.bar is not None:
            self.bar.update(count)
        elif self._line_due():
            self._line()
        if self.estimate_after and self.done - self.initial >= self.estimate_after:
            self._estimate()
            self.estimate_after = 0

    def set_postfix(self, **values) -> None:
        """Figures shown after the count (loss, accuracy, failures)."""
        self.postfix = ", ".join(f"{key} {value}" for key, value in values.items())
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)

    def write(self, line: str) -> None:
        """A line that does not break the bar."""
        if self.bar is not None:
            self.bar.write(line, file=self.file)
        elif not self.disable:
            print(line, file=self.file, flush=True)

    def close(self) -> None:
        """End the bar; in a log, a last line when any came before (or the stage was long)."""
        if self.bar is not None:
            self.bar.close()
        elif not self.disable and self._last_done > self.initial and self._last_done != self.done:
            self._line()

    def remaining_s(self) -> float | None:
        """Seconds left at the rate so far; None without a total or before the first item."""
        if not self.total or self.done <= self.initial:
            return None
        rate = (self.done - self.initial) / max(time.perf_counter() - self.started, 1e-9)
        return max(self.total - self.done, 0) / rate

    def _line_due(self) -> bool:
        now = time.perf_counter()
        step = (self.every_fraction * self.total if self.total and self.every_fraction
                else float("inf"))
        return now - self._last_time >= self.every_s or self.done - self._last_done >= step

    def _line(self) -> None:
        self._last_time, self._last_done = time.perf_counter(), self.done
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        elapsed = duration(self._last_time - self.started)
        left = self.remaining_s()
        eta = f", {duration(left)} left" if left is not None and self.done < self.total else ""
        extra = f"; {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {count} {_plural(self.unit)}{percent}, {elapsed}{eta}{extra}",
              file=self.file, flush=True)

    def _estimate(self) -> None:
        left = self.remaining_s()
        if left is None or self.done >= self.total:
            return
        total = time.perf_counter() - self.started + left
        self.write(f"{self.desc}: about {duration(total)} in all ({duration(left)} to go), "
                   f"estimated from {self.done - self.initial} of {self.total} "
                   f"{_plural(self.unit)}")


def _plural(unit: str) -> str:
    return {"batch": "batches"}.get(unit, f"{unit}s")  # video, epoch, pair, item: -s


def _is_terminal(file: IO[str]) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False
