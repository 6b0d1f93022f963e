"""Read-ahead: the next chunk read in the background while this one is built and sent."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Generic, TypeVar

ChunkKey = int  # a chunk's number in its run


Rows = TypeVar("Rows")


class ReadAhead(Generic[Rows]):
    """Reads a run's next chunk in a background thread of its own while the current one is built and sent.

    A run's chunks go one after the other in one process: while Python builds chunk n, the database and
    the driver, mostly waiting on the network, get chunk n+1 ready. It holds one chunk at most; a chunk
    nobody asked for ahead (the first, or after a crash) is read when it is needed.
    """

    def __init__(self) -> None:
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-read-ahead")
        self._lock = threading.Lock()
        self._next: tuple[ChunkKey, Future[Rows]] | None = None

    def take(self, key: ChunkKey, read: Callable[[], Rows]) -> Rows:
        """The chunk `key`: read ahead if it was, else now."""
        with self._lock:
            ahead, self._next = self._next, None
        if ahead is not None and ahead[0] == key:
            return ahead[1].result()
        return read()

    def start(self, key: ChunkKey, read: Callable[[], Rows]) -> None:
        """Begin reading the chunk `key` in the background, in place of any other chunk read ahead."""
        with self._lock:
            self._next = (key, self._reader.submit(read))

    def close(self) -> None:
        """Wait for a read still going (its rows or error are dropped) and stop the reading thread."""
        with self._lock:
            self._next = None
        self._reader.shutdown(wait=True)


@contextmanager
def cyclic_collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a chunk's work; it runs again afterwards.

    A chunk allocates hundreds of thousands of short-lived, acyclic objects (rows, reports); the collector's
    passes over them cost a third of the build's time and find nothing that reference counting misses.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Stopwatch:
    """Seconds spent in each stage of a chunk."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._since = time.monotonic()

    def lap(self, stage: str) -> None:
        """Put the time since the last lap on `stage`."""
        now = time.monotonic()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._since
        self._since = now
