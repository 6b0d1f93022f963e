"""Run locks: one run per merchant sends at a time; its lease lapses when the run dies."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from schemas import state
from schemas.state import RunStatus
from tasks.state.errors import RunInProgressError
from tasks.state.processes import RunProcess, of_this_host, process_gone, this_process
from tasks.state.store import StateStore

LOG = logging.getLogger(__name__)


RUN_LEASE = timedelta(minutes=10)  # how long a run that stopped renewing its lease still blocks others
TAKE_TRIES = 3  # how often take_lock looks again when the lock changes hands while it looks


def never_known(flow_run_id: str) -> bool:
    """Whether a flow run is known to have ended, without Prefect: never."""
    return False


@dataclass(frozen=True)
class LockHolder:
    """A run that holds a merchant's lock: its run, its Prefect flow run and its process, when recorded."""

    run_id: str
    flow_run_id: str | None
    process: RunProcess | None  # None for a lock taken before the store's version 7
    renewed_at: datetime

    def in_words(self) -> str:
        """What is known of it: `last seen 2026-12-04 10:00:00 UTC, flow run F, process 1234 on host w-1`."""
        found = [f"last seen {self.renewed_at:%Y-%m-%d %H:%M:%S} UTC"]
        if self.flow_run_id is not None:
            found.append(f"flow run {self.flow_run_id}")
        if self.process is not None:
            found.append(self.process.in_words())
        return ", ".join(found)


@dataclass(frozen=True)
class TakenOver:
    """The dead run whose lock a run took over: its run, its Prefect flow run (if any) and why it was dead."""

    run_id: str
    flow_run_id: str | None
    why: str


def _holder(store: StateStore, merchant: str) -> LockHolder | None:
    """Who holds the merchant's lock, or None if no run does; reads."""
    locks = state.run_locks
    with store.engine.connect() as conn:
        row = conn.execute(select(locks).where(locks.c.merchant == merchant)).first()
    if row is None:
        return None
    process = None
    if row.host is not None and row.pid is not None:
        process = RunProcess(row.host, row.pid, row.pid_space, row.process_started)
    return LockHolder(row.run_id, row.flow_run_id, process, row.renewed_at)


def _inserted(store: StateStore, merchant: str, run_id: str, flow_run_id: str | None) -> bool:
    """Take a free lock with one INSERT on its primary key, naming this process; False if a run holds it."""
    here = this_process()
    try:
        with store.engine.begin() as conn:
            conn.execute(
                insert(state.run_locks).values(
                    merchant=merchant,
                    run_id=run_id,
                    renewed_at=store.now(),
                    flow_run_id=flow_run_id,
                    host=here.host,
                    pid=here.pid,
                    pid_space=here.pid_space,
                    process_started=here.started,
                )
            )
    except IntegrityError:
        return False
    return True


def _why_dead(
    store: StateStore,
    holder: LockHolder,
    lease: timedelta,
    flow_run_id: str | None,
    ended: Callable[[str], bool],
) -> str | None:
    """Why the run holding a lock is provably dead, in words, or None if it may live; reads /proc, Prefect.

    Dead: its lease lapsed, its process on this host is gone (or its pid is another process's now), it was
    an earlier attempt of the asking run's own flow run (Prefect runs a flow run again only once it ended:
    Crashed or Failed, then scheduled again), or Prefect (`ended`) holds its flow run in a final state.
    """
    if holder.renewed_at < store.now() - lease:
        return f"it stopped renewing its lease at {holder.renewed_at:%Y-%m-%d %H:%M} UTC"
    gone = process_gone(holder.process) if holder.process is not None else None
    if gone is not None:
        return gone
    if holder.flow_run_id is None:
        return None
    if holder.flow_run_id == flow_run_id:
        return f"it was an earlier attempt of flow run {flow_run_id}, ended before Prefect ran it again"
    if ended(holder.flow_run_id):
        return f"Prefect shows its flow run {holder.flow_run_id} ended (a final state, such as Crashed)"
    return None


def _take_over(
    store: StateStore, merchant: str, holder: LockHolder, run_id: str, flow_run_id: str | None, why: str
) -> TakenOver | None:
    """Take a dead holder's lock with one compare-and-set UPDATE and mark its run crashed; None if lost.

    The UPDATE matches the holder's run id and last renewal, so of two runs taking over at once one wins,
    and a holder that renewed meanwhile keeps its lock. Writes run_locks and runs in one transaction.
    """
    locks, runs = state.run_locks, state.runs
    here = this_process()
    moment = store.now()
    with store.engine.begin() as conn:
        taken = conn.execute(
            update(locks)
            .where(
                locks.c.merchant == merchant,
                locks.c.run_id == holder.run_id,
                locks.c.renewed_at == holder.renewed_at,
            )
            .values(
                run_id=run_id,
                renewed_at=moment,
                flow_run_id=flow_run_id,
                host=here.host,
                pid=here.pid,
                pid_space=here.pid_space,
                process_started=here.started,
            )
        ).rowcount
        if taken != 1:
            return None
        conn.execute(
            update(runs)
            .where(runs.c.run_id == holder.run_id, runs.c.status == RunStatus.RUNNING)
            .values(status=RunStatus.CRASHED, finished_at=moment, message=f"{why}; run {run_id} took over")
        )
        recorded = conn.execute(select(runs.c.flow_run_id).where(runs.c.run_id == holder.run_id)).scalar()
    return TakenOver(holder.run_id, holder.flow_run_id or recorded, why)


def _still_running(merchant: str, holder: LockHolder, lease: timedelta) -> str:
    """Why a run cannot take the merchant's lock now, naming the run that holds it and what to do."""
    return (
        f"run {holder.run_id} for merchant {merchant} is still running ({holder.in_words()}); try again "
        "when it ends (a run that died stops blocking at once when its process on this host is gone or "
        f"Prefect shows its flow run ended, else {lease.total_seconds():g} seconds after it was last seen, "
        "SEQURA_RUN_LEASE_SECONDS; `sequra-etl unlock` frees it at once)"
    )


def take_lock(
    store: StateStore,
    merchant: str,
    run_id: str,
    lease: timedelta,
    flow_run_id: str | None = None,
    ended: Callable[[str], bool] = never_known,
) -> TakenOver | None:
    """Take the merchant's run lock, or raise RunInProgressError naming the run that holds it.

    Taking it is one INSERT on a primary key, or one compare-and-set UPDATE of a dead holder's lock (see
    _why_dead; `ended` asks Prefect whether a flow run ended), so two runs starting at the same instant
    cannot both get it. A running run renews its lease while it works. Taking a dead run's lock over marks
    it crashed and returns who it was and why. Writes run_locks (and runs).
    """
    for _ in range(TAKE_TRIES):
        if _inserted(store, merchant, run_id, flow_run_id):
            return None
        holder = _holder(store, merchant)
        if holder is None:
            continue  # freed meanwhile: insert again
        why = _why_dead(store, holder, lease, flow_run_id, ended)
        if why is None:
            raise RunInProgressError(_still_running(merchant, holder, lease))
        taken = _take_over(store, merchant, holder, run_id, flow_run_id, why)
        if taken is not None:
            return taken
    raise RunInProgressError(
        f"the lock of merchant {merchant} changed hands {TAKE_TRIES} times while this run tried to take it; "
        "another run is starting: try again when it ends"
    )


def renew_lock(store: StateStore, merchant: str, run_id: str) -> None:
    """Tell other runs this one is alive: push its lease forward; writes the run_locks row.

    Raises RunInProgressError when the run no longer holds the lock (its lease lapsed and another run took
    over, or `sequra-etl unlock` freed it): it must stop before it sends anything more.
    """
    locks = state.run_locks
    with store.engine.begin() as conn:
        held = conn.execute(
            update(locks)
            .where(locks.c.merchant == merchant, locks.c.run_id == run_id)
            .values(renewed_at=store.now())
        ).rowcount
    if held == 0:
        raise RunInProgressError(
            f"run {run_id} no longer holds the lock of merchant {merchant} (its lease lapsed and another "
            "run took over, or `sequra-etl unlock` freed it); it stops here so that nothing is sent twice"
        )


@contextmanager
def lease_kept(store: StateStore, merchant: str, run_id: str, lease: timedelta = RUN_LEASE) -> Iterator[None]:
    """Renew the run's lease ten times a `lease` from a thread of its own while the block runs; writes.

    A long extract is covered too; a run killed stops renewing, so its lock lapses a `lease` later.
    """
    stop = threading.Event()
    every = lease / 10

    def beat() -> None:
        while not stop.wait(every.total_seconds()):
            try:
                renew_lock(store, merchant, run_id)
            except RunInProgressError:
                return  # lost: the run's next request says so and stops it
            except SQLAlchemyError as error:  # a busy or flaky store: try again at the next beat
                LOG.warning("could not renew the run lease: %s", error)

    heart = threading.Thread(target=beat, name="run-lease", daemon=True)
    heart.start()
    try:
        yield
    finally:
        stop.set()
        heart.join(timeout=every.total_seconds() + 5)


def free_lock(store: StateStore, merchant: str) -> str:
    """Delete the merchant's run lock whoever holds it; says which run it freed, and if it may still run."""
    holder = _holder(store, merchant)
    if holder is None:
        return f"no run holds the lock of merchant {merchant}; nothing was changed"
    locks = state.run_locks
    with store.engine.begin() as conn:
        freed = conn.execute(
            delete(locks).where(locks.c.merchant == merchant, locks.c.run_id == holder.run_id)
        ).rowcount
    if freed == 0:
        return f"the lock of merchant {merchant} changed hands meanwhile; nothing was changed: unlock again"
    return (
        f"freed the lock of merchant {merchant} held by run {holder.run_id} ({holder.in_words()}); "
        f"{_whether_alive(holder)}"
    )


def _whether_alive(holder: LockHolder) -> str:
    """Whether the run that held a lock may still work, and what to do if it does; reads /proc."""
    process = holder.process
    if process is None or not of_this_host(process):
        return "if that run is still working, two runs may now send: stop it"
    gone = process_gone(process)
    if gone is not None:
        return f"{gone}, so no other run is sending"
    return f"its {process.in_words()} is still running: stop it, or two runs may now send"


LOCK_POLL_SECONDS = 5.0  # how often a run waiting for the merchant's lock tries again


def wait_for_lock(
    store: StateStore,
    merchant: str,
    run_id: str,
    lease: timedelta,
    wait: timedelta,
    waiting: Callable[[str], None],
    flow_run_id: str | None = None,
    ended: Callable[[str], bool] = never_known,
) -> TakenOver | None:
    """Take the merchant's run lock, trying again for up to `wait` while another run holds it (take_lock).

    `waiting` is told once, in words, which run it waits for. Raises RunInProgressError when the wait is
    over and the other run still holds the lock.
    """
    clock = store.clock
    deadline = clock.monotonic() + wait.total_seconds()
    told = False
    while True:
        try:
            return take_lock(store, merchant, run_id, lease, flow_run_id, ended)
        except RunInProgressError as busy:
            left = deadline - clock.monotonic()
            if left <= 0:
                if wait <= timedelta(0):
                    raise
                raise RunInProgressError(
                    f"this run waited {wait.total_seconds():g} s (SEQURA_LOCK_WAIT_SECONDS) for the lock of "
                    f"merchant {merchant} and stops without sending anything: {busy}"
                ) from None
            if not told:
                waiting(f"waiting up to {wait.total_seconds():g} s for the lock: {busy}")
                told = True
            clock.sleep(min(LOCK_POLL_SECONDS, left))
