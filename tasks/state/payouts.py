"""The payout check in the state store: what SeQura was told shipped against what its disbursements paid.

Set-based: each order's sum over the disbursements read (order_payouts, kept as each one is read) is joined to
its snapshot by primary key, and only the orders with a finding come back, streamed in batches, so a million
reported orders cost no memory here and no query plan joins an aggregate without an index.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select
from sqlalchemy.engine import Connection

from schemas import state
from schemas.payouts import Finding, PayoutFinding
from tasks.rows import in_chunks
from tasks.state.snapshots import NOT_AT_SEQURA, SENT_BY_ADOPTION, SENT_BY_MODULE
from tasks.state.store import KEYS_PER_QUERY, StateStore

STREAMED = 1000  # findings fetched from the store at a time
BASELINES = (SENT_BY_MODULE, SENT_BY_ADOPTION)  # snapshots built here of what SeQura had from elsewhere


@dataclass(frozen=True)
class PaidPeriods:
    """The merchant's disbursements read: how many, and the end of the latest one's period."""

    count: int
    latest_to_date: date | None


@dataclass(frozen=True)
class CurrencyTotals:
    """In one currency, in cents: transferred, paid for orders, and expected from what was reported."""

    currency: str
    transferred: int  # the disbursements' disbursed_amount: what reached the bank
    paid: int  # the sum of their order lines
    expected: int  # reported shipped totals of orders due by now or already paid


def paid_periods(store: StateStore, merchant: str) -> PaidPeriods:
    """How many disbursements of the merchant the store has read, and the latest to_date; reads the store."""
    table = state.disbursements
    with store.engine.connect() as conn:
        count, latest = conn.execute(
            select(func.count(), func.max(table.c.to_date)).where(table.c.merchant == merchant)
        ).one()
    return PaidPeriods(count, latest)


def _reported(merchant: str) -> ColumnElement[bool]:
    """Snapshots of orders SeQura holds as the merchant's (not a cancellation it answered 404 to)."""
    snapshots = state.order_snapshots
    return and_(snapshots.c.merchant == merchant, snapshots.c.sent_by != NOT_AT_SEQURA)


def _due(due_before: datetime | None) -> ColumnElement[bool]:
    """Snapshots of orders that shipped, and were reported, before `due_before` (none when it is None)."""
    snapshots = state.order_snapshots
    if due_before is None:
        return false()
    return and_(
        snapshots.c.shipped_total > 0,
        snapshots.c.shipped_at < due_before,
        snapshots.c.first_sent_at < due_before,
    )


def _settled(due_before: datetime | None) -> ColumnElement[bool]:
    """Snapshots last reported before `due_before`: SeQura has had the grace days to pay their last change."""
    if due_before is None:
        return false()
    return state.order_snapshots.c.last_sent_at < due_before


def payout_findings(store: StateStore, merchant: str, due_before: datetime | None) -> Iterator[PayoutFinding]:
    """Every order of the merchant whose payout does not match its report, by order_ref_1; reads the store.

    not_paid: reported as shipped (and reported) before `due_before` and in no disbursement; paid_differs:
    paid a sum (or in a currency) other than its last reported shipped total, last reported before
    `due_before` (a change SeQura has not had the grace days to pay is no finding yet) and not waiting for
    SeQura's answer to an update (in flight); then paid_not_reported: paid, with no snapshot and not sent
    without an answer (in flight: being paid says SeQura has it, and the next run settles it).
    """
    snapshots, flight, paid = state.order_snapshots, state.in_flight, state.order_payouts
    reported = (
        select(
            snapshots.c.order_ref_1,
            snapshots.c.shipped_total,
            snapshots.c.currency,
            snapshots.c.shipped_at,
            snapshots.c.sent_by,
            paid.c.disbursed,
        )
        .select_from(
            snapshots.outerjoin(
                paid, and_(paid.c.merchant == merchant, paid.c.order_ref_1 == snapshots.c.order_ref_1)
            )
        )
        .where(_reported(merchant))
        .where(
            or_(
                and_(paid.c.disbursed.is_(None), _due(due_before)),
                and_(
                    paid.c.disbursed.is_not(None),
                    or_(
                        paid.c.disbursed != snapshots.c.shipped_total,
                        paid.c.currency != snapshots.c.currency,
                    ),
                    _settled(due_before),
                    ~exists().where(
                        flight.c.merchant == merchant, flight.c.order_ref_1 == snapshots.c.order_ref_1
                    ),
                ),
            )
        )
        .order_by(snapshots.c.order_ref_1)
    )
    unreported = (
        select(paid.c.order_ref_1, paid.c.disbursed, paid.c.currency)
        .where(paid.c.merchant == merchant, paid.c.disbursed != 0)
        .where(~exists().where(_reported(merchant), snapshots.c.order_ref_1 == paid.c.order_ref_1))
        .where(~exists().where(flight.c.merchant == merchant, flight.c.order_ref_1 == paid.c.order_ref_1))
        .order_by(paid.c.order_ref_1)
    )
    with store.engine.connect() as conn, store.engine.connect() as lookup:
        for rows in conn.execution_options(yield_per=STREAMED).execute(reported).partitions():
            references = _paid_in(lookup, merchant, [row.order_ref_1 for row in rows])
            for row in rows:
                yield PayoutFinding(
                    order_ref_1=row.order_ref_1,
                    finding=Finding.NOT_PAID if row.disbursed is None else Finding.PAID_DIFFERS,
                    reported=row.shipped_total,
                    disbursed=None if row.disbursed is None else int(row.disbursed),
                    currency=row.currency,
                    shipped_at=row.shipped_at,
                    disbursements=references.get(row.order_ref_1, ()),
                    baseline=row.sent_by in BASELINES,
                )
        for rows in conn.execution_options(yield_per=STREAMED).execute(unreported).partitions():
            references = _paid_in(lookup, merchant, [row.order_ref_1 for row in rows])
            for row in rows:
                yield PayoutFinding(
                    order_ref_1=row.order_ref_1,
                    finding=Finding.PAID_NOT_REPORTED,
                    reported=None,
                    disbursed=int(row.disbursed),
                    currency=row.currency,
                    shipped_at=None,
                    disbursements=references.get(row.order_ref_1, ()),
                )


def _paid_in(conn: Connection, merchant: str, order_refs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The references of the disbursements that paid each of `order_refs`, oldest period first.

    On MariaDB the lines are read by order: left to its statistics, it may start from the disbursements and
    read every line of each (1.2 s for 500 orders among a million, measured by benchmarks/payouts.py).
    """
    lines, disbursements = state.disbursement_lines, state.disbursements
    paid_in: dict[str, list[str]] = defaultdict(list)
    for batch in in_chunks(list(order_refs), KEYS_PER_QUERY):
        query = (
            select(lines.c.order_ref_1, lines.c.disbursement)
            .join(
                disbursements,
                and_(
                    disbursements.c.merchant == lines.c.merchant,
                    disbursements.c.reference == lines.c.disbursement,
                ),
            )
            .where(lines.c.merchant == merchant, lines.c.order_ref_1.in_(batch))
            .order_by(lines.c.order_ref_1, disbursements.c.to_date, lines.c.disbursement, lines.c.id)
        )
        for dialect in ("mysql", "mariadb"):  # these orders' lines, not every line of every disbursement
            query = query.with_hint(lines, "FORCE INDEX (ix_disbursement_lines_order)", dialect_name=dialect)
        for order_ref_1, disbursement in conn.execute(query):
            if disbursement not in paid_in[order_ref_1]:
                paid_in[order_ref_1].append(disbursement)
    return {order_ref_1: tuple(references) for order_ref_1, references in paid_in.items()}


def unpaid_past_grace(
    store: StateStore, merchant: str, due_now: datetime, due_before: datetime | None
) -> int:
    """Orders shipped and reported before `due_now`, in no disbursement, that are not yet not_paid; reads it.

    They are due by today's date, but no disbursement listed pays a period late enough to call them unpaid:
    SeQura may have stopped paying, or stopped listing what it paid.
    """
    snapshots, paid = state.order_snapshots, state.order_payouts
    query = (
        select(func.count())
        .select_from(snapshots)
        .where(_reported(merchant), _due(due_now), ~_due(due_before))
        .where(~exists().where(paid.c.merchant == merchant, paid.c.order_ref_1 == snapshots.c.order_ref_1))
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def payout_totals(store: StateStore, merchant: str, due_before: datetime | None) -> list[CurrencyTotals]:
    """Per currency: transferred, paid for orders, expected (reported and due, or paid); reads the store."""
    disbursements, snapshots = state.disbursements, state.order_snapshots
    transferred: dict[str, int] = defaultdict(int)
    paid: dict[str, int] = defaultdict(int)
    expected: dict[str, int] = defaultdict(int)
    with store.engine.connect() as conn:
        for currency, amount in conn.execute(
            select(disbursements.c.currency, func.sum(disbursements.c.disbursed_amount))
            .where(disbursements.c.merchant == merchant)
            .group_by(disbursements.c.currency)
        ):
            transferred[currency] = int(amount)
        payouts = state.order_payouts
        for currency, amount in conn.execute(
            select(payouts.c.currency, func.sum(payouts.c.disbursed))
            .where(payouts.c.merchant == merchant)
            .group_by(payouts.c.currency)
        ):
            paid[currency] = int(amount)
        was_paid = exists().where(
            payouts.c.merchant == merchant, payouts.c.order_ref_1 == snapshots.c.order_ref_1
        )
        for currency, amount in conn.execute(
            select(snapshots.c.currency, func.sum(snapshots.c.shipped_total))
            .where(_reported(merchant), or_(_due(due_before), was_paid))
            .group_by(snapshots.c.currency)
        ):
            expected[currency] = int(amount)
    return [
        CurrencyTotals(currency, transferred[currency], paid[currency], expected[currency])
        for currency in sorted(set(transferred) | set(paid) | set(expected))
    ]
