"""Runs: their records and marks, where scheduled runs go on from, and their chunks of order references."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update

from schemas import state
from schemas.outcomes import DeliveryCounts
from schemas.state import Marks, RunStatus
from tasks.state.locks import LOG, RUN_LEASE, TakenOver, never_known, wait_for_lock
from tasks.state.store import StateStore
from tasks.window import Window


def last_successful_until(store: StateStore, merchant: str) -> datetime | None:
    """Where scheduled runs go on from: the newest until of a successful run that left no gap behind it.

    A backfill of some past or later window that starts after that point does not move it.
    """
    runs = state.runs
    query = select(func.max(runs.c.until)).where(
        runs.c.merchant == merchant,
        runs.c.status == RunStatus.SUCCEEDED,
        runs.c.dry_run.is_(False),
        runs.c.continues.is_(True),
    )
    with store.engine.connect() as conn:
        return conn.execute(query).scalar()


def start_run(
    store: StateStore,
    run_id: str,
    merchant: str,
    window: Window,
    *,
    dry_run: bool,
    flow_run_id: str | None,
    lease: timedelta = RUN_LEASE,
    wait: timedelta = timedelta(0),
    waiting: Callable[[str], None] = LOG.info,
    holder_ended: Callable[[str], bool] = never_known,
) -> TakenOver | None:
    """Take the merchant's run lock, waiting up to `wait` for another run, and record the run's start.

    Writes one runs row. `holder_ended` says whether Prefect holds a flow run in a final state. Returns
    the run found dead and taken over (its flow run, and why), for the flow to mark it crashed.
    """
    dead = wait_for_lock(store, merchant, run_id, lease, wait, waiting, flow_run_id, holder_ended)
    with store.engine.begin() as conn:
        conn.execute(
            insert(state.runs).values(
                run_id=run_id,
                flow_run_id=flow_run_id,
                merchant=merchant,
                since=window.since,
                until=window.until,
                continues=window.continues,
                dry_run=dry_run,
                status=RunStatus.RUNNING,
                started_at=store.now(),
                new_count=0,
                changed_count=0,
                unchanged_count=0,
                quarantined_count=0,
                sent_count=0,
            )
        )
    return dead


def finish_run(
    store: StateStore,
    run_id: str,
    status: RunStatus,
    counts: DeliveryCounts | None = None,
    message: str | None = None,
) -> None:
    """Close the run record with its outcome and counts (`sent` as record_sent counted it); free the lock."""
    runs = state.runs
    counts = counts or DeliveryCounts()
    with store.engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(
                status=status,
                finished_at=store.now(),
                new_count=counts.new,
                changed_count=counts.changed,
                unchanged_count=counts.already_reported,
                quarantined_count=counts.quarantined,
                message=message,
            )
        )
        conn.execute(delete(state.run_locks).where(state.run_locks.c.run_id == run_id))


def record_statistics_sent(store: StateStore, run_id: str) -> None:
    """Note on the run that SeQura accepted a request carrying its statistics block, now; writes the store."""
    runs = state.runs
    with store.engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.run_id == run_id).values(statistics_sent_at=store.now()))


def statistics_sent_between(
    store: StateStore, merchant: str, start: datetime, end: datetime
) -> datetime | None:
    """When SeQura last accepted a statistics block of the merchant in [start, end), if it did; reads."""
    runs = state.runs
    query = select(func.max(runs.c.statistics_sent_at)).where(
        runs.c.merchant == merchant, runs.c.statistics_sent_at >= start, runs.c.statistics_sent_at < end
    )
    with store.engine.connect() as conn:
        return conn.execute(query).scalar()


def has_history(store: StateStore, merchant: str) -> bool:
    """Whether the store holds a snapshot of the merchant, or a run of it that succeeded."""
    runs = state.runs
    with store.engine.connect() as conn:
        run = conn.execute(
            select(runs.c.run_id)
            .where(runs.c.merchant == merchant, runs.c.status == RunStatus.SUCCEEDED)
            .limit(1)
        )
        if run.first() is not None:
            return True
        snapshot = conn.execute(
            select(state.order_snapshots.c.order_ref_1)
            .where(state.order_snapshots.c.merchant == merchant)
            .limit(1)
        )
        return snapshot.first() is not None


def has_run_here(store: StateStore, merchant: str) -> bool:
    """Whether a run of the merchant ever took its lock in this store (and so passed the lost-store check)."""
    runs = state.runs
    with store.engine.connect() as conn:
        run = conn.execute(
            select(runs.c.run_id).where(runs.c.merchant == merchant, runs.c.dry_run.is_(False)).limit(1)
        )
        return run.first() is not None


def recorded_flow_runs(store: StateStore, merchant: str) -> set[str]:
    """The Prefect flow runs of the merchant's runs this store recorded, whatever became of them."""
    runs = state.runs
    with store.engine.connect() as conn:
        found = conn.execute(
            select(runs.c.flow_run_id).where(runs.c.merchant == merchant, runs.c.flow_run_id.is_not(None))
        ).scalars()
        return set(found)


def store_chunks(
    store: StateStore, run_id: str, references: Iterable[Sequence[str]], chunk_size: int
) -> tuple[int, int]:
    """Keep the run's order references in chunks of `chunk_size` as they come; returns (chunks, references).

    The references stay out of Prefect (a task receives a chunk's number, never the window's references)
    and out of memory: a chunk is written as soon as it is full.
    """
    chunks = count = 0
    pending: list[str] = []

    def write(chunk: Sequence[str]) -> None:
        nonlocal chunks
        with store.engine.begin() as conn:
            conn.execute(
                insert(state.run_chunks).values(
                    run_id=run_id, chunk=chunks, order_references="\n".join(chunk)
                )
            )
        chunks += 1

    for batch in references:
        count += len(batch)
        pending.extend(batch)
        while len(pending) >= chunk_size:
            write(pending[:chunk_size])
            del pending[:chunk_size]
    if pending:
        write(pending)
    return chunks, count


def chunk_references(store: StateStore, run_id: str, chunk: int) -> list[str]:
    """The order references of one chunk of a run."""
    chunks = state.run_chunks
    with store.engine.connect() as conn:
        stored = conn.execute(
            select(chunks.c.order_references).where(chunks.c.run_id == run_id, chunks.c.chunk == chunk)
        ).scalar_one()
    return stored.split("\n")


def forget_chunks(store: StateStore, run_id: str) -> None:
    """Delete a finished run's chunks of references."""
    with store.engine.begin() as conn:
        conn.execute(delete(state.run_chunks).where(state.run_chunks.c.run_id == run_id))


def record_marks(store: StateStore, run_id: str, marks: Marks) -> None:
    """Keep on the run the high-water marks the next scheduled run reads above, once this one succeeds."""
    runs = state.runs
    with store.engine.begin() as conn:
        conn.execute(
            update(runs).where(runs.c.run_id == run_id).values(marks=json.dumps(marks, sort_keys=True))
        )


def last_marks(store: StateStore, merchant: str) -> Marks | None:
    """The high-water marks of the run scheduled runs go on from (as last_successful_until), if any."""
    runs = state.runs
    query = (
        select(runs.c.marks)
        .where(
            runs.c.merchant == merchant,
            runs.c.status == RunStatus.SUCCEEDED,
            runs.c.dry_run.is_(False),
            runs.c.continues.is_(True),
        )
        .order_by(runs.c.until.desc(), runs.c.finished_at.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        stored = conn.execute(query).scalar()
    return {str(name): int(mark) for name, mark in json.loads(stored).items()} if stored else None


def lapsed_run(
    store: StateStore, flow_run_id: str, lease: timedelta, running_for: timedelta, patience: timedelta | None
) -> str | None:
    """Why the run of a Prefect flow run is dead, or None if it may be alive; reads the store.

    Dead: its newest run was found dead by the run that took its lock over (why is said), stopped renewing
    its lease, or has been running longer than `patience` (None: for ever) without taking its merchant's
    lock. A flow run run again has a row per attempt.
    """
    runs, locks = state.runs, state.run_locks
    with store.engine.connect() as conn:
        run = conn.execute(
            select(runs.c.run_id, runs.c.merchant, runs.c.status, runs.c.message)
            .where(runs.c.flow_run_id == flow_run_id)
            .order_by(runs.c.started_at.desc())
            .limit(1)
        ).first()
        if run is None:
            if patience is not None and running_for > patience:
                minutes = running_for.total_seconds() / 60
                return f"it ran {minutes:.0f} minutes without taking its merchant's lock"
            return None
        if run.status not in (RunStatus.RUNNING, RunStatus.CRASHED):
            return None
        renewed = conn.execute(
            select(locks.c.renewed_at).where(locks.c.merchant == run.merchant, locks.c.run_id == run.run_id)
        ).scalar()
    if run.status == RunStatus.CRASHED and run.message:
        return f"it died: {run.message}"
    if run.status == RunStatus.CRASHED or renewed is None or renewed < store.now() - lease:
        last = f"last seen {renewed:%Y-%m-%d %H:%M} UTC" if renewed is not None else "its lock taken over"
        return f"it stopped renewing its run lease ({last}): its process or machine died"
    return None
