"""State store tables: what was sent to SeQura, runs, quarantined orders, changes, shop values corrected."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

STATE_SCHEMA_VERSION = 10

Marks = dict[str, int]
"""High-water marks: per append-only shop table, the highest row id a run has read past."""


class RunStatus(enum.StrEnum):
    """What became of a run (runs.status)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CRASHED = "crashed"  # it stopped renewing its lease (killed) and another run took its lock over


class UtcDateTime(TypeDecorator):
    """An aware UTC datetime in Python, stored as naive UTC on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store naive UTC; refuse naive input, whose zone would be a guess."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("state store datetimes must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Read naive UTC back as aware UTC."""
        return None if value is None else value.replace(tzinfo=UTC)


def _payload() -> Any:
    """A JSON document column large enough for a 500-line order on MySQL too."""
    return Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def _sent_order_columns() -> list[Column]:
    """The columns naming an order report as it went to SeQura: whose, which, and what exactly."""
    return [
        Column("merchant", String(64), primary_key=True),
        Column("order_ref_1", String(255), primary_key=True),
        Column("reference", String(255), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("payload", _payload(), nullable=False),
    ]


def _erased_at() -> Column:
    """Version 6: when the row's buyer data was erased (STATE_RETENTION_DAYS, `sequra-etl forget`).

    NULL while the row holds buyer data: every write of a payload or a reason sets it back to NULL.
    """
    return Column("erased_at", UtcDateTime)


def _erasure_index(table: str, written: str) -> Index:
    """Version 6: a merchant's rows still holding buyer data, by when it was written (retention's search)."""
    return Index(f"ix_{table}_erasure", "merchant", "erased_at", written)


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("flow_run_id", String(36)),
    Column("merchant", String(64), nullable=False),
    Column("since", UtcDateTime, nullable=False),
    Column("until", UtcDateTime, nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("continues", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("new_count", Integer, nullable=False, default=0),
    Column("changed_count", Integer, nullable=False, default=0),
    Column("unchanged_count", Integer, nullable=False, default=0),
    Column("quarantined_count", Integer, nullable=False, default=0),
    Column("sent_count", Integer, nullable=False, default=0),
    Column("message", Text),
    # JSON {table: id}: the high-water marks the next scheduled run reads above (version 2)
    Column("marks", Text),
    # orders whose change SeQura accepted as an order update (version 3)
    Column("updated_count", Integer, nullable=False, default=0, server_default="0"),
    # version 8: when SeQura accepted a request carrying this run's statistics block (one a shop-local day)
    Column("statistics_sent_at", UtcDateTime),
)

run_locks = Table(
    "run_locks",
    metadata,
    Column("merchant", String(64), primary_key=True),
    Column("run_id", String(36), nullable=False),
    Column("renewed_at", UtcDateTime, nullable=False),
    # who holds it, so a run can tell at once that it died (version 7; NULL in locks taken before)
    Column("flow_run_id", String(36)),
    Column("host", String(255)),
    Column("pid", Integer),
    Column("pid_space", String(80)),  # boot id and pid namespace: where the pid names one process
    Column("process_started", BigInteger),  # clock ticks after boot: a pid reused later differs
)

order_snapshots = Table(
    "order_snapshots",
    metadata,
    *_sent_order_columns(),
    Column("first_sent_at", UtcDateTime, nullable=False),
    Column("last_sent_at", UtcDateTime, nullable=False),
    Column("run_id", String(36), nullable=False),
    # sequra-etl: acknowledged by SeQura; php-module: reported by the PHP module, kept as first seen here
    Column("sent_by", String(16), nullable=False),
    _erased_at(),
    _erasure_index("order_snapshots", "last_sent_at"),
    Index("ix_order_snapshots_reference", "reference"),  # version 8: whose order a shop reference is
    # version 10: what SeQura was told shipped, as columns the payout check compares set-based (the payload's
    # cart.order_total_with_tax in cents, its currency, and sent_at: when the order shipped; NULL when none)
    Column("shipped_total", BigInteger),
    Column("currency", String(3)),
    Column("shipped_at", UtcDateTime),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("merchant", String(64), primary_key=True),
    Column("reference", String(255), primary_key=True),
    Column("order_ref_1", String(255), nullable=False),
    Column("id_orders", Text, nullable=False),
    Column("stage", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("run_id", String(36), nullable=False),
    Column("resolved_at", UtcDateTime),
    # version 5: how many runs have tried the order, the first included (shown by open-quarantine)
    Column("attempts", Integer, nullable=False, default=1, server_default="1"),
    _erased_at(),
)

run_chunks = Table(
    "run_chunks",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("chunk", Integer, primary_key=True, autoincrement=False),
    Column("order_references", _payload(), nullable=False),  # newline-separated, sorted
)

in_flight = Table(
    "in_flight",
    metadata,
    *_sent_order_columns(),
    Column("sending_at", UtcDateTime, nullable=False),
    Column("run_id", String(36), nullable=False),
    _erased_at(),
    Index("ix_in_flight_reference", "reference"),  # version 8: whose order a shop reference is
)

order_changes = Table(
    "order_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("merchant", String(64), nullable=False),
    Column("order_ref_1", String(255), nullable=False),
    Column("reference", String(255), nullable=False),
    Column("previous_fingerprint", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("payload", _payload(), nullable=False),
    Column("detected_at", UtcDateTime, nullable=False),
    Column("run_id", String(36), nullable=False),
    # version 3: what became of the change. NULL: not sent yet (the next run reads the order again whatever
    # its window); sent: SeQura accepted the update; superseded: a later change (or none) took its place;
    # refused (409) and unknown (404): quarantined, sent again once the order changes or is released.
    Column("outcome", String(16)),
    Column("answered_at", UtcDateTime),
    _erased_at(),
    UniqueConstraint("merchant", "order_ref_1", "fingerprint", name="uq_order_changes_fingerprint"),
    Index("ix_order_changes_reference", "merchant", "reference"),  # version 3
    Index("ix_order_changes_outcome", "merchant", "outcome"),  # version 3: the changes waiting to be sent
    _erasure_index("order_changes", "detected_at"),
)

shop_corrections = Table(  # version 4: the audit trail of `sequra-etl reconcile --apply`
    "shop_corrections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(36), nullable=False),
    Column("merchant", String(64), nullable=False),
    Column("order_ref_1", String(255), nullable=False),
    Column("id_order", Integer, nullable=False),
    Column("record", String(32), nullable=False),  # customer, delivery_address, invoice_address
    Column("field", String(32), nullable=False),  # SeQura's key
    Column("shop_table", String(16), nullable=False),  # customer or address
    Column("row_before", Integer, nullable=False),  # id_customer, or the id_address the orders left
    Column("row_after", Integer, nullable=False),  # id_customer, or the new id_address
    Column("before_value", Text),
    Column("after_value", Text, nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
    # pending: written before the shop's transaction committed (a crash in between leaves it pending: check
    # the shop); applied: the shop committed it
    Column("status", String(16), nullable=False),
    Column("batch", String(36), nullable=False),  # one order's transaction
    _erased_at(),
    Index("ix_shop_corrections_order", "merchant", "order_ref_1"),
    Index("ix_shop_corrections_batch", "batch"),
    _erasure_index("shop_corrections", "applied_at"),
)

disbursements = Table(  # version 9: every disbursement SeQura listed and this store read, with its raw detail
    "disbursements",
    metadata,
    Column("merchant", String(64), primary_key=True),
    Column("reference", String(255), primary_key=True),
    Column("issue_date", Date, nullable=False),
    Column("to_date", Date, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("disbursed_amount", BigInteger, nullable=False),  # cents
    Column("adjustments_with_tax", BigInteger, nullable=False),  # cents
    Column("path", String(255), nullable=False),
    Column("detail", _payload(), nullable=False),  # the detail's JSON as SeQura answered it
    Column("read_at", UtcDateTime, nullable=False),
)

disbursement_lines = Table(  # version 9: the per-order lines of each disbursement read
    "disbursement_lines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("merchant", String(64), nullable=False),
    Column("disbursement", String(255), nullable=False),  # its reference
    Column("order_ref_1", String(255), nullable=False),
    Column("amount_with_tax", BigInteger, nullable=False),  # cents paid (negative: taken back)
    Column("maximum_amount_with_tax", BigInteger),
    Index("ix_disbursement_lines_order", "merchant", "order_ref_1"),
    Index("ix_disbursement_lines_disbursement", "merchant", "disbursement"),
)


order_payouts = Table(  # version 10: per order, the sum of its lines over every disbursement read
    "order_payouts",
    metadata,
    Column("merchant", String(64), primary_key=True),
    Column("order_ref_1", String(255), primary_key=True),
    Column("disbursed", BigInteger, nullable=False),  # cents, returns after payment deducted
    Column("currency", String(3), nullable=False),  # of the disbursements that paid it
)


def shipped_columns(report: Mapping[str, Any]) -> dict[str, Any]:
    """What an order report tells SeQura shipped, as order_snapshots' columns: total (cents), currency, when.

    A cancellation before shipment shipped nothing: a total of 0 and no moment.
    """
    cart = report["cart"]
    sent_at = report.get("sent_at")
    return {
        "shipped_total": cart["order_total_with_tax"],
        "currency": cart["currency"],
        "shipped_at": datetime.fromisoformat(sent_at) if sent_at else None,
    }
