"""Read-ahead: the next chunks read (and built) in the background while this one is diffed and sent."""

from __future__ import annotations

import gc
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Generic, TypeVar

ChunkKey = int  # a chunk's number in its run


Rows = TypeVar("Rows")


class ReadAhead(Generic[Rows]):
    """Reads a run's next chunks in the background while the current one is diffed and sent.

    By default one background thread reads the next chunk: while Python works on chunk n, the database and
    the driver, mostly waiting on the network, get chunk n+1 ready. Given `processes`, that many worker
    processes each read and build a chunk of their own on the other cores, the chunks after the current
    one; what a read must carry to a process is then picklable. It holds at most `ahead` chunks; a chunk
    nobody asked for ahead (the first, or after a crash) is read when it is needed.
    """

    def __init__(self, processes: int = 0) -> None:
        self.ahead = max(processes, 1)
        self._reader: Executor = (
            ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
            if processes
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-read-ahead")
        )
        self._lock = threading.Lock()
        self._next: dict[ChunkKey, Future[Rows]] = {}

    def take(self, key: ChunkKey, read: Callable[[], Rows]) -> Rows:
        """The chunk `key`: read ahead if it was, else now; chunks before it read ahead are dropped."""
        with self._lock:
            ahead = self._next.pop(key, None)
            for earlier in [number for number in self._next if number < key]:
                self._next.pop(earlier).cancel()
        if ahead is not None:
            return ahead.result()
        return read()

    def reading(self, key: ChunkKey) -> bool:
        """Whether the chunk `key` is being read ahead."""
        with self._lock:
            return key in self._next

    def start(self, key: ChunkKey, read: Callable[[], Rows]) -> None:
        """Begin reading the chunk `key` in the background, unless it is already."""
        with self._lock:
            if key not in self._next:
                self._next[key] = self._reader.submit(read)

    def close(self) -> None:
        """Wait for reads still going (their rows or errors are dropped) and stop the readers."""
        with self._lock:
            for future in self._next.values():
                future.cancel()
            self._next = {}
        self._reader.shutdown(wait=True, cancel_futures=True)


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
