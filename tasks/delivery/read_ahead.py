"""Read-ahead: the next chunks read (and built) in the background while this one is diffed and sent."""

from __future__ import annotations

import atexit
import gc
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import URL, Engine

from schemas.errors import TransientError
from schemas.frames import ShopConfig
from schemas.prestashop import shop_tables
from schemas.reports import BuildResult
from tasks.child_process import die_with_parent
from tasks.delivery.build import build_reports
from tasks.delivery.order_rows import OrderRefField
from tasks.extract.connection import shop_engine
from tasks.extract.scope import OrderFilter
from tasks.extract.shipped_orders import extract_chunk

ChunkKey = int  # a chunk's number in its run


Rows = TypeVar("Rows")

# A worker process takes a second or two to start. Measured (benchmarks/analysis.md): a nightly run of 3
# chunks lost ~2 s to them and one of 1,000,000 orders (192 chunks) gained 22 s; a year of 100,000 (20
# chunks) took 10.6 s with them and 12.9 s alone, in runs a few hours apart. A run of fewer chunks (a
# nightly run, a day's window) reads and builds alone.
PROCESSES_FROM_CHUNKS = 10


def worker_processes(build_processes: int, chunks: int) -> int:
    """How many worker processes a run of `chunks` reads and builds with (SHOP_BUILD_PROCESSES or 0)."""
    return build_processes if chunks >= PROCESSES_FROM_CHUNKS else 0


@dataclass(frozen=True)
class ChunkRows:
    """One chunk read and built: its references (from the state store) and their reports."""

    references: list[str]
    built: BuildResult


@dataclass(frozen=True)
class ChunkJob:
    """What reading and building one chunk takes, small and picklable for a worker process."""

    shop_url: URL
    fast_reader: bool
    table_prefix: str
    order_filter: OrderFilter
    config: ShopConfig
    references: list[str]
    merchant: str
    order_ref_field: OrderRefField


class ChunkBuildError(TransientError):
    """A worker process could not read or build a chunk, and its error could not travel back as it was.

    Most often the shop's driver's own error (a connection lost): running again can succeed.
    """


class BuildProcessDiedError(TransientError):
    """A worker process died while the run's chunks were read and built (killed: out of memory?)."""

    def __init__(self) -> None:
        super().__init__(
            "a build process of the shop's chunks died (out of memory?); lower SHOP_BUILD_PROCESSES or "
            "SHOP_CHUNK_SIZE, or set SHOP_BUILD_PROCESSES=0, and run again"
        )


def pickled(read: Callable[[], object]) -> bytes:
    """What `read` returns, pickled: a chunk read ahead waits in the run's process as bytes until taken.

    Measured: a chunk of 5,000 orders is 13.5 MB pickled, and a backfill's peak 20 MB lower than with the
    chunks waiting unpickled.
    """
    return pickle.dumps(read(), protocol=pickle.HIGHEST_PROTOCOL)


@contextmanager
def main_module_left_behind() -> Iterator[None]:
    """Worker processes started in the block do not import the run's main module; swaps sys.modules meanwhile.

    A spawned process imports its parent's main module again (the command line, or Prefect's engine, with
    all of Prefect: ~50 MB and a second or two of each worker's start) for functions defined there; a
    worker runs only read_and_build_in_worker, which imports what reading and building take.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


@contextmanager
def build_process_death_named() -> Iterator[None]:
    """Raise a BuildProcessDiedError, not the pool's BrokenProcessPool, when a worker process died."""
    try:
        yield
    except BrokenProcessPool as error:
        raise BuildProcessDiedError() from error


class ReadAhead(Generic[Rows]):
    """Reads a run's next chunks in the background while the current one is diffed and sent.

    By default one background thread reads the next chunk: while Python works on chunk n, the database and
    the driver, mostly waiting on the network, get chunk n+1 ready. Given `processes`, that many worker
    processes each read and build a chunk of their own on the other cores, the chunks after the current
    one; what a read must carry to a process is then picklable, and a chunk read waits in the run's process
    pickled until taken. It holds at most `ahead` chunks after the one taken; a chunk nobody asked for
    ahead is read when it is needed. The worker processes end with the run's process, even one killed
    (SIGKILL): Linux kills each when the thread that started it (the one calling `start`) ends.
    """

    def __init__(self, processes: int = 0) -> None:
        self.ahead = max(processes, 1)
        self.in_processes = processes > 0
        self._reader: Executor = (
            ProcessPoolExecutor(
                processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=build_process_started,
                initargs=(os.getpid(),),
            )
            if processes
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-read-ahead")
        )
        self._lock = threading.Lock()
        self._next: dict[ChunkKey, Future[Rows] | Future[bytes]] = {}  # bytes: pickled, in processes

    def take(self, key: ChunkKey, read: Callable[[], Rows]) -> Rows:
        """The chunk `key`: read ahead if it was, else now; chunks before it read ahead are dropped.

        Raises BuildProcessDiedError if a worker process died.
        """
        with self._lock:
            ahead = self._next.pop(key, None)
            for earlier in [number for number in self._next if number < key]:
                self._next.pop(earlier).cancel()
        if ahead is not None:
            with build_process_death_named():
                result = ahead.result()
            return pickle.loads(result) if self.in_processes else result
        return read()

    def reading(self, key: ChunkKey) -> bool:
        """Whether the chunk `key` is being read ahead."""
        with self._lock:
            return key in self._next

    def start(self, key: ChunkKey, read: Callable[[], Rows]) -> None:
        """Begin reading the chunk `key` in the background, unless it is already.

        Raises BuildProcessDiedError if a worker process died.
        """
        with self._lock:
            if key not in self._next:
                with build_process_death_named(), main_module_left_behind():
                    self._next[key] = (
                        self._reader.submit(pickled, read) if self.in_processes else self._reader.submit(read)
                    )

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


def read_and_build(shop: Engine, job: ChunkJob) -> ChunkRows:
    """Read the chunk's frames from the shop and build its reports; reads the shop."""
    tables = shop_tables(job.table_prefix)
    extract = extract_chunk(shop, tables, job.order_filter, job.config, job.references)
    with cyclic_collection_paused():
        return ChunkRows(job.references, build_reports(extract, job.merchant, job.order_ref_field))


_WORKER_SHOPS: dict[tuple[str, bool], Engine] = {}  # a worker process's engine on the shop, made once


def build_process_started(parent: int) -> None:
    """In a new worker process: end with the run's process `parent`, and end quickly once told to.

    Python's own exit frees every module and object one by one: measured, a pool of two build processes
    took about a second to shut down so, and 0.03 s ending at the first exit handler (after the engine's
    connections are closed and the output flushed).
    """
    die_with_parent(signal.SIGKILL, parent)
    atexit.register(_exit_now)


def _exit_now() -> None:
    """End a worker process at once: its shop connections closed, its output flushed, nothing freed."""
    for engine in _WORKER_SHOPS.values():
        engine.dispose()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def read_and_build_in_worker(job: ChunkJob) -> ChunkRows:
    """read_and_build in a worker process, on an engine of its own kept for its next chunks.

    An error that cannot travel back to the run (pickled and unpickled) comes back as a ChunkBuildError
    with its words.
    """
    key = (job.shop_url.render_as_string(hide_password=False), job.fast_reader)
    if key not in _WORKER_SHOPS:
        _WORKER_SHOPS[key] = shop_engine(job.shop_url, fast=job.fast_reader)
    try:
        return read_and_build(_WORKER_SHOPS[key], job)
    except Exception as error:
        try:
            pickle.loads(pickle.dumps(error))
        except Exception:
            raise ChunkBuildError(f"{type(error).__name__}: {error}") from None
        raise
