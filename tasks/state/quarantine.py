"""Quarantine: orders that could not be reported, why, and which references every run reads again.

And the open quarantine: every order SeQura has not confirmed yet, whatever keeps it waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, select, update
from sqlalchemy.engine import Connection

from schemas import state
from schemas.reports import QuarantinedOrder, Stage
from tasks.rows import in_chunks
from tasks.state.store import KEYS_PER_QUERY, StateStore, existing_keys, upsert


def references_to_retry(store: StateStore, merchant: str) -> list[str]:
    """Shop references to read again whatever the window.

    Quarantined and not resolved (except updates SeQura refused, which wait for the order to change or to
    be released), still in flight, or changed with an update not yet sent.
    """
    q, flight, changes = state.quarantine, state.in_flight, state.order_changes
    with store.engine.connect() as conn:
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


def resolve_quarantine(conn: Connection, merchant: str, references: Sequence[str], moment: datetime) -> None:
    """Mark the open quarantine entries of `references` resolved."""
    q = state.quarantine
    for chunk in in_chunks(sorted(set(references)), KEYS_PER_QUERY):
        conn.execute(
            update(q)
            .where(q.c.merchant == merchant, q.c.reference.in_(chunk), q.c.resolved_at.is_(None))
            .values(resolved_at=moment)
        )


def record_quarantine(
    store: StateStore, run_id: str, merchant: str, quarantined: Sequence[QuarantinedOrder]
) -> None:
    """Upsert the quarantined orders with their latest reason; reopens an entry resolved before."""
    with store.engine.begin() as conn:
        quarantine_within(conn, run_id, merchant, quarantined, store.now())


def quarantine_within(
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
            "erased_at": None,  # its reason may quote buyer data (tasks.state.privacy)
        }
        for entry in quarantined
    ]
    q = state.quarantine
    tried_before = existing_keys(conn, q, merchant, "reference", [row["reference"] for row in rows])
    upsert(conn, q, merchant, "reference", rows, {"first_seen_at": moment})
    for batch in in_chunks(sorted(tried_before), 1000):
        conn.execute(
            update(q)
            .where(q.c.merchant == merchant, q.c.reference.in_(batch))
            .values(attempts=q.c.attempts + 1)
        )


QUARANTINED, UPDATE_HELD, NO_ANSWER_YET, UPDATE_TO_SEND = (
    "Quarantined",
    "Update held",
    "No answer yet",
    "Update to send",
)
"""What an order not yet confirmed by SeQura waits for, as the open-quarantine artifact says it."""
NO_REPORT_ANSWER = (
    "its delivery report got no answer from SeQura; nothing: the next run asks SeQura again with an order "
    "update, which settles it"
)
UPDATE_NOT_ANSWERED = (
    "its order update is not sent yet, or got no answer from SeQura; nothing: the next run sends it"
)


@dataclass(frozen=True)
class WaitingOrder:
    """An order SeQura has not confirmed: what it waits for, why, since when, and the runs that retried it."""

    order_ref_1: str
    status: str  # QUARANTINED, UPDATE_HELD, NO_ANSWER_YET or UPDATE_TO_SEND
    stage: Stage
    reason: str  # what is wrong, then after its last '; ' what to do (or what happens next)
    first_seen_at: datetime
    retried: int | None  # runs that tried it again since; None when the store does not count them


def open_quarantine(store: StateStore, merchant: str, limit: int) -> tuple[list[WaitingOrder], int]:
    """Every order of the merchant SeQura has not confirmed, oldest first (at most `limit`), and how many.

    Quarantined orders and held updates (open quarantine entries), reports in flight, and order updates
    not answered or not sent yet; an order is listed once, its quarantine entry first. Reads the store.
    """
    with store.engine.connect() as conn:
        kinds = [_quarantined(merchant), _in_flight(merchant), _updates_waiting(merchant)]
        total = sum(conn.execute(select(func.count()).where(where)).scalar_one() for where, _ in kinds)
        waiting = [order for _, rows in kinds for order in rows(conn, limit)]
    return sorted(waiting, key=lambda order: (order.first_seen_at, order.order_ref_1))[:limit], total


Kind = tuple[ColumnElement[bool], Callable[[Connection, int], list[WaitingOrder]]]
"""One kind of order waiting: its rows' condition, and its first rows as WaitingOrders."""


def _quarantined(merchant: str) -> Kind:
    """Open quarantine entries: orders that could not be reported, and updates SeQura refused."""
    q = state.quarantine
    where = and_(q.c.merchant == merchant, q.c.resolved_at.is_(None))

    def rows(conn: Connection, limit: int) -> list[WaitingOrder]:
        found = conn.execute(select(q).where(where).order_by(q.c.first_seen_at, q.c.reference).limit(limit))
        return [
            WaitingOrder(
                row.order_ref_1,
                UPDATE_HELD if row.stage == str(Stage.UPDATE) else QUARANTINED,
                Stage(row.stage),
                row.reason,
                row.first_seen_at,
                row.attempts - 1,
            )
            for row in found
        ]

    return where, rows


def _not_quarantined(merchant: str, reference: ColumnElement[str]) -> ColumnElement[bool]:
    """No open quarantine entry holds the order of `reference`."""
    q = state.quarantine
    return ~exists().where(q.c.merchant == merchant, q.c.reference == reference, q.c.resolved_at.is_(None))


def _in_flight(merchant: str) -> Kind:
    """Reports sent that SeQura has not answered (and not quarantined): the next run settles them."""
    flight = state.in_flight
    where = and_(flight.c.merchant == merchant, _not_quarantined(merchant, flight.c.reference))

    def rows(conn: Connection, limit: int) -> list[WaitingOrder]:
        found = conn.execute(
            select(flight.c.order_ref_1, flight.c.sending_at)
            .where(where)
            .order_by(flight.c.sending_at, flight.c.order_ref_1)
            .limit(limit)
        )
        return [
            WaitingOrder(row.order_ref_1, NO_ANSWER_YET, Stage.LOAD, NO_REPORT_ANSWER, row.sending_at, None)
            for row in found
        ]

    return where, rows


def _updates_waiting(merchant: str) -> Kind:
    """Order updates owed (not answered, or not sent yet) of orders neither quarantined nor in flight."""
    changes, flight = state.order_changes, state.in_flight
    where = and_(
        changes.c.merchant == merchant,
        changes.c.outcome.is_(None),
        _not_quarantined(merchant, changes.c.reference),
        ~exists().where(flight.c.merchant == merchant, flight.c.order_ref_1 == changes.c.order_ref_1),
    )

    def rows(conn: Connection, limit: int) -> list[WaitingOrder]:
        found = conn.execute(
            select(changes.c.order_ref_1, changes.c.detected_at)
            .where(where)
            .order_by(changes.c.detected_at, changes.c.order_ref_1)
            .limit(limit)
        )
        return [
            WaitingOrder(
                row.order_ref_1, UPDATE_TO_SEND, Stage.UPDATE, UPDATE_NOT_ANSWERED, row.detected_at, None
            )
            for row in found
        ]

    return where, rows
