"""Run locks: one run per merchant sends at a time; its lease lapses when the run dies."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from schemas import state
from schemas.state import RunStatus
from tasks.state.errors import RunInProgressError
from tasks.state.store import StateStore

LOG = logging.getLogger(__name__)


RUN_LEASE = timedelta(minutes=10)  # how long a run that stopped renewing its lease still blocks others


def take_lock(store: StateStore, merchant: str, run_id: str, lease: timedelta) -> str | None:
    """Take the merchant's run lock, or raise RunInProgressError naming the run that holds it.

    Taking it is one INSERT on a primary key, or one UPDATE of a lease that expired, so two runs starting
    at the same instant cannot both get it. A running run renews its lease while it works. Taking over a
    lapsed lease marks the run that held it crashed, and returns its Prefect flow run id, if any.
    """
    locks, runs = state.run_locks, state.runs
    moment = store.now()
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(locks).values(merchant=merchant, run_id=run_id, renewed_at=moment))
        return None
    except IntegrityError:
        pass
    with store.engine.begin() as conn:
        holder = conn.execute(
            select(locks.c.run_id, locks.c.renewed_at).where(locks.c.merchant == merchant)
        ).one()
        taken_over = conn.execute(
            update(locks)
            .where(
                locks.c.merchant == merchant,
                locks.c.run_id == holder.run_id,
                locks.c.renewed_at < moment - lease,
            )
            .values(run_id=run_id, renewed_at=moment)
        ).rowcount
        if taken_over == 1:
            conn.execute(
                update(runs)
                .where(runs.c.run_id == holder.run_id, runs.c.status == RunStatus.RUNNING)
                .values(
                    status=RunStatus.CRASHED,
                    finished_at=moment,
                    message=f"stopped renewing its lease at {holder.renewed_at:%Y-%m-%d %H:%M} UTC; "
                    f"run {run_id} took over",
                )
            )
            return conn.execute(select(runs.c.flow_run_id).where(runs.c.run_id == holder.run_id)).scalar()
    raise RunInProgressError(
        f"run {holder.run_id} for merchant {merchant} is still running (last seen "
        f"{holder.renewed_at:%Y-%m-%d %H:%M} UTC); try again when it ends "
        f"(a run that died stops blocking {lease.total_seconds():g} seconds after it was last seen, "
        "SEQURA_RUN_LEASE_SECONDS; `sequra-etl unlock` frees it at once)"
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
    """Delete the merchant's run lock whoever holds it; says which run it freed, in words."""
    locks = state.run_locks
    with store.engine.begin() as conn:
        holder = conn.execute(select(locks).where(locks.c.merchant == merchant)).first()
        if holder is None:
            return f"no run holds the lock of merchant {merchant}; nothing was changed"
        conn.execute(delete(locks).where(locks.c.merchant == merchant))
    return (
        f"freed the lock of merchant {merchant} held by run {holder.run_id} (last seen "
        f"{holder.renewed_at:%Y-%m-%d %H:%M} UTC); if that run is still working, two runs may now send"
    )


LOCK_POLL_SECONDS = 5.0  # how often a run waiting for the merchant's lock tries again


def wait_for_lock(
    store: StateStore,
    merchant: str,
    run_id: str,
    lease: timedelta,
    wait: timedelta,
    waiting: Callable[[str], None],
) -> str | None:
    """Take the merchant's run lock, trying again for up to `wait` while another run holds it.

    `waiting` is told once, in words, which run it waits for. Raises RunInProgressError when the wait is
    over and the other run still holds the lock.
    """
    clock = store.clock
    deadline = clock.monotonic() + wait.total_seconds()
    told = False
    while True:
        try:
            return take_lock(store, merchant, run_id, lease)
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
