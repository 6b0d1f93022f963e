"""State store: what SeQura acknowledged, per merchant and order; runs; quarantine; changes seen."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    Table,
    and_,
    bindparam,
    create_engine,
    delete,
    false,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from schemas import state
from schemas.corrections import AppliedFix
from schemas.reports import BuildResult, BuiltReport, Change, ClassifiedReport, QuarantinedOrder, Stage
from schemas.state import Marks
from tasks.chunks import in_chunks
from tasks.window import Window

LOG = logging.getLogger(__name__)
KEYS_PER_QUERY = 500
SENT_BY_US = "sequra-etl"
SENT_BY_MODULE = "php-module"
SENT_BY_ADOPTION = "adopted"  # recorded by `sequra-etl adopt` as SeQura's already, without sending
RUN_LEASE = timedelta(minutes=10)  # how long a run that stopped renewing its lease still blocks others
# What became of a change (order_changes.outcome); NULL means its update is still to be sent.
UPDATE_SENT, UPDATE_SUPERSEDED, UPDATE_REFUSED, UPDATE_UNKNOWN = "sent", "superseded", "refused", "unknown"
HELD_OUTCOMES = (UPDATE_REFUSED, UPDATE_UNKNOWN)


class StateStoreError(RuntimeError):
    """The state store cannot be opened or is newer than this code; the message says what to do."""


class LostStateStoreError(StateStoreError):
    """The state store holds nothing of a merchant that earlier runs delivered for: sending could repeat."""


class RunInProgressError(StateStoreError):
    """Another run for the same merchant is sending; two at once could send the same orders twice."""


@dataclass(frozen=True)
class RunCounts:
    """How many orders fell in each bucket of one run."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    quarantined: int = 0
    sent: int = 0
    updated: int = 0


def _create_version_1(conn: Connection) -> None:
    """Version 1: runs and their locks, snapshots, orders in flight, quarantine and changes."""
    state.metadata.create_all(
        conn,
        tables=[
            state.runs,
            state.run_locks,
            state.order_snapshots,
            state.quarantine,
            state.order_changes,
            state.in_flight,
        ],
    )


def _create_version_2(conn: Connection) -> None:
    """Version 2: runs keep their high-water marks; a run's chunks of order references."""
    _add_missing_columns(conn, state.runs, "marks")
    state.metadata.create_all(conn, tables=[state.run_chunks])


def _create_version_3(conn: Connection) -> None:
    """Version 3: runs count their order updates; each change keeps what became of it."""
    _add_missing_columns(conn, state.runs, "updated_count")
    _add_missing_columns(conn, state.order_changes, "outcome", "answered_at")
    for index in state.order_changes.indexes:
        index.create(conn, checkfirst=True)


def _add_missing_columns(conn: Connection, table: Table, *names: str) -> None:
    """ALTER TABLE ... ADD COLUMN for each of the declared columns `names` that the table lacks."""
    present = {column["name"] for column in inspect(conn).get_columns(table.name)}
    for name in names:
        if name in present:
            continue
        column = table.c[name]
        definition = f"{name} {column.type.compile(dialect=conn.dialect)}"
        if column.server_default is not None:
            definition += f" NOT NULL DEFAULT {column.server_default.arg}"  # type: ignore[attr-defined]
        conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {definition}"))


def _create_version_4(conn: Connection) -> None:
    """Version 4: the audit trail of the shop values reconciliations corrected."""
    state.metadata.create_all(conn, tables=[state.shop_corrections])


def _create_version_5(conn: Connection) -> None:
    """Version 5: each quarantined order counts the runs that tried it."""
    _add_missing_columns(conn, state.quarantine, "attempts")


MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _create_version_1,
    2: _create_version_2,
    3: _create_version_3,
    4: _create_version_4,
    5: _create_version_5,
}


def now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def open_state_store(url: str) -> Engine:
    """Connect to the state store, creating and migrating it on first use (a SQLite file and its folder)."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    try:
        migrate(engine)
    except SQLAlchemyError as error:
        raise StateStoreError(
            f"cannot open the state store: {error.orig or error}; check STATE_DB_URL"
        ) from None
    return engine


def check_writable(engine: Engine) -> None:
    """Raise StateStoreError naming STATE_DB_URL if the store cannot be written; writes nothing.

    An UPDATE that matches no row, rolled back, needs the same right as a real write.
    """
    version = state.schema_version
    try:
        with engine.connect() as conn, conn.begin() as transaction:
            conn.execute(update(version).where(false()).values(version=version.c.version))
            transaction.rollback()
    except SQLAlchemyError as error:
        raise StateStoreError(
            f"the state store cannot be written: {getattr(error, 'orig', None) or error}; check STATE_DB_URL "
            "(a run records there what it sends, so it does not start)"
        ) from None


def connect_state_store(url: str) -> Engine:
    """Connect to a state store the run has already opened (and migrated) with open_state_store."""
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> int:
    """Apply the migrations the store has not had yet, in order, and return its version; writes the schema."""
    with engine.begin() as conn:
        state.metadata.create_all(conn, tables=[state.schema_version])
        current = conn.execute(select(func.max(state.schema_version.c.version))).scalar() or 0
        if current > state.STATE_SCHEMA_VERSION:
            raise StateStoreError(
                f"the state store is at version {current}, newer than this code "
                f"({state.STATE_SCHEMA_VERSION}); upgrade sequra-etl"
            )
        for version in sorted(v for v in MIGRATIONS if v > current):
            MIGRATIONS[version](conn)
            conn.execute(insert(state.schema_version).values(version=version, applied_at=now()))
    return max(current, state.STATE_SCHEMA_VERSION)


def state_tables(engine: Engine) -> list[str]:
    """Names of the tables in the store, for checks and the README."""
    return sorted(inspect(engine).get_table_names())


def last_successful_until(engine: Engine, merchant: str) -> datetime | None:
    """Where scheduled runs go on from: the newest until of a successful run that left no gap behind it.

    A backfill of some past or later window that starts after that point does not move it.
    """
    runs = state.runs
    query = select(func.max(runs.c.until)).where(
        runs.c.merchant == merchant,
        runs.c.status == "succeeded",
        runs.c.dry_run.is_(False),
        runs.c.continues.is_(True),
    )
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def _rows_of(
    conn: Connection, table: Table, merchant: str, key: str, keys: Sequence[str], *columns: str
) -> list[Any]:
    """The rows of `merchant` in `table` whose `key` is one of `keys`, with `key` and `columns`."""
    rows: list[Any] = []
    for chunk in in_chunks(sorted(set(keys)), KEYS_PER_QUERY):
        rows += conn.execute(
            select(table.c[key], *(table.c[name] for name in columns)).where(
                table.c.merchant == merchant, table.c[key].in_(chunk)
            )
        ).all()
    return rows


def sent_fingerprints(engine: Engine, merchant: str, order_refs: Sequence[str]) -> dict[str, str]:
    """The fingerprint last acknowledged by SeQura for each of `order_refs` that has one."""
    with engine.connect() as conn:
        rows = _rows_of(conn, state.order_snapshots, merchant, "order_ref_1", order_refs, "fingerprint")
    return {row.order_ref_1: row.fingerprint for row in rows}


def snapshot_payloads(engine: Engine, merchant: str, order_refs: Sequence[str]) -> dict[str, bytes]:
    """The report last acknowledged by SeQura (or kept as the PHP module's baseline) per order_ref_1."""
    with engine.connect() as conn:
        rows = _rows_of(conn, state.order_snapshots, merchant, "order_ref_1", order_refs, "payload")
    return {row.order_ref_1: row.payload.encode("utf-8") for row in rows}


def references_to_retry(engine: Engine, merchant: str) -> list[str]:
    """Shop references to read again whatever the window.

    Quarantined and not resolved (except updates SeQura refused, which wait for the order to change or to
    be released), still in flight, or changed with an update not yet sent.
    """
    q, flight, changes = state.quarantine, state.in_flight, state.order_changes
    with engine.connect() as conn:
        quarantined = conn.execute(
            select(q.c.reference).where(
                q.c.merchant == merchant, q.c.resolved_at.is_(None), q.c.stage != str(Stage.UPDATE)
            )
        ).scalars()
        in_flight = conn.execute(select(flight.c.reference).where(flight.c.merchant == merchant)).scalars()
        pending = conn.execute(
            select(changes.c.reference).where(changes.c.merchant == merchant, changes.c.outcome.is_(None))
        ).scalars()
        return sorted({*quarantined, *in_flight, *pending})


def _take_lock(engine: Engine, merchant: str, run_id: str, lease: timedelta) -> str | None:
    """Take the merchant's run lock, or raise RunInProgressError naming the run that holds it.

    Taking it is one INSERT on a primary key, or one UPDATE of a lease that expired, so two runs starting
    at the same instant cannot both get it. A running run renews its lease while it works. Taking over a
    lapsed lease marks the run that held it crashed, and returns its Prefect flow run id, if any.
    """
    locks, runs = state.run_locks, state.runs
    moment = now()
    try:
        with engine.begin() as conn:
            conn.execute(insert(locks).values(merchant=merchant, run_id=run_id, renewed_at=moment))
        return None
    except IntegrityError:
        pass
    with engine.begin() as conn:
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
                .where(runs.c.run_id == holder.run_id, runs.c.status == "running")
                .values(
                    status="crashed",
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


def renew_lock(engine: Engine, merchant: str, run_id: str) -> None:
    """Tell other runs this one is alive: push its lease forward; writes the run_locks row.

    Raises RunInProgressError when the run no longer holds the lock (its lease lapsed and another run took
    over, or `sequra-etl unlock` freed it): it must stop before it sends anything more.
    """
    locks = state.run_locks
    with engine.begin() as conn:
        held = conn.execute(
            update(locks)
            .where(locks.c.merchant == merchant, locks.c.run_id == run_id)
            .values(renewed_at=now())
        ).rowcount
    if held == 0:
        raise RunInProgressError(
            f"run {run_id} no longer holds the lock of merchant {merchant} (its lease lapsed and another "
            "run took over, or `sequra-etl unlock` freed it); it stops here so that nothing is sent twice"
        )


@contextmanager
def lease_kept(url: str, merchant: str, run_id: str, lease: timedelta = RUN_LEASE) -> Iterator[None]:
    """Renew the run's lease ten times a `lease` from a thread of its own while the block runs; writes.

    A long extract is covered too; a run killed stops renewing, so its lock lapses a `lease` later.
    """
    stop = threading.Event()
    every = lease / 10

    def beat() -> None:
        engine = connect_state_store(url)
        try:
            while not stop.wait(every.total_seconds()):
                try:
                    renew_lock(engine, merchant, run_id)
                except RunInProgressError:
                    return  # lost: the run's next request says so and stops it
                except SQLAlchemyError as error:  # a busy or flaky store: try again at the next beat
                    LOG.warning("could not renew the run lease: %s", error)
        finally:
            engine.dispose()

    heart = threading.Thread(target=beat, name="run-lease", daemon=True)
    heart.start()
    try:
        yield
    finally:
        stop.set()
        heart.join(timeout=every.total_seconds() + 5)


def free_lock(engine: Engine, merchant: str) -> str:
    """Delete the merchant's run lock whoever holds it; says which run it freed, in words."""
    locks = state.run_locks
    with engine.begin() as conn:
        holder = conn.execute(select(locks).where(locks.c.merchant == merchant)).first()
        if holder is None:
            return f"no run holds the lock of merchant {merchant}; nothing was changed"
        conn.execute(delete(locks).where(locks.c.merchant == merchant))
    return (
        f"freed the lock of merchant {merchant} held by run {holder.run_id} (last seen "
        f"{holder.renewed_at:%Y-%m-%d %H:%M} UTC); if that run is still working, two runs may now send"
    )


LOCK_POLL_SECONDS = 5.0  # how often a run waiting for the merchant's lock tries again


def _wait_for_lock(
    engine: Engine,
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
    deadline = time.monotonic() + wait.total_seconds()
    told = False
    while True:
        try:
            return _take_lock(engine, merchant, run_id, lease)
        except RunInProgressError as busy:
            left = deadline - time.monotonic()
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
            time.sleep(min(LOCK_POLL_SECONDS, left))


def start_run(
    engine: Engine,
    run_id: str,
    merchant: str,
    window: Window,
    *,
    dry_run: bool,
    flow_run_id: str | None,
    lease: timedelta = RUN_LEASE,
    wait: timedelta = timedelta(0),
    waiting: Callable[[str], None] = LOG.info,
) -> str | None:
    """Take the merchant's run lock, waiting up to `wait` for another run, and record the run's start.

    Writes one runs row. Returns the Prefect flow run id of a run found dead and taken over, for the flow
    to mark it crashed.
    """
    dead = _wait_for_lock(engine, merchant, run_id, lease, wait, waiting)
    with engine.begin() as conn:
        conn.execute(
            insert(state.runs).values(
                run_id=run_id,
                flow_run_id=flow_run_id,
                merchant=merchant,
                since=window.since,
                until=window.until,
                continues=window.continues,
                dry_run=dry_run,
                status="running",
                started_at=now(),
                new_count=0,
                changed_count=0,
                unchanged_count=0,
                quarantined_count=0,
                sent_count=0,
            )
        )
    return dead


def _payload_json(built: BuiltReport) -> str:
    """The report as stored: the JSON that was (or would be) sent."""
    return built.payload.decode("utf-8")


def _existing_keys(conn: Connection, table: Table, merchant: str, key: str, keys: Sequence[str]) -> set[str]:
    """Which of `keys` already have a row of `merchant` in `table`."""
    return {row[0] for row in _rows_of(conn, table, merchant, key, keys)}


def _upsert(
    conn: Connection,
    table: Table,
    merchant: str,
    key: str,
    rows: Sequence[dict[str, Any]],
    on_insert: dict[str, Any],
) -> None:
    """Update the rows of `merchant` whose `key` exists, insert the others with `on_insert` added.

    Two statements whatever the number of rows (executemany), so a chunk of thousands costs two round trips.
    """
    existing = _existing_keys(conn, table, merchant, key, [row[key] for row in rows])
    updates = [{**row, "upsert_key": row[key]} for row in rows if row[key] in existing]
    inserts = [{"merchant": merchant, **on_insert, **row} for row in rows if row[key] not in existing]
    if updates:
        columns = {name: bindparam(name) for name in rows[0]}
        conn.execute(
            update(table)
            .where(table.c.merchant == merchant, table.c[key] == bindparam("upsert_key"))
            .values(columns),
            updates,
        )
    if inserts:
        conn.execute(insert(table), inserts)


def _resolve(conn: Connection, merchant: str, references: Sequence[str], moment: datetime) -> None:
    """Mark the open quarantine entries of `references` resolved."""
    q = state.quarantine
    for chunk in in_chunks(sorted(set(references)), KEYS_PER_QUERY):
        conn.execute(
            update(q)
            .where(q.c.merchant == merchant, q.c.reference.in_(chunk), q.c.resolved_at.is_(None))
            .values(resolved_at=moment)
        )


def _keep_snapshots(
    conn: Connection,
    run_id: str,
    merchant: str,
    reports: Sequence[BuiltReport],
    moment: datetime,
    sent_by: str,
) -> None:
    """Upsert the snapshots of `reports` as SeQura holds them at `moment`."""
    rows = [
        {
            "order_ref_1": built.order_ref_1,
            "reference": built.reference,
            "fingerprint": built.fingerprint,
            "payload": _payload_json(built),
            "last_sent_at": moment,
            "run_id": run_id,
            "sent_by": sent_by,
        }
        for built in reports
    ]
    _upsert(conn, state.order_snapshots, merchant, "order_ref_1", rows, {"first_sent_at": moment})


def record_sent(engine: Engine, run_id: str, merchant: str, sent: Sequence[BuiltReport]) -> None:
    """Keep what SeQura acknowledged, in one transaction.

    Upserts the snapshots, clears them from in_flight, resolves their quarantine and counts them on the run.
    """
    runs = state.runs
    moment = now()
    with engine.begin() as conn:
        _keep_snapshots(conn, run_id, merchant, sent, moment, SENT_BY_US)
        _forget_in_flight(conn, merchant, [built.order_ref_1 for built in sent])
        _resolve(conn, merchant, [built.reference for built in sent], moment)
        conn.execute(
            update(runs).where(runs.c.run_id == run_id).values(sent_count=runs.c.sent_count + len(sent))
        )


def record_quarantine(
    engine: Engine, run_id: str, merchant: str, quarantined: Sequence[QuarantinedOrder]
) -> None:
    """Upsert the quarantined orders with their latest reason; reopens an entry resolved before."""
    with engine.begin() as conn:
        _quarantine(conn, run_id, merchant, quarantined, now())


def _quarantine(
    conn: Connection, run_id: str, merchant: str, quarantined: Sequence[QuarantinedOrder], moment: datetime
) -> None:
    """record_quarantine within a transaction."""
    rows = [
        {
            "reference": entry.reference,
            "order_ref_1": entry.order_ref_1,
            "id_orders": ",".join(map(str, entry.id_orders)),
            "stage": str(entry.stage),
            "reason": entry.reason,
            "last_seen_at": moment,
            "run_id": run_id,
            "resolved_at": None,
        }
        for entry in quarantined
    ]
    q = state.quarantine
    tried_before = _existing_keys(conn, q, merchant, "reference", [row["reference"] for row in rows])
    _upsert(conn, q, merchant, "reference", rows, {"first_seen_at": moment})
    for batch in in_chunks(sorted(tried_before), 1000):
        conn.execute(
            update(q)
            .where(q.c.merchant == merchant, q.c.reference.in_(batch))
            .values(attempts=q.c.attempts + 1)
        )


def record_changes(
    engine: Engine, run_id: str, merchant: str, changed: Sequence[ClassifiedReport]
) -> set[str]:
    """Keep each change of a reported order as an update to send; returns the orders to hold back.

    A change seen for the first time, or seen again after the order moved on, is pending (outcome NULL)
    until SeQura answers its update. One SeQura refused (409) or did not know (404), from the same
    snapshot, is held back: sending it again would meet the same answer.
    """
    changes = state.order_changes
    moment = now()
    with engine.begin() as conn:
        rows = _rows_of(
            conn,
            changes,
            merchant,
            "order_ref_1",
            [item.built.order_ref_1 for item in changed],
            "fingerprint",
            "previous_fingerprint",
            "outcome",
        )
        known = {(row.order_ref_1, row.fingerprint): row for row in rows}
        held: set[str] = set()
        fresh, again = [], []
        for item in changed:
            row = known.get((item.built.order_ref_1, item.built.fingerprint))
            values = {
                "order_ref_1": item.built.order_ref_1,
                "reference": item.built.reference,
                "previous_fingerprint": item.previous_fingerprint or "",
                "fingerprint": item.built.fingerprint,
                "payload": _payload_json(item.built),
                "detected_at": moment,
                "run_id": run_id,
                "outcome": None,
                "answered_at": None,
            }
            if row is None:
                fresh.append({"merchant": merchant, **values})
            elif row.outcome in HELD_OUTCOMES and row.previous_fingerprint == values["previous_fingerprint"]:
                held.add(item.built.order_ref_1)
            elif row.outcome is not None:
                again.append(
                    {**values, "key_ref": values["order_ref_1"], "key_fingerprint": values["fingerprint"]}
                )
        if fresh:
            conn.execute(insert(changes), fresh)
        if again:
            conn.execute(
                update(changes)
                .where(
                    changes.c.merchant == merchant,
                    changes.c.order_ref_1 == bindparam("key_ref"),
                    changes.c.fingerprint == bindparam("key_fingerprint"),
                )
                .values({name: bindparam(name) for name in again[0] if not name.startswith("key_")}),
                again,
            )
    return held


def _settle_changes(
    conn: Connection,
    merchant: str,
    references: Sequence[str],
    outcome: str,
    moment: datetime,
    outcomes: Sequence[str | None] = (None,),
) -> None:
    """Give the changes of the orders of `references` that have one of `outcomes` (pending) a new one."""
    changes = state.order_changes
    current = or_(
        *(changes.c.outcome.is_(None) if was is None else changes.c.outcome == was for was in outcomes)
    )
    for chunk in in_chunks(sorted(set(references)), KEYS_PER_QUERY):
        conn.execute(
            update(changes)
            .where(changes.c.merchant == merchant, changes.c.reference.in_(chunk), current)
            .values(outcome=outcome, answered_at=moment)
        )


def record_updated(engine: Engine, run_id: str, merchant: str, updated: Sequence[BuiltReport]) -> None:
    """Keep what SeQura accepted as order updates, in one transaction with the run's count.

    Replaces the snapshots, settles the orders' pending changes as sent and resolves their quarantine.
    """
    runs = state.runs
    moment = now()
    with engine.begin() as conn:
        _keep_snapshots(conn, run_id, merchant, updated, moment, SENT_BY_US)
        _settle_changes(conn, merchant, [built.reference for built in updated], UPDATE_SENT, moment)
        _resolve(conn, merchant, [built.reference for built in updated], moment)
        conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(updated_count=runs.c.updated_count + len(updated))
        )


def record_update_refused(
    engine: Engine, run_id: str, merchant: str, refused: QuarantinedOrder, outcome: str
) -> None:
    """Keep an update SeQura refused (409) or could not place (404): change held, order quarantined."""
    moment = now()
    with engine.begin() as conn:
        _settle_changes(conn, merchant, [refused.reference], outcome, moment)
        _quarantine(conn, run_id, merchant, [refused], moment)


def report_again(engine: Engine, merchant: str, order_refs: Sequence[str]) -> list[str]:
    """Forget, for orders SeQura said it does not know (404), that it holds them; writes the store.

    The next run then reports them as new. Returns the orders it applied to.
    """
    changes, q = state.order_changes, state.quarantine
    moment = now()
    with engine.begin() as conn:
        rows = _rows_of(conn, changes, merchant, "order_ref_1", order_refs, "reference", "outcome")
        unknown = {row.order_ref_1: row.reference for row in rows if row.outcome == UPDATE_UNKNOWN}
        for chunk in in_chunks(sorted(unknown), KEYS_PER_QUERY):
            snapshots = state.order_snapshots
            conn.execute(
                delete(snapshots).where(snapshots.c.merchant == merchant, snapshots.c.order_ref_1.in_(chunk))
            )
        _settle_changes(
            conn, merchant, sorted(unknown.values()), UPDATE_SUPERSEDED, moment, outcomes=(UPDATE_UNKNOWN,)
        )
        for chunk in in_chunks(sorted(unknown.values()), KEYS_PER_QUERY):
            conn.execute(
                update(q)
                .where(q.c.merchant == merchant, q.c.reference.in_(chunk), q.c.resolved_at.is_(None))
                .values(stage=str(Stage.LOAD), reason="released to be reported again", last_seen_at=moment)
            )
    return sorted(unknown)


def release_refused_updates(engine: Engine, merchant: str, order_refs: Sequence[str]) -> list[str]:
    """Let the next run send again the updates SeQura refused for `order_refs`; returns those released."""
    changes = state.order_changes
    with engine.begin() as conn:
        released = sorted(
            {
                row.order_ref_1
                for row in _rows_of(conn, changes, merchant, "order_ref_1", order_refs, "outcome")
                if row.outcome in HELD_OUTCOMES
            }
        )
        for chunk in in_chunks(released, KEYS_PER_QUERY):
            conn.execute(
                update(changes)
                .where(
                    changes.c.merchant == merchant,
                    changes.c.order_ref_1.in_(chunk),
                    changes.c.outcome.in_(HELD_OUTCOMES),
                )
                .values(outcome=None, answered_at=None)
            )
    return released


def finish_run(
    engine: Engine, run_id: str, status: str, counts: RunCounts | None = None, message: str | None = None
) -> None:
    """Close the run record with its outcome and counts (`sent` as record_sent counted it); free the lock."""
    runs = state.runs
    counts = counts or RunCounts()
    with engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(
                status=status,
                finished_at=now(),
                new_count=counts.new,
                changed_count=counts.changed,
                unchanged_count=counts.unchanged,
                quarantined_count=counts.quarantined,
                message=message,
            )
        )
        conn.execute(delete(state.run_locks).where(state.run_locks.c.run_id == run_id))


@dataclass(frozen=True)
class Findings:
    """What the state store says of a chunk's changed and unchanged orders before anything is sent."""

    held: set[str]  # order_ref_1 of changed orders whose update SeQura refused as it stands
    repeat: set[str]  # order_ref_1 of unchanged orders whose last update may have reached SeQura unanswered


def record_findings(
    engine: Engine,
    run_id: str,
    merchant: str,
    built: BuildResult,
    classified: Sequence[ClassifiedReport],
    retried: Sequence[str],
) -> Findings:
    """Before sending: keep the build's quarantine and the changes seen, and close what needs no retry.

    A quarantined reference, or one with a change waiting, needs no retry once it builds and is what SeQura
    holds, or once it is no longer a shipped SeQura order of this merchant (it left the extract, or belongs
    to another merchant). An order back to what SeQura last acknowledged closes its quarantine and its
    refused updates; if an update of it is still waiting, that update may have reached SeQura without an
    answer, so the order is sent again as it stands (`repeat`). Orders the PHP module reported get their
    first snapshot, so later changes to them show as CHANGED.
    """
    record_quarantine(engine, run_id, merchant, built.quarantined)
    held = record_changes(
        engine, run_id, merchant, [item for item in classified if item.change is Change.CHANGED]
    )
    adopt_module_reports(engine, run_id, merchant, classified)
    unchanged = {item.built.reference: item.built for item in classified if item.change is Change.UNCHANGED}
    still_open = {entry.reference for entry in built.quarantined} | {
        item.built.reference for item in classified if item.change is not Change.UNCHANGED
    }
    moment = now()
    with engine.begin() as conn:
        changes = _rows_of(conn, state.order_changes, merchant, "reference", list(unchanged), "outcome")
        waiting = {row.reference for row in changes if row.outcome is None}
        unknown = {row.reference for row in changes if row.outcome == UPDATE_UNKNOWN}  # SeQura holds nothing
        refused = sorted({row.reference for row in changes if row.outcome == UPDATE_REFUSED})
        _settle_changes(conn, merchant, refused, UPDATE_SUPERSEDED, moment, outcomes=(UPDATE_REFUSED,))
        gone = set(retried) - still_open - set(unchanged)
        _settle_changes(conn, merchant, sorted(gone), UPDATE_SUPERSEDED, moment)
        _resolve(conn, merchant, sorted((gone | set(unchanged)) - waiting - unknown), moment)
    return Findings(held, {unchanged[reference].order_ref_1 for reference in waiting})


def _forget_in_flight(conn: Connection, merchant: str, order_refs: Sequence[str]) -> None:
    """Delete the in_flight rows of `order_refs`."""
    flight = state.in_flight
    for chunk in in_chunks(sorted(set(order_refs)), KEYS_PER_QUERY):
        conn.execute(delete(flight).where(flight.c.merchant == merchant, flight.c.order_ref_1.in_(chunk)))


@dataclass(frozen=True)
class StateLedger:
    """The loader's ledger in the state store: in_flight before a POST, snapshots after its 2xx."""

    engine: Engine
    run_id: str
    merchant: str

    def sending(self, batch: Sequence[BuiltReport]) -> None:
        """Note the batch in in_flight before it is POSTed, so a crash cannot hide that it may have gone.

        Raises RunInProgressError, noting nothing, if the run no longer holds its lock.
        """
        renew_lock(self.engine, self.merchant, self.run_id)
        moment = now()
        rows = [
            {
                "order_ref_1": built.order_ref_1,
                "reference": built.reference,
                "fingerprint": built.fingerprint,
                "payload": _payload_json(built),
                "sending_at": moment,
                "run_id": self.run_id,
            }
            for built in batch
        ]
        with self.engine.begin() as conn:
            _upsert(conn, state.in_flight, self.merchant, "order_ref_1", rows, {})

    def sent(self, batch: Sequence[BuiltReport]) -> None:
        """Record the acknowledged batch (snapshots, in one transaction with the run count)."""
        record_sent(self.engine, self.run_id, self.merchant, batch)

    def not_sent(self, batch: Sequence[BuiltReport]) -> None:
        """Forget the batch SeQura answered without accepting."""
        with self.engine.begin() as conn:
            _forget_in_flight(conn, self.merchant, [built.order_ref_1 for built in batch])


def uncertain_deliveries(engine: Engine, merchant: str, order_refs: Sequence[str]) -> dict[str, str]:
    """Orders an earlier run POSTed without hearing back, each with when and by which run."""
    with engine.connect() as conn:
        rows = _rows_of(conn, state.in_flight, merchant, "order_ref_1", order_refs, "run_id", "sending_at")
    return {
        row.order_ref_1: f"run {row.run_id} sent it at {row.sending_at:%Y-%m-%d %H:%M} UTC" for row in rows
    }


def in_flight_since(engine: Engine, merchant: str, order_refs: Sequence[str]) -> dict[str, datetime]:
    """When each of `order_refs` that is in flight was last sent."""
    with engine.connect() as conn:
        rows = _rows_of(conn, state.in_flight, merchant, "order_ref_1", order_refs, "sending_at")
    return {row.order_ref_1: row.sending_at for row in rows}


def in_flight_of_run(engine: Engine, merchant: str, run_id: str) -> list[str]:
    """The orders a given run left in flight (sent without a clear answer)."""
    flight = state.in_flight
    with engine.connect() as conn:
        return sorted(
            conn.execute(
                select(flight.c.order_ref_1).where(flight.c.merchant == merchant, flight.c.run_id == run_id)
            ).scalars()
        )


def release_in_flight(engine: Engine, merchant: str, order_refs: Sequence[str], *, delivered: bool) -> str:
    """Settle orders held as maybe delivered: keep them as sent, or let the next run send them; writes."""
    flight = state.in_flight
    with engine.begin() as conn:
        rows = _rows_of(
            conn,
            flight,
            merchant,
            "order_ref_1",
            order_refs,
            "reference",
            "fingerprint",
            "payload",
            "sending_at",
            "run_id",
        )
        unknown = sorted(set(order_refs) - {row.order_ref_1 for row in rows})
        if unknown or not rows:
            raise StateStoreError(
                f"not held as maybe delivered for merchant {merchant}: "
                f"{', '.join(unknown) or 'no order given'}; nothing was changed"
            )
        if delivered:
            for row in rows:
                snapshot = {
                    "order_ref_1": row.order_ref_1,
                    "reference": row.reference,
                    "fingerprint": row.fingerprint,
                    "payload": row.payload,
                    "last_sent_at": row.sending_at,
                    "run_id": row.run_id,
                    "sent_by": SENT_BY_US,
                }
                _upsert(
                    conn,
                    state.order_snapshots,
                    merchant,
                    "order_ref_1",
                    [snapshot],
                    {"first_sent_at": row.sending_at},
                )
                _confirm_by_update(conn, merchant, row)
            _resolve(conn, merchant, [row.reference for row in rows], now())
        _forget_in_flight(conn, merchant, order_refs)
    settled = ", ".join(sorted(row.order_ref_1 for row in rows))
    if delivered:
        return (
            f"recorded as delivered to SeQura, not to be reported again: {settled}; the next run sends "
            "each as an order update of what the shop shows then, which also catches changes made meanwhile"
        )
    return f"released, the next run sends them: {settled}"


def _confirm_by_update(conn: Connection, merchant: str, held: Any) -> None:
    """Leave an order held in flight waiting as a change, so the next run sends it as an order update.

    While it was held its changes were not recorded; an update carries the order as the shop shows it
    then, and is harmless if SeQura already holds the same.
    """
    changes = state.order_changes
    conn.execute(
        delete(changes).where(
            changes.c.merchant == merchant,
            changes.c.order_ref_1 == held.order_ref_1,
            changes.c.fingerprint == held.fingerprint,
        )
    )
    conn.execute(
        insert(changes).values(
            merchant=merchant,
            order_ref_1=held.order_ref_1,
            reference=held.reference,
            previous_fingerprint=held.fingerprint,
            fingerprint=held.fingerprint,
            payload=held.payload,
            detected_at=now(),
            run_id=held.run_id,
        )
    )


def adopt_module_reports(
    engine: Engine, run_id: str, merchant: str, classified: Sequence[ClassifiedReport]
) -> None:
    """Keep, as their baseline, the orders the PHP module reported that have no snapshot yet; writes them."""
    adopted = [
        item.built
        for item in classified
        if item.built.reported_by_module and item.previous_fingerprint is None
    ]
    if not adopted:
        return
    moment = now()
    with engine.begin() as conn:
        _keep_snapshots(conn, run_id, merchant, adopted, moment, SENT_BY_MODULE)


def record_adopted(engine: Engine, run_id: str, merchant: str, reports: Sequence[BuiltReport]) -> None:
    """Keep, as their baseline, orders SeQura already has although the store lost them; writes snapshots."""
    if reports:
        with engine.begin() as conn:
            _keep_snapshots(conn, run_id, merchant, reports, now(), SENT_BY_ADOPTION)


def has_history(engine: Engine, merchant: str) -> bool:
    """Whether the store holds a snapshot of the merchant, or a run of it that succeeded."""
    runs = state.runs
    with engine.connect() as conn:
        run = conn.execute(
            select(runs.c.run_id).where(runs.c.merchant == merchant, runs.c.status == "succeeded").limit(1)
        )
        if run.first() is not None:
            return True
        snapshot = conn.execute(
            select(state.order_snapshots.c.order_ref_1)
            .where(state.order_snapshots.c.merchant == merchant)
            .limit(1)
        )
        return snapshot.first() is not None


def release_orders(
    engine: Engine,
    merchant: str,
    order_refs: Sequence[str],
    *,
    run_id: str | None = None,
    resend: bool = False,
) -> list[str]:
    """Settle held orders and send refused updates again; what was done, one line each; writes the store.

    Orders held because their report got no answer (given, or all of `run_id`'s) are recorded as SeQura's
    and confirmed by an order update, or with `resend` reported again; refused order updates are sent again.
    """
    lines = []
    if resend:
        updates = report_again(engine, merchant, order_refs)
        if updates:
            lines.append(f"released, the next run reports them again as new: {', '.join(updates)}")
    else:
        updates = release_refused_updates(engine, merchant, order_refs)
        if updates:
            lines.append(f"released, the next run sends their order updates again: {', '.join(updates)}")
    held = [ref for ref in order_refs if ref not in updates] + (
        in_flight_of_run(engine, merchant, run_id) if run_id else []
    )
    if held or not updates:
        lines.append(release_in_flight(engine, merchant, held, delivered=not resend))
    return lines


def recorded_flow_runs(engine: Engine, merchant: str) -> set[str]:
    """The Prefect flow runs of the merchant's runs this store recorded, whatever became of them."""
    runs = state.runs
    with engine.connect() as conn:
        found = conn.execute(
            select(runs.c.flow_run_id).where(runs.c.merchant == merchant, runs.c.flow_run_id.is_not(None))
        ).scalars()
        return set(found)


def store_chunks(
    engine: Engine, run_id: str, references: Iterable[Sequence[str]], chunk_size: int
) -> tuple[int, int]:
    """Keep the run's order references in chunks of `chunk_size` as they come; returns (chunks, references).

    The references stay out of Prefect (a task receives a chunk's number, never the window's references)
    and out of memory: a chunk is written as soon as it is full.
    """
    chunks = count = 0
    pending: list[str] = []

    def write(chunk: Sequence[str]) -> None:
        nonlocal chunks
        with engine.begin() as conn:
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


def chunk_references(engine: Engine, run_id: str, chunk: int) -> list[str]:
    """The order references of one chunk of a run."""
    chunks = state.run_chunks
    with engine.connect() as conn:
        stored = conn.execute(
            select(chunks.c.order_references).where(chunks.c.run_id == run_id, chunks.c.chunk == chunk)
        ).scalar_one()
    return stored.split("\n")


def forget_chunks(engine: Engine, run_id: str) -> None:
    """Delete a finished run's chunks of references."""
    with engine.begin() as conn:
        conn.execute(delete(state.run_chunks).where(state.run_chunks.c.run_id == run_id))


def record_marks(engine: Engine, run_id: str, marks: Marks) -> None:
    """Keep on the run the high-water marks the next scheduled run reads above, once this one succeeds."""
    runs = state.runs
    with engine.begin() as conn:
        conn.execute(
            update(runs).where(runs.c.run_id == run_id).values(marks=json.dumps(marks, sort_keys=True))
        )


def last_marks(engine: Engine, merchant: str) -> Marks | None:
    """The high-water marks of the run scheduled runs go on from (as last_successful_until), if any."""
    runs = state.runs
    query = (
        select(runs.c.marks)
        .where(
            runs.c.merchant == merchant,
            runs.c.status == "succeeded",
            runs.c.dry_run.is_(False),
            runs.c.continues.is_(True),
        )
        .order_by(runs.c.until.desc(), runs.c.finished_at.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        stored = conn.execute(query).scalar()
    return {str(name): int(mark) for name, mark in json.loads(stored).items()} if stored else None


def reporting_outlook(engine: Engine, merchant: str, order_refs: Sequence[str]) -> dict[str, str]:
    """What would next send each order's shop data to SeQura: its delivery report, or a waiting order update.

    Orders reported with nothing waiting are left out: only a later change in the shop would send them.
    """
    changes = state.order_changes
    with engine.connect() as conn:
        reported = {
            row[0] for row in _rows_of(conn, state.order_snapshots, merchant, "order_ref_1", order_refs)
        }
        waiting = {
            row.order_ref_1
            for row in _rows_of(conn, changes, merchant, "order_ref_1", order_refs, "outcome")
            if row.outcome in (None, "refused", "unknown")
        }
        in_flight = {row[0] for row in _rows_of(conn, state.in_flight, merchant, "order_ref_1", order_refs)}
    outlook = {ref: "order update" for ref in order_refs if ref in waiting | in_flight}
    return outlook | {ref: "delivery report" for ref in order_refs if ref not in reported | in_flight}


def record_shop_corrections(
    engine: Engine, run_id: str, merchant: str, batch: str, applied: Sequence[AppliedFix]
) -> None:
    """Keep, as pending, what one order's --apply transaction is about to change; writes shop_corrections."""
    if not applied:
        return
    moment = now()
    with engine.begin() as conn:
        conn.execute(
            insert(state.shop_corrections),
            [
                {
                    "run_id": run_id,
                    "merchant": merchant,
                    "order_ref_1": fix.order_reference,
                    "id_order": fix.id_order,
                    "record": fix.record,
                    "field": fix.field,
                    "shop_table": fix.shop_table,
                    "row_before": fix.row_before,
                    "row_after": fix.row_after,
                    "before_value": fix.before,
                    "after_value": fix.after,
                    "applied_at": moment,
                    "status": "pending",
                    "batch": batch,
                }
                for fix in applied
            ],
        )


def settle_shop_corrections(engine: Engine, batch: str, *, committed: bool) -> None:
    """Mark a batch of shop corrections applied once the shop committed it, or delete it; writes the store."""
    table = state.shop_corrections
    with engine.begin() as conn:
        if committed:
            conn.execute(
                update(table).where(table.c.batch == batch).values(status="applied", applied_at=now())
            )
        else:
            conn.execute(delete(table).where(table.c.batch == batch))


@dataclass(frozen=True)
class WaitingOrder:
    """An order still in quarantine: why, since when, and how many runs have tried it again since."""

    order_ref_1: str
    id_orders: str
    stage: Stage
    reason: str
    first_seen_at: datetime
    retried: int


def open_quarantine(engine: Engine, merchant: str, limit: int) -> tuple[list[WaitingOrder], int]:
    """The merchant's orders still in quarantine, oldest first (at most `limit`), and how many there are."""
    q = state.quarantine
    waiting = and_(q.c.merchant == merchant, q.c.resolved_at.is_(None))
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(q).where(waiting)).scalar_one()
        rows = conn.execute(
            select(q).where(waiting).order_by(q.c.first_seen_at, q.c.reference).limit(limit)
        ).all()
    return [
        WaitingOrder(
            row.order_ref_1,
            row.id_orders.replace(",", ", "),
            Stage(row.stage),
            row.reason,
            row.first_seen_at,
            row.attempts - 1,
        )
        for row in rows
    ], total


def lapsed_run(
    engine: Engine, flow_run_id: str, lease: timedelta, running_for: timedelta, patience: timedelta | None
) -> str | None:
    """Why the run of a Prefect flow run is dead, or None if it may be alive; reads the store.

    Dead: its newest run stopped renewing its lease, or it has been running longer than `patience` (None:
    for ever) without taking its merchant's lock. A flow run run again has a row per attempt.
    """
    runs, locks = state.runs, state.run_locks
    with engine.connect() as conn:
        run = conn.execute(
            select(runs.c.run_id, runs.c.merchant, runs.c.status)
            .where(runs.c.flow_run_id == flow_run_id)
            .order_by(runs.c.started_at.desc())
            .limit(1)
        ).first()
        if run is None:
            if patience is not None and running_for > patience:
                minutes = running_for.total_seconds() / 60
                return f"it ran {minutes:.0f} minutes without taking its merchant's lock"
            return None
        if run.status not in ("running", "crashed"):
            return None
        renewed = conn.execute(
            select(locks.c.renewed_at).where(locks.c.merchant == run.merchant, locks.c.run_id == run.run_id)
        ).scalar()
    if run.status == "crashed" or renewed is None or renewed < now() - lease:
        last = f"last seen {renewed:%Y-%m-%d %H:%M} UTC" if renewed is not None else "its lock taken over"
        return f"it stopped renewing its run lease ({last}): its process or machine died"
    return None


def reported_under(engine: Engine, merchants: Sequence[str], order_refs: Sequence[str]) -> dict[str, str]:
    """Which of `order_refs` SeQura has, or may have, under one of `merchants`, and under which one.

    Has: a snapshot; may have: a report sent without an answer (in flight).
    """
    owners: dict[str, str] = {}
    with engine.connect() as conn:
        for table in (state.order_snapshots, state.in_flight):
            for batch in in_chunks(list(order_refs), 1000):
                query = select(table.c.order_ref_1, table.c.merchant).where(
                    table.c.merchant.in_(merchants), table.c.order_ref_1.in_(batch)
                )
                owners.update({row.order_ref_1: row.merchant for row in conn.execute(query)})
    return owners
