"""Run locks: a run whose holder is provably dead takes its lock at once; one that may be alive waits."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, insert, inspect, select, text

from schemas import state
from tasks.state.errors import RunInProgressError
from tasks.state.locks import RUN_LEASE, free_lock
from tasks.state.processes import RunProcess, this_process
from tasks.state.runs import lapsed_run, start_run
from tasks.state.store import StateStore, open_state_store
from tasks.window import Window
from tests.clocks import MovedClock

MERCHANT = "demo_merchant"
WINDOW = Window(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
ANOTHER_HOST = RunProcess("worker-2", 4242, "another-boot pid:[4026531836]", 123456)


def hold(store: StateStore, run_id: str, process: RunProcess | None, flow_run_id: str | None = None) -> None:
    """Let a run `run_id` of `process` (and of the flow run `flow_run_id`) hold the lock, as it would."""
    with store.engine.begin() as conn:
        conn.execute(
            insert(state.runs).values(
                run_id=run_id,
                flow_run_id=flow_run_id,
                merchant=MERCHANT,
                since=WINDOW.since,
                until=WINDOW.until,
                continues=True,
                dry_run=False,
                status="running",
                started_at=store.now(),
            )
        )
        conn.execute(
            insert(state.run_locks).values(
                merchant=MERCHANT,
                run_id=run_id,
                renewed_at=store.now(),
                flow_run_id=flow_run_id,
                host=process.host if process else None,
                pid=process.pid if process else None,
                pid_space=process.pid_space if process else None,
                process_started=process.started if process else None,
            )
        )


def start(store: StateStore, run_id: str, ended: Callable[[str], bool] = lambda flow_run: False) -> str:
    """Start run `run_id` (of flow run `flow-<run_id>`; `ended` plays Prefect); what it took or why not."""
    try:
        taken = start_run(
            store, run_id, MERCHANT, WINDOW, dry_run=False, flow_run_id=f"flow-{run_id}", holder_ended=ended
        )
    except RunInProgressError as busy:
        return f"refused: {busy}"
    return f"took over {taken.run_id}: {taken.why}" if taken else "took a free lock"


def crashed(store: StateStore, run_id: str) -> tuple[str, str | None]:
    """The status and message the store keeps for a run."""
    runs = state.runs
    with store.engine.connect() as conn:
        status, message = conn.execute(
            select(runs.c.status, runs.c.message).where(runs.c.run_id == run_id)
        ).one()
    return status, message


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name: state first, start time at 19."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


@contextmanager
def sleeping_process() -> Iterator[tuple[subprocess.Popen[bytes], RunProcess]]:
    """A live process of this host, and how a lock it took would name it; killed at the end."""
    process = subprocess.Popen(["sleep", "60"])
    here = this_process()
    try:
        yield process, RunProcess(here.host, process.pid, here.pid_space, int(stat_fields(process.pid)[19]))
    finally:
        process.kill()
        process.wait()


def test_a_run_of_another_host_whose_flow_run_prefect_shows_ended_is_taken_over_at_once(
    state_url: str,
) -> None:
    store = open_state_store(state_url)
    hold(store, "dead", ANOTHER_HOST, flow_run_id="flow-crashed")

    said = start(store, "next", ended=lambda flow_run: flow_run == "flow-crashed")

    assert (
        said
        == "took over dead: Prefect shows its flow run flow-crashed ended (a final state, such as Crashed)"
    )
    assert crashed(store, "dead") == (
        "crashed",
        "Prefect shows its flow run flow-crashed ended (a final state, such as Crashed); run next took over",
    )
    store.dispose()


def test_an_earlier_attempt_of_the_same_flow_run_on_another_host_is_taken_over_at_once(
    state_url: str,
) -> None:
    store = open_state_store(state_url)
    hold(store, "first-attempt", ANOTHER_HOST, flow_run_id="flow-again")  # the flow run is run again

    said = start(store, "again", ended=lambda flow_run: False)  # Prefect shows it Running: this attempt

    assert said == (
        "took over first-attempt: it was an earlier attempt of flow run flow-again, ended before Prefect "
        "ran it again"
    )
    store.dispose()


def test_a_run_of_another_host_whose_flow_run_still_runs_is_waited_for_until_its_lease_lapses(
    state_url: str,
) -> None:
    clock = MovedClock()
    store = open_state_store(state_url, clock=clock)
    hold(store, "alive", ANOTHER_HOST, flow_run_id="flow-running")
    asked: list[str] = []

    refused = start(store, "next", ended=lambda flow_run: asked.append(flow_run) or False)
    clock.move(RUN_LEASE.total_seconds() + 1)
    after_the_lease = start(store, "later", ended=lambda flow_run: False)

    assert refused.startswith("refused: run alive for merchant demo_merchant is still running (last seen ")
    assert "flow run flow-running, process 4242 on host worker-2)" in refused
    assert asked == ["flow-running"]
    assert after_the_lease.startswith("took over alive: it stopped renewing its lease at ")
    store.dispose()


def test_a_run_of_this_host_whose_process_is_gone_is_taken_over_at_once(state_url: str) -> None:
    store = open_state_store(state_url)
    with sleeping_process() as (process, named):
        hold(store, "killed", named, flow_run_id="flow-killed")
        process.kill()
        process.wait()

        said = start(store, "next")  # Prefect is never asked: the process alone proves it

    assert said == f"took over killed: its process {named.pid} on host {named.host} is gone"
    assert crashed(store, "killed")[0] == "crashed"
    assert lapsed_run(store, "flow-killed", RUN_LEASE, timedelta(0), None) == (  # as the fan-out says it
        f"it died: its process {named.pid} on host {named.host} is gone; run next took over"
    )
    store.dispose()


def test_a_run_of_this_host_killed_and_not_yet_reaped_is_taken_over_at_once(state_url: str) -> None:
    store = open_state_store(state_url)
    with sleeping_process() as (process, named):
        hold(store, "killed", named)
        process.kill()  # a zombie until its parent waits for it
        assert eventually_zombie(process.pid)

        said = start(store, "next")

    assert said == f"took over killed: its {named.in_words()} has ended (killed, not yet reaped)"
    store.dispose()


def eventually_zombie(pid: int) -> bool:
    """Whether the process becomes a zombie within a few seconds."""
    for _ in range(100):
        if stat_fields(pid)[0] == "Z":
            return True
        threading.Event().wait(0.05)
    return False


def test_a_run_of_this_host_whose_process_lives_is_refused_naming_its_host_pid_and_flow_run(
    state_url: str,
) -> None:
    store = open_state_store(state_url)
    with sleeping_process() as (_, named):
        hold(store, "alive", named, flow_run_id="flow-alive")

        said = start(store, "next", ended=lambda flow_run: False)

    assert said.startswith("refused: run alive for merchant demo_merchant is still running (last seen ")
    assert f"flow run flow-alive, process {named.pid} on host {named.host})" in said
    store.dispose()


def test_a_run_whose_pid_now_belongs_to_another_process_is_taken_over_at_once(state_url: str) -> None:
    store = open_state_store(state_url)
    with sleeping_process() as (_, named):
        earlier = replace(named, started=named.started - 1)  # the pid's process started after the holder's
        hold(store, "dead", earlier)

        said = start(store, "next")

    assert said == (
        f"took over dead: its {named.in_words()} is gone (the pid now belongs to another process)"
    )
    store.dispose()


def test_of_two_runs_taking_over_one_dead_run_at_once_one_wins(state_url: str) -> None:
    store = open_state_store(state_url)
    hold(store, "dead", ANOTHER_HOST, flow_run_id="flow-crashed")
    both_looked = threading.Barrier(2)

    def ended(flow_run: str) -> bool:
        """Prefect's word, given only once both runs found the dead run holding the lock."""
        if flow_run != "flow-crashed":
            return False
        both_looked.wait(timeout=10)
        return True

    said: list[str] = []
    takers = [
        threading.Thread(target=lambda r=run: said.append(start(store, r, ended))) for run in ("a", "b")
    ]
    for taker in takers:
        taker.start()
    for taker in takers:
        taker.join()

    with store.engine.connect() as conn:
        [winner] = conn.execute(select(state.run_locks.c.run_id)).scalars().all()
    assert sorted(line.split(":")[0] for line in said) == ["refused", "took over dead"]
    assert any(
        line.startswith(f"refused: run {winner} for merchant demo_merchant is still running") for line in said
    )
    store.dispose()


def test_a_lock_of_an_older_store_without_its_holders_process_waits_for_its_lease(state_url: str) -> None:
    store = open_state_store(state_url)
    with store.engine.begin() as conn:  # back to version 6, as stores written before version 7 are
        for column in ("flow_run_id", "host", "pid", "pid_space", "process_started"):
            conn.execute(text(f"ALTER TABLE run_locks DROP COLUMN {column}"))
        conn.execute(delete(state.schema_version).where(state.schema_version.c.version >= 7))
        conn.execute(
            text("INSERT INTO run_locks (merchant, run_id, renewed_at) VALUES (:merchant, 'old', :moment)"),
            {"merchant": MERCHANT, "moment": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")},
        )
    store.dispose()
    store = open_state_store(state_url)

    said = start(store, "next", ended=lambda flow_run: True)

    columns = {column["name"] for column in inspect(store.engine).get_columns("run_locks")}
    assert {"flow_run_id", "host", "pid", "pid_space", "process_started"} <= columns
    assert said.startswith("refused: run old for merchant demo_merchant is still running (last seen ")
    store.dispose()


def test_unlock_names_the_holders_flow_run_host_and_pid_and_whether_its_process_still_runs(
    state_url: str,
) -> None:
    store = open_state_store(state_url)
    with sleeping_process() as (process, named):
        hold(store, "alive", named, flow_run_id="flow-alive")
        freed_alive = free_lock(store, MERCHANT)
        hold(store, "killed", named, flow_run_id="flow-killed")
        process.kill()
        process.wait()
        freed_dead = free_lock(store, MERCHANT)
    hold(store, "elsewhere", ANOTHER_HOST, flow_run_id="flow-elsewhere")
    freed_elsewhere = free_lock(store, MERCHANT)

    process_words = f"process {named.pid} on host {named.host}"
    assert freed_alive.startswith(f"freed the lock of merchant {MERCHANT} held by run alive (last seen ")
    assert (
        f"flow run flow-alive, {process_words}); its {process_words} is still running: stop it" in freed_alive
    )
    assert freed_dead.endswith(
        f"flow run flow-killed, {process_words}); its {process_words} is gone, so no other run is sending"
    )
    assert freed_elsewhere.endswith(
        "flow run flow-elsewhere, process 4242 on host worker-2); if that run is still working, two runs may "
        "now send: stop it"
    )
    store.dispose()
