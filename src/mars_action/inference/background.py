"""Run an iterator in a background thread behind a bounded queue.

Decoding (PyAV) and resizing (OpenCV) release the GIL, as do PyTorch's kernels, so
a decoder thread keeps the next clips ready while the network runs on the current
batch. The queue is bounded so a fast decoder cannot fill memory; for live sources
``drop_oldest`` keeps the newest items instead of making the source wait.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1


class _Raised:
    """An exception from the producer, re-raised in the consumer's thread."""

    def __init__(self, error: BaseException):
        self.error = error


def background(items: Iterable[T], maxsize: int = 8, drop_oldest: bool = False) -> Iterator[T]:
    """Yield ``items`` as produced by a daemon thread; its exceptions surface here.

    Closing the returned generator (or leaving a ``for`` loop early) stops the
    thread at its next item, so nothing keeps decoding in the background.
    """
    channel: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
    stop = threading.Event()
    worker = threading.Thread(
        target=_produce, args=(items, channel, stop, drop_oldest), daemon=True
    )
    worker.start()
    try:
        while True:
            item = channel.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join(timeout=5.0)


def _produce(items: Iterable, channel: queue.Queue, stop: threading.Event, drop: bool) -> None:
    try:
        for item in items:
            if not _put(channel, item, stop, drop):
                return
        _put(channel, _DONE, stop, drop=False)
    except BaseException as error:  # noqa: BLE001  (handed to the consumer, never swallowed)
        _put(channel, _Raised(error), stop, drop=False)
    finally:
        close = getattr(items, "close", None)  # a generator holding an open file
        if close is not None:
            close()


def _put(channel: queue.Queue, item: object, stop: threading.Event, drop: bool) -> bool:
    """Put ``item``, waiting while the consumer is alive; False once it has gone."""
    while not stop.is_set():
        try:
            channel.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            if drop:
                _discard_oldest(channel)
    return False


def _discard_oldest(channel: queue.Queue) -> None:
    try:
        channel.get_nowait()
    except queue.Empty:
        pass
