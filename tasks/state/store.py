"""The state store: opened (and migrated) once, checked writable, and the row helpers its tables share."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, bindparam, create_engine, event, false, insert, inspect, select, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from schemas import state
from schemas.reports import BuiltReport
from tasks import clock as clocks
from tasks.clock import Clock
from tasks.rows import in_chunks
from tasks.state.errors import StateStoreError
from tasks.state.migrations import migrate

KEYS_PER_QUERY = 500


@dataclass(frozen=True)
class StateStore:
    """The state store one run works with: one engine, opened (and migrated) once, and the run's clock."""

    engine: Engine
    clock: Clock

    def now(self) -> datetime:
        """The moment to stamp a row with, from the run's clock."""
        return self.clock.now()

    def dispose(self) -> None:
        """Close the engine's connections."""
        self.engine.dispose()


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def open_state_store(url: str, clock: Clock | None = None) -> StateStore:
    """Connect to the state store, creating and migrating it on first use (a SQLite file and its folder).

    Its rows are stamped with `clock`, by default the clock runs read time from (tasks.clock.RUN_CLOCK).
    """
    clock = clock if clock is not None else clocks.RUN_CLOCK
    path = sqlite_path(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StateStoreError(
                f"cannot create the state store's folder {path.parent}: {error.strerror or error}; check "
                "STATE_DB_URL points at a folder this user can write"
            ) from None
    engine = create_engine(url, pool_pre_ping=True)
    if path is not None:
        event.listen(engine, "connect", write_ahead_logged)
    try:
        migrate(engine, clock.now())
    except SQLAlchemyError as error:
        raise StateStoreError(
            f"cannot open the state store: {error.orig or error}; check STATE_DB_URL"
        ) from None
    return StateStore(engine, clock)


def write_ahead_logged(connection: Any, record: object) -> None:
    """Keep a SQLite store in write-ahead-log mode: a commit is one sync of the log, not three of the file.

    Every commit stays durable: synchronous FULL is set, not left to how SQLite was built (a build whose
    default in WAL mode is NORMAL may lose the last commits on a power cut, an order's in-flight row among
    them). The run's reads no longer wait for its writes. A store that cannot switch (a read-only file)
    stays as it is: check_writable says why.
    """
    cursor = connection.cursor()
    try:
        with suppress(sqlite3.OperationalError):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def check_writable(store: StateStore) -> None:
    """Raise StateStoreError naming STATE_DB_URL if the store cannot be written; writes nothing.

    An UPDATE that matches no row, rolled back, needs the same right as a real write.
    """
    version = state.schema_version
    try:
        with store.engine.connect() as conn, conn.begin() as transaction:
            conn.execute(update(version).where(false()).values(version=version.c.version))
            transaction.rollback()
    except SQLAlchemyError as error:
        raise StateStoreError(
            f"the state store cannot be written: {getattr(error, 'orig', None) or error}; check STATE_DB_URL "
            "(a run records there what it sends, so it does not start)"
        ) from None


def state_tables(store: StateStore) -> list[str]:
    """Names of the tables in the store, for checks and the README."""
    return sorted(inspect(store.engine).get_table_names())


def rows_of(
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


def payload_json(built: BuiltReport) -> str:
    """The report as stored: the JSON that was (or would be) sent."""
    return built.payload.decode("utf-8")


def existing_keys(conn: Connection, table: Table, merchant: str, key: str, keys: Sequence[str]) -> set[str]:
    """Which of `keys` already have a row of `merchant` in `table`."""
    return {row[0] for row in rows_of(conn, table, merchant, key, keys)}


def upsert(
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
    existing = existing_keys(conn, table, merchant, key, [row[key] for row in rows])
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
