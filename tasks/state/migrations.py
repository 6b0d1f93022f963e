"""Migrations: each version of the state store's schema, applied in order on first use."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import orjson
from sqlalchemy import Engine, Table, and_, bindparam, func, insert, inspect, select, text, update
from sqlalchemy.engine import Connection

from schemas import state
from schemas.state import shipped_columns
from tasks.state.errors import StateStoreError

BACKFILL_BATCH = 2000  # snapshots read and rewritten at a time by a migration that fills a new column


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
    _create_missing_indexes(
        conn, state.order_changes, "ix_order_changes_reference", "ix_order_changes_outcome"
    )


def _create_missing_indexes(conn: Connection, table: Table, *names: str) -> None:
    """CREATE INDEX for each of the declared indexes `names` of the table that it lacks."""
    for index in table.indexes:
        if index.name in names:
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


ERASABLE = (
    state.order_snapshots,
    state.in_flight,
    state.order_changes,
    state.quarantine,
    state.shop_corrections,
)
"""The tables that hold buyer data (in payloads, quarantine reasons, corrected values)."""


def _create_version_6(conn: Connection) -> None:
    """Version 6: the tables holding buyer data note when it was erased, and find what outlived retention."""
    for table in ERASABLE:
        _add_missing_columns(conn, table, "erased_at")
        _create_missing_indexes(conn, table, f"ix_{table.name}_erasure")


def _create_version_7(conn: Connection) -> None:
    """Version 7: a run lock names its holder's flow run and process, so a dead holder is seen at once."""
    _add_missing_columns(conn, state.run_locks, "flow_run_id", "host", "pid", "pid_space", "process_started")


def _create_version_8(conn: Connection) -> None:
    """Version 8: a run notes when its statistics went; a shop reference finds the merchant that owns it."""
    _add_missing_columns(conn, state.runs, "statistics_sent_at")
    _create_missing_indexes(conn, state.order_snapshots, "ix_order_snapshots_reference")
    _create_missing_indexes(conn, state.in_flight, "ix_in_flight_reference")


def _create_version_9(conn: Connection) -> None:
    """Version 9: the disbursements SeQura paid the merchant, each read once, and their per-order lines."""
    state.metadata.create_all(conn, tables=[state.disbursements, state.disbursement_lines])


def _create_version_10(conn: Connection) -> None:
    """Version 10: what SeQura was told shipped and what it paid, per order, for the payout check.

    Each snapshot's shipped total, currency and time as columns, filled from the stored payloads; each
    order's sum over the disbursements read (order_payouts), filled from their lines.
    """
    _fill_shipped_columns(conn)
    state.metadata.create_all(conn, tables=[state.order_payouts])
    sum_order_payouts(conn)


def _fill_shipped_columns(conn: Connection) -> None:
    """Add the snapshots' shipped columns and fill them from the payloads, BACKFILL_BATCH at a time."""
    snapshots = state.order_snapshots
    _add_missing_columns(conn, snapshots, "shipped_total", "currency", "shipped_at")
    fill = (
        update(snapshots)
        .where(snapshots.c.merchant == bindparam("row_merchant"))
        .where(snapshots.c.order_ref_1 == bindparam("row_order_ref_1"))
        .values(
            shipped_total=bindparam("shipped_total"),
            currency=bindparam("currency"),
            shipped_at=bindparam("shipped_at"),
        )
    )
    merchants = conn.execute(select(snapshots.c.merchant).distinct()).scalars().all()
    for merchant in merchants:
        after = ""
        while True:
            rows = conn.execute(
                select(snapshots.c.order_ref_1, snapshots.c.payload)
                .where(snapshots.c.merchant == merchant, snapshots.c.order_ref_1 > after)
                .order_by(snapshots.c.order_ref_1)
                .limit(BACKFILL_BATCH)
            ).all()
            if not rows:
                break
            conn.execute(
                fill,
                [
                    {
                        "row_merchant": merchant,
                        "row_order_ref_1": row.order_ref_1,
                        **shipped_columns(orjson.loads(row.payload)),
                    }
                    for row in rows
                ],
            )
            after = rows[-1].order_ref_1


def sum_order_payouts(conn: Connection) -> None:
    """Fill an empty order_payouts with each order's sum over every disbursement line kept; writes it.

    One INSERT ... SELECT: what tasks.state.disbursements keeps up to date, made at once (a migration).
    """
    lines, disbursements = state.disbursement_lines, state.disbursements
    conn.execute(
        insert(state.order_payouts).from_select(
            ["merchant", "order_ref_1", "disbursed", "currency"],
            select(
                lines.c.merchant,
                lines.c.order_ref_1,
                func.sum(lines.c.amount_with_tax),
                func.max(disbursements.c.currency),
            )
            .join(
                disbursements,
                and_(
                    disbursements.c.merchant == lines.c.merchant,
                    disbursements.c.reference == lines.c.disbursement,
                ),
            )
            .group_by(lines.c.merchant, lines.c.order_ref_1),
        )
    )


MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _create_version_1,
    2: _create_version_2,
    3: _create_version_3,
    4: _create_version_4,
    5: _create_version_5,
    6: _create_version_6,
    7: _create_version_7,
    8: _create_version_8,
    9: _create_version_9,
    10: _create_version_10,
}


def migrate(engine: Engine, applied_at: datetime) -> int:
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
            conn.execute(insert(state.schema_version).values(version=version, applied_at=applied_at))
    return max(current, state.STATE_SCHEMA_VERSION)
