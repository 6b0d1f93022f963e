"""Privacy: the buyer data the state store holds, kept STATE_RETENTION_DAYS and erased on request (forget).

Buyer data sits in the payloads of what was reported (order snapshots, reports in flight, order updates: the
buyer, both addresses and the trackings), in quarantine reasons (an email the build refused, SeQura's words),
in the shop values reconciliations corrected (shop_corrections) and, by accident, in the message of a failed
run. Erasing it replaces each of these parts, and nothing else: every row stays, with its fingerprint, its
carts (items, amounts) and its dates. The diff compares fingerprints only, so an erased order still counts as
reported and is never sent again for it, and any later change to the order still gives a new fingerprint.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Table, and_, bindparam, false, func, or_, select, update
from sqlalchemy.engine import Connection

from schemas import state
from tasks.rows import in_chunks
from tasks.state.store import KEYS_PER_QUERY, StateStore

ERASED = "erased"
"""What stands where a payload's personal part, or a corrected shop value, was erased."""

PERSONAL_PARTS = ("customer", "delivery_address", "invoice_address", "trackings")
"""The parts of a stored order report that name, reach or locate the buyer."""

ERASED_REASON = "reason erased with the buyer's data (STATE_RETENTION_DAYS or sequra-etl forget)"

RUN_MESSAGES = "run messages"

ERASE_BATCH = 1000  # payloads rewritten per transaction


@dataclass(frozen=True)
class Holder:
    """A table that holds buyer data: when a row's data was last written, and what erases it."""

    name: str  # as counts say it
    table: Table
    written: str  # the column stamped whenever the row's buyer data is written (and erased_at cleared)
    erased_values: Mapping[str, str | None] = field(default_factory=dict)  # empty: the payload's parts

    @property
    def in_payload(self) -> bool:
        """Whether the data is in the row's payload (an order report), rewritten in Python."""
        return not self.erased_values

    def holds_data(self) -> ColumnElement[bool]:
        """Rows that hold buyer data: erased_at is NULL, as every write of their data leaves it."""
        return self.table.c.erased_at.is_(None)


HOLDERS = (
    Holder("order snapshots", state.order_snapshots, "last_sent_at"),
    Holder("reports in flight", state.in_flight, "sending_at"),
    Holder("order updates", state.order_changes, "detected_at"),
    Holder("quarantine reasons", state.quarantine, "last_seen_at", {"reason": ERASED_REASON}),
    Holder(
        "shop corrections",
        state.shop_corrections,
        "applied_at",
        {"before_value": None, "after_value": ERASED},
    ),
)

PAYLOAD_HOLDERS = tuple(holder for holder in HOLDERS if holder.in_payload)


@dataclass(frozen=True)
class Erased:
    """What an erasure came to: rows erased per holder, and the orders it was asked for or found."""

    counts: Mapping[str, int]
    orders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # order_ref_1 by merchant

    @property
    def total(self) -> int:
        """Rows erased in all."""
        return sum(self.counts.values())

    def in_words(self) -> str:
        """The counts as a log line says them: `order snapshots 12, reports in flight 0, …`."""
        return ", ".join(f"{name} {count}" for name, count in self.counts.items())

    def said(self) -> list[str]:
        """What `sequra-etl forget` says it did: the orders it found (references are kept), counts erased."""
        if not self.orders:
            return [
                "no order in the state store matches: check the reference (order_ref_1 or shop reference); "
                "an email is found only while a stored order still holds it",
                f"erased: {self.in_words()}",
            ]
        return [
            *(f"orders of merchant {merchant}: {', '.join(refs)}" for merchant, refs in self.orders.items()),
            f"erased: {self.in_words()}",
            *(["nothing was left to erase: their buyer data was erased before"] if not self.total else []),
            "kept: each order's fingerprint, carts and dates, so it stays reported and no run sends it "
            "again for this; erase the buyer in the shop too, or a later change to one of these orders "
            "sends SeQura (and keeps here) what the shop then holds",
        ]


def without_buyer(payload: str) -> str:
    """A stored order report with its buyer, addresses and trackings erased; carts and dates kept."""
    report = orjson.loads(payload)
    kept = {key: ERASED if key in PERSONAL_PARTS else value for key, value in report.items()}
    return orjson.dumps(kept).decode("utf-8")


def erase_expired(store: StateStore, merchant: str, days: int) -> Erased:
    """Erase the merchant's buyer data written more than `days` ago; writes the store, batch by batch.

    Reads only what expired since the last erasure: the large tables are searched by an index of the rows
    still holding data, by write time (in_flight and quarantine stay small).
    """
    moment = store.now()
    cutoff = moment - timedelta(days=days)
    counts: dict[str, int] = {}
    for holder in HOLDERS:
        table = holder.table
        expired = and_(table.c.merchant == merchant, table.c[holder.written] < cutoff, holder.holds_data())
        counts[holder.name] = _erase_where(store, holder, expired, moment)
    runs = state.runs
    with store.engine.begin() as conn:
        counts[RUN_MESSAGES] = _erase_run_messages(
            conn, and_(runs.c.merchant == merchant, runs.c.started_at < cutoff)
        )
    return Erased(counts)


def _erase_where(store: StateStore, holder: Holder, where: ColumnElement[bool], moment: datetime) -> int:
    """Erase the rows of `holder` that `where` selects among those holding data; how many.

    Payloads go a batch per transaction: an erased row holds no data, so the next batch reads others.
    """
    if not holder.in_payload:
        with store.engine.begin() as conn:
            return _erase_values(conn, holder, where, moment)
    erased = 0
    while True:
        with store.engine.begin() as conn:
            batch = _erase_payloads(conn, holder, where, moment, limit=ERASE_BATCH)
        erased += batch
        if batch < ERASE_BATCH:
            return erased


def _erase_values(conn: Connection, holder: Holder, where: ColumnElement[bool], moment: datetime) -> int:
    """Set the erased values of the rows `where` selects, in one statement; how many."""
    result = conn.execute(update(holder.table).where(where).values(**holder.erased_values, erased_at=moment))
    return result.rowcount


def _erase_payloads(
    conn: Connection, holder: Holder, where: ColumnElement[bool], moment: datetime, limit: int | None = None
) -> int:
    """Rewrite the payloads of the rows `where` selects without their buyer; how many were read.

    A row written again meanwhile (another write time or fingerprint) is left as it is: it holds the newer
    report, which a later erasure finds.
    """
    table = holder.table
    keys = list(table.primary_key.columns)
    written = table.c[holder.written]
    query = select(*keys, written, table.c.fingerprint, table.c.payload).where(where).limit(limit)
    rows = conn.execute(query).all()
    if rows:
        conn.execute(
            update(table)
            .where(
                *(key == bindparam(f"key_{key.name}") for key in keys),
                written == bindparam("key_written"),
                table.c.fingerprint == bindparam("key_fingerprint"),
            )
            .values(payload=bindparam("erased_payload"), erased_at=moment),
            [
                {
                    **{f"key_{key.name}": row._mapping[key.name] for key in keys},
                    "key_written": row._mapping[holder.written],
                    "key_fingerprint": row.fingerprint,
                    "erased_payload": without_buyer(row.payload),
                }
                for row in rows
            ],
        )
    return len(rows)


def _erase_run_messages(conn: Connection, where: ColumnElement[bool]) -> int:
    """Clear the messages of the runs `where` selects (a failed run's error may quote a payload); how many."""
    runs = state.runs
    return conn.execute(update(runs).where(where, runs.c.message.is_not(None)).values(message=None)).rowcount


@dataclass
class Buyer:
    """The orders of one erasure request, by merchant, and the emails to look for in free text."""

    orders: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # order_ref_1 by merchant
    references: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # shop references
    emails: set[str] = field(default_factory=set)  # lowercase, as SQL's lower() makes text

    def add(self, merchant: str, order_ref_1: str, reference: str | None = None) -> None:
        """Note one order of the buyer."""
        self.orders[merchant].add(order_ref_1)
        if reference is not None:
            self.references[merchant].add(reference)

    def of(self, table: Table) -> ColumnElement[bool]:
        """The rows of `table` that belong to the buyer's orders."""
        columns = table.c
        return or_(
            false(),
            *(
                and_(
                    columns.merchant == merchant,
                    or_(
                        columns.order_ref_1.in_(sorted(self.orders[merchant])),
                        *(
                            [columns.reference.in_(sorted(self.references[merchant]))]
                            if "reference" in columns and self.references[merchant]
                            else []
                        ),
                    ),
                )
                for merchant in sorted(self.orders)
            ),
        )


def forget_buyer(store: StateStore, order_refs: Sequence[str], emails: Sequence[str]) -> Erased:
    """Erase one buyer's data, found by their orders (order_ref_1 or shop reference) or emails; writes.

    Every merchant of the store is searched. One transaction: it erases all or nothing. Run again, it finds
    the same orders and erases nothing more.
    """
    moment = store.now()
    with store.engine.begin() as conn:
        buyer = Buyer(emails={email.lower() for email in emails})
        _find_orders(conn, buyer, order_refs)
        _find_by_email(conn, buyer)
        _note_emails(conn, buyer)
        counts: dict[str, int] = {}
        for holder in HOLDERS:
            where = and_(buyer.of(holder.table), holder.holds_data())
            erase = _erase_payloads if holder.in_payload else _erase_values
            counts[holder.name] = erase(conn, holder, where, moment)
        counts[RUN_MESSAGES] = _erase_run_messages(conn, _mentions(state.runs.c.message, buyer.emails))
    return Erased(counts, {merchant: tuple(sorted(refs)) for merchant, refs in sorted(buyer.orders.items())})


def _order_columns(table: Table) -> list[Any]:
    """merchant, order_ref_1 and, where the table has it, the shop reference."""
    return [table.c.merchant, table.c.order_ref_1, *([table.c.reference] if "reference" in table.c else [])]


def _note_rows(buyer: Buyer, rows: Iterable[Any]) -> None:
    """Note the orders of rows read with _order_columns."""
    for row in rows:
        buyer.add(row.merchant, row.order_ref_1, getattr(row, "reference", None))


def _find_orders(conn: Connection, buyer: Buyer, order_refs: Sequence[str]) -> None:
    """Note the orders whose order_ref_1 or shop reference is one of `order_refs`, in any table."""
    for chunk in in_chunks(sorted(set(order_refs)), KEYS_PER_QUERY):
        for holder in HOLDERS:
            table = holder.table
            named = [table.c.order_ref_1.in_(chunk)]
            if "reference" in table.c:
                named.append(table.c.reference.in_(chunk))
            _note_rows(buyer, conn.execute(select(*_order_columns(table)).where(or_(*named))).all())


def _find_by_email(conn: Connection, buyer: Buyer) -> None:
    """Note the orders that hold one of the buyer's emails: as their buyer, in a reason, as a corrected value.

    Payloads are searched as text first (case aside), then read to check it is the buyer's email.
    """
    for email in sorted(buyer.emails):
        as_stored = '"email":' + orjson.dumps(email).decode("utf-8")
        for holder in PAYLOAD_HOLDERS:
            table = holder.table
            rows = conn.execute(
                select(*_order_columns(table), table.c.payload).where(
                    func.lower(table.c.payload).contains(as_stored, autoescape=True)
                )
            ).all()
            _note_rows(buyer, [row for row in rows if _buyer_email(row.payload) == email])
        q = state.quarantine
        _note_rows(
            buyer, conn.execute(select(*_order_columns(q)).where(_mentions(q.c.reason, {email}))).all()
        )
        corrections = state.shop_corrections
        corrected = or_(
            *(func.lower(corrections.c[name]) == email for name in ("before_value", "after_value"))
        )
        _note_rows(buyer, conn.execute(select(*_order_columns(corrections)).where(corrected)).all())


def _buyer_email(payload: str) -> str | None:
    """The buyer's email of a stored order report, in lowercase; None once erased."""
    customer = orjson.loads(payload).get("customer")
    return str(customer.get("email", "")).lower() if isinstance(customer, dict) else None


def _note_emails(conn: Connection, buyer: Buyer) -> None:
    """Add the buyer emails the orders' payloads hold, to look for in free text (run messages)."""
    for holder in PAYLOAD_HOLDERS:
        table = holder.table
        for row in conn.execute(select(table.c.payload).where(buyer.of(table), holder.holds_data())):
            email = _buyer_email(row.payload)
            if email:
                buyer.emails.add(email)


def _mentions(column: Any, emails: Iterable[str]) -> ColumnElement[bool]:
    """Rows whose text `column` mentions one of `emails`, case aside."""
    return or_(false(), *(func.lower(column).contains(email, autoescape=True) for email in sorted(emails)))
