from __future__ import annotations

import builtins
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, event

from schemas.reports import BuildResult
from tasks.delivery import chunk as chunk_module
from tasks.delivery import read_ahead
from tasks.delivery.chunk import ChunkRows, chunk_rows
from tasks.delivery.read_ahead import (
    PROCESSES_FROM_CHUNKS,
    BuildProcessDiedError,
    ReadAhead,
    worker_processes,
)
from tests.child_processes import children_of, killed_with_its_children, started_by_a_parent
from tests.prefect_servers import PROJECT

RUN_WITH_WORKERS = """
import os, time
from tasks.delivery.read_ahead import ReadAhead
ahead = ReadAhead(2)
ahead.start(1, os.getpid)
ahead.start(2, os.getpid)
ahead.take(1, os.getpid), ahead.take(2, os.getpid)
print(os.getpid(), flush=True)
time.sleep(120)
"""

RUN_WHOSE_MAIN_MODULE_SAYS_WHO_IMPORTS_IT = """
import os
from tasks.delivery.read_ahead import ReadAhead
with open(os.environ["IMPORTED_BY"], "a") as imported_by:
    print(os.getpid(), file=imported_by)
if __name__ == "__main__":
    ahead = ReadAhead(1)
    ahead.start(1, os.getpid)
    ahead.take(1, os.getpid)
    ahead.close()
"""


def test_the_build_processes_end_when_the_run_that_started_them_is_killed() -> None:
    run, pid = started_by_a_parent(RUN_WITH_WORKERS)
    workers = children_of(pid)
    assert len(workers) >= 2  # the two workers, and multiprocessing's resource tracker

    assert killed_with_its_children(run, workers, within=10) == []


def test_a_build_process_whose_parent_is_gone_before_it_is_ready_exits() -> None:
    script = "from tasks.child_process import die_with_parent; die_with_parent(9, 1); print('kept')"
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT, capture_output=True, text=True)

    assert (done.returncode, done.stdout) == (1, "")


def test_a_build_process_that_died_stops_the_run_saying_what_to_do() -> None:
    ahead = ReadAhead[int](1)
    ahead.start(1, partial(os._exit, 9))
    with pytest.raises(
        BuildProcessDiedError, match=r"died \(out of memory\?\); lower SHOP_BUILD_PROCESSES"
    ) as died:
        ahead.take(1, os.getpid)
    with pytest.raises(BuildProcessDiedError):
        ahead.start(2, os.getpid)
    ahead.close()

    assert died.value.retryable


class Freed:
    """An object that writes `freed` to its file when Python frees it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __del__(self) -> None:
        Path(self.path).write_text("freed")


def hold_a_shop_connection_and_objects(witness: str) -> None:
    """In a build process: a shop engine with a pooled connection, saying when it closes, and an object."""
    engine = create_engine(f"sqlite:///{witness}.sqlite")
    event.listen(engine, "close", lambda *_: Path(f"{witness}.closed").write_text("closed"))
    with engine.connect():
        pass
    read_ahead._WORKER_SHOPS[(witness, False)] = engine
    builtins.held_by_the_build = Freed(f"{witness}.freed")  # type: ignore[attr-defined]


def test_a_build_process_ends_closing_its_shop_connections_without_freeing_the_rest(tmp_path: Path) -> None:
    witness = str(tmp_path / "build")
    ahead = ReadAhead[None](1)
    ahead.start(1, partial(hold_a_shop_connection_and_objects, witness))
    ahead.take(1, lambda: None)
    ahead.close()

    assert Path(f"{witness}.closed").read_text() == "closed"
    assert not Path(f"{witness}.freed").exists()  # Python's exit would free it, one object at a time


def test_a_run_of_few_chunks_reads_and_builds_alone_where_worker_processes_would_not_pay_their_start() -> (
    None
):
    assert worker_processes(2, chunks=3) == 0  # a nightly run
    assert worker_processes(2, chunks=PROCESSES_FROM_CHUNKS - 1) == 0
    assert worker_processes(2, chunks=PROCESSES_FROM_CHUNKS) == 2
    assert worker_processes(0, chunks=200) == 0


def test_the_build_processes_leave_the_runs_main_module_and_its_prefect_unimported(tmp_path: Path) -> None:
    main, imported_by = tmp_path / "run.py", tmp_path / "imported_by"
    main.write_text(RUN_WHOSE_MAIN_MODULE_SAYS_WHO_IMPORTS_IT)
    env = {**os.environ, "IMPORTED_BY": str(imported_by)}
    subprocess.run([sys.executable, str(main)], cwd=PROJECT, env=env, check=True, timeout=120)

    assert len(imported_by.read_text().split()) == 1  # the run's process alone


def test_a_chunk_read_ahead_in_a_build_process_waits_in_the_run_as_bytes_until_taken() -> None:
    ahead = ReadAhead[dict[str, int]](1)
    ahead.start(1, partial(dict, orders=5000))
    waiting = ahead._next[1].result()

    assert isinstance(waiting, bytes)
    assert ahead.take(1, dict) == {"orders": 5000}
    ahead.close()


class StartsRecorded(ReadAhead[ChunkRows]):
    """A read-ahead that records which chunks it was asked to read ahead, and reads them in a thread."""

    def __init__(self, processes: int) -> None:
        super().__init__()
        self.ahead, self.in_processes, self.started = max(processes, 1), processes > 0, list[int]()

    def start(self, key: int, read: object) -> None:
        """Record `key` and read a chunk named after it."""
        self.started.append(key)
        super().start(key, partial(ChunkRows, [f"read ahead {key}"], BuildResult()))


@pytest.mark.parametrize(
    ("processes", "started", "first_read_by"),
    [(2, [0, 1, 2], "read ahead 0"), (0, [1], "the run's process")],
)
def test_with_build_processes_the_first_chunk_too_is_built_in_one_and_never_in_the_runs_process(
    processes: int, started: list[int], first_read_by: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built_here = ChunkRows([first_read_by], BuildResult())
    monkeypatch.setattr(chunk_module, "chunk_job", lambda context, chunk: chunk)
    monkeypatch.setattr(chunk_module, "read_and_build", lambda shop, job: built_here)
    ahead = StartsRecorded(processes)
    shop, plan = SimpleNamespace(shop=None), SimpleNamespace(chunks=9)
    run = SimpleNamespace(read_ahead=ahead, resources=shop, plan=plan)

    rows = chunk_rows(run, 0)  # type: ignore[arg-type]
    ahead.close()

    assert (ahead.started, rows.references) == (started, [first_read_by])
